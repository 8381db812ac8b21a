//! Settings from the environment, with defaults that run against the local services.

use std::net::SocketAddr;
use std::time::Duration;

use reliable_messaging::backoff::Backoff;
use reliable_messaging::retry_metadata::MetadataFormat;
use reliable_messaging::settings::env_or;
use reliable_messaging::{CommitPolicy, ConsumerSettings, KafkaSettings, OutagePolicy};

pub const DEFAULT_DATABASE_URL: &str = "mysql://registrations@127.0.0.1:3306/registrations";

#[derive(Debug, Clone)]
pub struct Settings {
    pub kafka: KafkaSettings,
    pub consumer: ConsumerSettings,
    pub database_url: String,
    pub database_pool_size: u32,
    /// How long a handler waits for a database connection before the attempt counts as a
    /// transient failure.
    pub database_acquire_timeout: Duration,
    /// `innodb_lock_wait_timeout` of the service's sessions: how long one statement waits for
    /// a row another transaction holds before the message counts as a transient failure
    /// (MySQL's default of 50 s would stall the whole partition that long).
    pub database_lock_wait_timeout_secs: u32,
    /// Where `/healthz`, `/readyz` and `/metrics` listen.
    pub http_addr: SocketAddr,
    /// Format of the retry metadata written to the DLQ.
    pub dead_letter_format: MetadataFormat,
    /// The DLQ retry schedule: sets `x-not-before` of dead-lettered messages.
    pub retry_schedule: Backoff,
    /// How long a DLQ write may wait for `acks=all`.
    pub publish_timeout: Duration,
}

impl Settings {
    /// | variable | default |
    /// |---|---|
    /// | `KAFKA_BOOTSTRAP_SERVERS` | `localhost:9092` |
    /// | `DATABASE_URL` | local MariaDB, database `registrations` |
    /// | `REGISTRATIONS_TOPIC` | `user-registrations` |
    /// | `CONSUMER_GROUP` | `registration-service` |
    /// | `REGISTRATION_SERVICE_ADDR` | `127.0.0.1:8081` |
    /// | `BATCH_SIZE` / `BATCH_WAIT_MS` | 500 / 20 |
    /// | `IN_PLACE_RETRIES` | 3 (then the DLQ) |
    /// | `IN_PLACE_BACKOFF_*` | exponential 200 ms ×2, cap 2 s |
    /// | `RETRY_BACKOFF_*` | exponential 1 s ×2, cap 60 s (the DLQ schedule) |
    /// | `RETRY_METADATA_FORMAT` | `headers` (or `wrapper`) |
    /// | `COMMIT_POLICY` | `after-durable-outcome` (`unsafe-auto-commit` only for the negative-control test) |
    /// | `DATABASE_POOL_SIZE` | 5 |
    /// | `DATABASE_ACQUIRE_TIMEOUT_MS` | 2000 |
    /// | `CONSUMER_INSTANCE_ID` | unset (dynamic membership); set for static membership |
    /// | `DATABASE_LOCK_WAIT_TIMEOUT_SECS` | 5 |
    /// | `DEPENDENCY_OUTAGE` | `pause` (nothing dead-lettered while the database is down; `dead-letter`: the article's original path) |
    /// | `OUTAGE_PROBE_BACKOFF_*` | exponential 50 ms ×2, cap 250 ms (probes while the database is down) |
    /// | `DLQ_MAX_CONSECUTIVE_PERMANENT` | 100 (0 = no limit): permanent failures in a row before the consumer halts |
    /// | `DLQ_PERMANENT_WINDOW` / `DLQ_MAX_PERMANENT_SHARE` | 1000 / 0.5 (window 0 = off): halt when more than that share of the window failed permanently |
    pub fn from_env() -> Result<Self, String> {
        let topic: String = env_or("REGISTRATIONS_TOPIC", registration_events::REGISTRATIONS_TOPIC.to_owned())?;
        let group: String = env_or("CONSUMER_GROUP", "registration-service".to_owned())?;
        let mut consumer = ConsumerSettings::new(group, &[topic.as_str()]);
        consumer.max_batch_size = env_or("BATCH_SIZE", consumer.max_batch_size)?.max(1);
        consumer.max_batch_wait = Duration::from_millis(env_or("BATCH_WAIT_MS", 20u64)?);
        consumer.in_place_retries = env_or("IN_PLACE_RETRIES", consumer.in_place_retries)?;
        consumer.in_place_backoff = Backoff::from_env("IN_PLACE", consumer.in_place_backoff)?;
        consumer.commit_policy = CommitPolicy::from_env()?;
        consumer.instance_id = std::env::var("CONSUMER_INSTANCE_ID").ok().filter(|id| !id.is_empty());
        consumer.outage_policy = OutagePolicy::from_env()?;
        consumer.outage_probe_backoff = Backoff::from_env("OUTAGE_PROBE", consumer.outage_probe_backoff)?;
        let limit = &mut consumer.dead_letter_limit;
        limit.max_consecutive = env_or("DLQ_MAX_CONSECUTIVE_PERMANENT", limit.max_consecutive)?;
        limit.window = env_or("DLQ_PERMANENT_WINDOW", limit.window)?;
        limit.max_share = env_or("DLQ_MAX_PERMANENT_SHARE", limit.max_share)?;
        if !(0.0..=1.0).contains(&limit.max_share) {
            return Err("DLQ_MAX_PERMANENT_SHARE must be between 0 and 1".to_owned());
        }
        Ok(Settings {
            kafka: KafkaSettings::from_env("registration-service"),
            consumer,
            database_url: env_or("DATABASE_URL", DEFAULT_DATABASE_URL.to_owned())?,
            database_pool_size: env_or("DATABASE_POOL_SIZE", 5u32)?.max(1),
            database_acquire_timeout: Duration::from_millis(env_or("DATABASE_ACQUIRE_TIMEOUT_MS", 2_000u64)?.max(1)),
            database_lock_wait_timeout_secs: env_or("DATABASE_LOCK_WAIT_TIMEOUT_SECS", 5u32)?.max(1),
            http_addr: env_or("REGISTRATION_SERVICE_ADDR", "127.0.0.1:8081".parse().expect("literal address"))?,
            dead_letter_format: MetadataFormat::from_env()?,
            retry_schedule: Backoff::from_env("RETRY", Backoff::default())?,
            publish_timeout: Duration::from_millis(env_or("PUBLISH_TIMEOUT_MS", 10_000u64)?),
        })
    }
}

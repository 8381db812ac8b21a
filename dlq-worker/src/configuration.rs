//! Settings from the environment, with defaults that run against the local services.

use std::net::SocketAddr;
use std::time::Duration;

use reliable_messaging::backoff::Backoff;
use reliable_messaging::dead_letter_limit::DeadLetterLimit;
use reliable_messaging::parking::Rate;
use reliable_messaging::retry_metadata::MetadataFormat;
use reliable_messaging::settings::env_or;
use reliable_messaging::KafkaSettings;

pub const DEFAULT_DATABASE_URL: &str = "mysql://registrations@127.0.0.1:3306/registrations";

#[derive(Debug, Clone)]
pub struct Settings {
    pub kafka: KafkaSettings,
    pub database_url: String,
    pub database_pool_size: u32,
    /// Regex of the dead-letter topics to drain; librdkafka treats a subscription starting with
    /// `^` as a regex.
    pub topic_pattern: String,
    pub group_id: String,
    /// How often the broker is asked for topics, so a new `*-dlq` topic is drained within
    /// seconds of its creation.
    pub metadata_refresh: Duration,
    /// A message that has been re-sent this many times is parked instead.
    pub retry_threshold: u32,
    /// Delay before a re-send when the record has no `x-not-before`.
    pub retry_schedule: Backoff,
    /// Format of the retry metadata on re-sent messages.
    pub metadata_format: MetadataFormat,
    /// Above this many waiting messages the worker pauses its partitions...
    ///
    /// 20,000 by default: a backlog of 10,000 long delays must leave room for new arrivals,
    /// or a 1 s retry waits until thousands of hour-long ones expire (paused partitions);
    /// 10,000 waiting cost ~30 MiB of RSS, so 20,000 stay well within the memory budget.
    pub max_scheduled: usize,
    /// ...and resumes them once fewer than this many wait.
    pub resume_below: usize,
    /// Re-sends and parkings running at once.
    pub max_in_flight: usize,
    pub commit_interval: Duration,
    /// How long a re-send may wait for `acks=all`.
    pub publish_timeout: Duration,
    /// Where `/healthz`, `/readyz`, `/metrics` and the admin API listen.
    pub http_addr: SocketAddr,
    /// Bearer token of the admin API; unset means the admin API is not served at all.
    pub admin_token: Option<String>,
    /// Default pace of bulk redrives from the parking lot.
    pub redrive_rate: Rate,
    /// When parking stops and the worker halts: too many permanent/poison parks in a row or
    /// in a window (a bad deploy upstream must not flood the parking lot).
    pub park_limit: DeadLetterLimit,
}

impl Settings {
    /// | variable | default |
    /// |---|---|
    /// | `KAFKA_BOOTSTRAP_SERVERS` | `localhost:9092` |
    /// | `DATABASE_URL` | local MariaDB, database `registrations` |
    /// | `DATABASE_POOL_SIZE` | 5 |
    /// | `DLQ_TOPIC_PATTERN` | `^.*-dlq$` |
    /// | `DLQ_CONSUMER_GROUP` | `dlq-worker` |
    /// | `DLQ_METADATA_REFRESH_MS` | 2000 |
    /// | `RETRY_THRESHOLD` | 5 |
    /// | `RETRY_BACKOFF_*` | exponential 1 s ×2, cap 60 s (see `Backoff::from_env`) |
    /// | `RETRY_METADATA_FORMAT` | `headers` (or `wrapper`) |
    /// | `DLQ_MAX_SCHEDULED` / `DLQ_RESUME_BELOW` | 20000 / half of it |
    /// | `DLQ_MAX_IN_FLIGHT` | 64 |
    /// | `DLQ_COMMIT_INTERVAL_MS` | 500 |
    /// | `PUBLISH_TIMEOUT_MS` | 10000 |
    /// | `DLQ_WORKER_ADDR` | `127.0.0.1:8082` |
    /// | `ADMIN_TOKEN` | unset (admin API off) |
    /// | `DLQ_REDRIVE_RATE` | `50/s` |
    /// | `DLQ_MAX_CONSECUTIVE_PARKED` | 100 (0 = no limit): permanent or poison parks in a row before the worker halts |
    /// | `DLQ_PARKED_WINDOW` / `DLQ_MAX_PARKED_SHARE` | 1000 / 0.5 (window 0 = off) |
    pub fn from_env() -> Result<Self, String> {
        let topic_pattern: String = env_or("DLQ_TOPIC_PATTERN", "^.*-dlq$".to_owned())?;
        if !topic_pattern.starts_with('^') {
            return Err(format!(
                "DLQ_TOPIC_PATTERN must start with ^ (librdkafka regex subscription), got {topic_pattern:?}"
            ));
        }
        let max_scheduled = env_or("DLQ_MAX_SCHEDULED", 20_000usize)?.max(1);
        Ok(Settings {
            kafka: KafkaSettings::from_env("dlq-worker"),
            database_url: env_or("DATABASE_URL", DEFAULT_DATABASE_URL.to_owned())?,
            database_pool_size: env_or("DATABASE_POOL_SIZE", 5u32)?.max(1),
            topic_pattern,
            group_id: env_or("DLQ_CONSUMER_GROUP", "dlq-worker".to_owned())?,
            metadata_refresh: Duration::from_millis(env_or("DLQ_METADATA_REFRESH_MS", 2_000u64)?.max(100)),
            retry_threshold: env_or("RETRY_THRESHOLD", 5u32)?,
            retry_schedule: Backoff::from_env("RETRY", Backoff::default())?,
            metadata_format: MetadataFormat::from_env()?,
            max_scheduled,
            resume_below: env_or("DLQ_RESUME_BELOW", max_scheduled / 2)?.min(max_scheduled),
            max_in_flight: env_or("DLQ_MAX_IN_FLIGHT", 64usize)?.max(1),
            commit_interval: Duration::from_millis(env_or("DLQ_COMMIT_INTERVAL_MS", 500u64)?.max(10)),
            publish_timeout: Duration::from_millis(env_or("PUBLISH_TIMEOUT_MS", 10_000u64)?.max(1)),
            http_addr: env_or("DLQ_WORKER_ADDR", "127.0.0.1:8082".parse().expect("literal address"))?,
            admin_token: std::env::var("ADMIN_TOKEN").ok().filter(|t| !t.trim().is_empty()),
            redrive_rate: env_or("DLQ_REDRIVE_RATE", Rate::default())?,
            park_limit: {
                let default = DeadLetterLimit::default();
                let limit = DeadLetterLimit {
                    max_consecutive: env_or("DLQ_MAX_CONSECUTIVE_PARKED", default.max_consecutive)?,
                    window: env_or("DLQ_PARKED_WINDOW", default.window)?,
                    max_share: env_or("DLQ_MAX_PARKED_SHARE", default.max_share)?,
                };
                if !(0.0..=1.0).contains(&limit.max_share) {
                    return Err("DLQ_MAX_PARKED_SHARE must be between 0 and 1".to_owned());
                }
                limit
            },
        })
    }
}

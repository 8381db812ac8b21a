//! The worker's settings: [`WorkerArgs`], every variable it reads with its default (so
//! `dlq-worker --help` lists them and a bad value fails at start naming the variable), turned
//! into the typed [`Settings`] the worker runs with. The defaults run against the local
//! services.
//!
//! The Kafka connection, the database, the DLQ retry schedule and the logs and traces are the
//! service kit's arguments, so they read the same variables as in every other service. The binary parses
//! them once (`cli.rs`); nothing else reads the environment.

use std::net::SocketAddr;
use std::time::Duration;

use reliable_messaging::dead_letter::Backoff;
use reliable_messaging::dead_letter::DeadLetterLimit;
use reliable_messaging::message::retry_metadata::MetadataFormat;
use reliable_messaging::parking::Rate;
use reliable_messaging::service::{
    self, DatabaseArgs, DatabaseSettings, KafkaArgs, RetryScheduleArgs, Secret, ServiceDefaults, TelemetryArgs,
};
use reliable_messaging::KafkaSettings;

pub const NAME: &str = "dlq-worker";
pub const DEFAULT_DATABASE_URL: &str = "mysql://registrations@127.0.0.1:3306/registrations";

/// What the worker's command differs in from other services built with the kit.
pub const DEFAULTS: ServiceDefaults = ServiceDefaults {
    name: NAME,
    http_addr_env: "DLQ_WORKER_ADDR",
    http_addr: "127.0.0.1:8082",
    database_url: Some(DEFAULT_DATABASE_URL),
};

/// The worker's arguments, read by every subcommand too (they share the database and broker).
#[derive(Debug, Clone, clap::Args)]
pub struct WorkerArgs {
    /// Where `/healthz`, `/readyz`, `/metrics` and the admin API listen.
    #[arg(long, env = "DLQ_WORKER_ADDR", default_value = "127.0.0.1:8082")]
    pub http_addr: SocketAddr,
    /// Bearer token of the admin API (never printed) [default: unset, the admin API is off].
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<Secret>,
    /// Named admin tokens, `alice:<token>,bob:<token>`; the name is the actor in audit rows
    /// (never printed) [default: unset].
    #[arg(long, env = "ADMIN_TOKENS", hide_env_values = true)]
    pub admin_tokens: Option<Secret>,
    /// A file of `name:token` lines, re-read when it changes (rotation without restart).
    #[arg(long, env = "ADMIN_TOKENS_FILE")]
    pub admin_tokens_file: Option<std::path::PathBuf>,
    /// The console's overview: `name=url` pairs of the services' `/readyz`, comma-separated
    /// (this worker's own is always shown).
    #[arg(long, env = "CONSOLE_READYZ_URLS", default_value = "", value_parser = readyz_urls)]
    pub console_readyz_urls: ReadyzUrls,
    /// Where a canary redrive asks what became of a request: a URL with `{request_id}`, answering
    /// `{"status": "completed" | ...}` (the gateway's `GET /registrations/{request_id}`)
    /// [default: unset, canary redrives are refused].
    #[arg(long, env = "CANARY_STATUS_URL")]
    pub canary_status_url: Option<String>,
    /// The sign-up topic an operator's erasure (`erase`, `POST /admin/erasures`) is published to.
    #[arg(long, env = "ERASURE_TOPIC", default_value = registration_events::REGISTRATIONS_TOPIC)]
    pub erasure_topic: String,
    /// Regex of the dead-letter topics to drain; must start with `^` (librdkafka's regex
    /// subscription).
    #[arg(long, env = "DLQ_TOPIC_PATTERN", default_value = "^.*-dlq$", value_parser = topic_pattern)]
    pub dlq_topic_pattern: String,
    /// Consumer group of the workers.
    #[arg(long, env = "DLQ_CONSUMER_GROUP", default_value = NAME)]
    pub dlq_consumer_group: String,
    /// How often the broker is asked for new topics matching the pattern (ms, at least 100).
    #[arg(long, env = "DLQ_METADATA_REFRESH_MS", default_value_t = 2_000)]
    pub dlq_metadata_refresh_ms: u64,
    /// A message re-sent this many times is parked instead.
    #[arg(long, env = "RETRY_THRESHOLD", default_value_t = 5)]
    pub retry_threshold: u32,
    /// Above this many waiting messages the worker pauses its partitions.
    #[arg(long, env = "DLQ_MAX_SCHEDULED", default_value_t = 20_000)]
    pub dlq_max_scheduled: usize,
    /// Resume the partitions once fewer than this many wait [default: half of DLQ_MAX_SCHEDULED].
    #[arg(long, env = "DLQ_RESUME_BELOW")]
    pub dlq_resume_below: Option<usize>,
    /// Re-sends and parkings running at once.
    #[arg(long, env = "DLQ_MAX_IN_FLIGHT", default_value_t = 64)]
    pub dlq_max_in_flight: usize,
    /// How often finished offsets are committed (ms, at least 10).
    #[arg(long, env = "DLQ_COMMIT_INTERVAL_MS", default_value_t = 500)]
    pub dlq_commit_interval_ms: u64,
    /// How long a re-send may wait for `acks=all` (ms).
    #[arg(long, env = "PUBLISH_TIMEOUT_MS", default_value_t = 10_000)]
    pub publish_timeout_ms: u64,
    /// Default pace of bulk redrives from the parking lot (50/s, 600/m, ...).
    #[arg(long, env = "DLQ_REDRIVE_RATE", default_value = "50/s")]
    pub dlq_redrive_rate: Rate,
    /// Permanent or poison parks in a row before the worker halts (0: no limit).
    #[arg(long, env = "DLQ_MAX_CONSECUTIVE_PARKED", default_value_t = DeadLetterLimit::default().max_consecutive)]
    pub dlq_max_consecutive_parked: u32,
    /// Window of recent messages judged for the share of permanent or poison parks (0: off).
    #[arg(long, env = "DLQ_PARKED_WINDOW", default_value_t = DeadLetterLimit::default().window)]
    pub dlq_parked_window: u32,
    /// Halt when more than this share of the window was parked so, 0 to 1.
    #[arg(long, env = "DLQ_MAX_PARKED_SHARE", default_value_t = DeadLetterLimit::default().max_share, value_parser = service::parse_share)]
    pub dlq_max_parked_share: f64,

    #[command(flatten)]
    pub retries: RetryScheduleArgs,
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Logs and traces; the `parked` subcommands log to stderr, at `warn` unless `RUST_LOG`
    /// says otherwise, and export nothing.
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
    // Last: its help heading would otherwise carry over to the arguments after it.
    #[command(flatten)]
    pub kafka: KafkaArgs,
}

/// `name=url` pairs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadyzUrls(pub Vec<(String, String)>);

fn readyz_urls(raw: &str) -> Result<ReadyzUrls, String> {
    let mut out = Vec::new();
    for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, url) = pair.split_once('=').ok_or_else(|| format!("{pair:?} is not name=url"))?;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!("{url:?} is not an http(s) URL"));
        }
        out.push((name.trim().to_owned(), url.trim().to_owned()));
    }
    Ok(ReadyzUrls(out))
}

fn topic_pattern(raw: &str) -> Result<String, String> {
    if raw.starts_with('^') {
        Ok(raw.to_owned())
    } else {
        Err("must start with ^ (librdkafka regex subscription)".to_owned())
    }
}

/// The typed settings the worker runs with. `Debug` shows neither the database password nor
/// the admin token.
#[derive(Debug, Clone)]
pub struct Settings {
    pub kafka: KafkaSettings,
    pub database: DatabaseSettings,
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
    pub admin_token: Option<Secret>,
    /// Default pace of bulk redrives from the parking lot.
    pub redrive_rate: Rate,
    /// Named admin tokens, the console's service list and the canary's status URL.
    pub operator: OperatorSettings,
    /// When parking stops and the worker halts: too many permanent/poison parks in a row or
    /// in a window (a bad deploy upstream must not flood the parking lot).
    pub park_limit: DeadLetterLimit,
}

/// What the operator surfaces (admin API, console, canary) need beyond the parking lot.
#[derive(Debug, Clone, Default)]
pub struct OperatorSettings {
    /// `ADMIN_TOKENS`, parsed when the worker is built (a parse error must not quote it).
    pub named_tokens: Option<Secret>,
    pub tokens_file: Option<std::path::PathBuf>,
    /// `(name, url)` of the services' `/readyz`.
    pub readyz_urls: Vec<(String, String)>,
    /// A URL with `{request_id}` that answers the request's status as JSON.
    pub canary_status_url: Option<String>,
    /// Where erasures are published: the sign-up topic.
    pub erasure_topic: String,
}

/// Only the worker's arguments (no subcommand), for [`Settings::defaults`].
#[derive(clap::Parser)]
struct WorkerOnly {
    #[command(flatten)]
    worker: WorkerArgs,
}

impl Settings {
    /// The defaults, parsed as the binary parses them but from no environment at all: what
    /// tests start from, so a variable set on the developer's machine cannot leak into them.
    pub fn defaults() -> Self {
        use clap::FromArgMatches as _;
        let matches = service::ignoring_environment(service::command::<WorkerOnly>(&DEFAULTS))
            .try_get_matches_from([NAME])
            .expect("the defaults parse");
        let only = WorkerOnly::from_arg_matches(&matches).expect("the defaults parse");
        Self::from_args(&only.worker, Vec::new())
    }

    /// The settings `args` describe. `variables` are the process's environment, for
    /// `KAFKA_<PROPERTY>`.
    pub fn from_args(args: &WorkerArgs, variables: impl IntoIterator<Item = (String, String)>) -> Self {
        let max_scheduled = args.dlq_max_scheduled.max(1);
        Settings {
            kafka: args.kafka.settings(NAME, variables),
            database: args.database.settings(),
            topic_pattern: args.dlq_topic_pattern.clone(),
            group_id: args.dlq_consumer_group.clone(),
            metadata_refresh: Duration::from_millis(args.dlq_metadata_refresh_ms.max(100)),
            retry_threshold: args.retry_threshold,
            retry_schedule: args.retries.schedule(),
            metadata_format: args.retries.format(),
            max_scheduled,
            resume_below: args.dlq_resume_below.unwrap_or(max_scheduled / 2).min(max_scheduled),
            max_in_flight: args.dlq_max_in_flight.max(1),
            commit_interval: Duration::from_millis(args.dlq_commit_interval_ms.max(10)),
            publish_timeout: Duration::from_millis(args.publish_timeout_ms.max(1)),
            http_addr: args.http_addr,
            admin_token: args.admin_token.clone().filter(|t| !t.expose().trim().is_empty()),
            redrive_rate: args.dlq_redrive_rate,
            operator: OperatorSettings {
                named_tokens: args.admin_tokens.clone().filter(|t| !t.expose().trim().is_empty()),
                tokens_file: args.admin_tokens_file.clone(),
                readyz_urls: args.console_readyz_urls.0.clone(),
                canary_status_url: args.canary_status_url.clone().filter(|u| !u.trim().is_empty()),
                erasure_topic: args.erasure_topic.clone(),
            },
            park_limit: DeadLetterLimit {
                max_consecutive: args.dlq_max_consecutive_parked,
                window: args.dlq_parked_window,
                max_share: args.dlq_max_parked_share,
            },
        }
    }
}

#[cfg(test)]
mod tests;

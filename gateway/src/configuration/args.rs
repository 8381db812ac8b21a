//! The gateway's arguments: every variable it reads, with its default, as one clap struct, so
//! `gateway --help` lists them and a bad value fails at start with an error naming the
//! variable. The binary parses them once ([`Settings::parse_from`]); nothing else reads the
//! environment.
//!
//! The Kafka connection, the database, the topic policy and the logs and traces are the
//! service kit's arguments, so they read the same variables in every service.

use std::ffi::OsString;
use std::time::Duration;

use crate::client_budget::client_address::{ClientAddressing, Network};
use clap::error::ErrorKind;
use clap::FromArgMatches;
use reliable_messaging::service::{self, DatabaseArgs, KafkaArgs, Secret, ServiceDefaults, TelemetryArgs, TopicArgs};

use super::{
    ClientBudgetSettings, ConfigError, HashingSettings, HttpLimits, IdempotencySettings, RequestIdSecret, SecretSource,
    Settings,
};

pub const NAME: &str = "gateway";

/// What the gateway's command differs in from other services built with the kit.
pub const DEFAULTS: ServiceDefaults = ServiceDefaults {
    name: NAME,
    http_addr_env: "GATEWAY_ADDR",
    http_addr: Settings::DEFAULT_ADDR,
    database_url: Some(Settings::DEFAULT_DATABASE_URL),
};

/// The command-line / environment arguments.
#[derive(Debug, Clone, clap::Parser)]
#[command(version, about = "The HTTP front door of sign-up: answers 202 only once Kafka has the request durably.")]
pub struct Args {
    /// Where the HTTP API listens (port 0: any free port).
    #[arg(long, env = "GATEWAY_ADDR", default_value = Settings::DEFAULT_ADDR)]
    pub http_addr: String,
    /// Where `/metrics`, `/healthz` and `/readyz` listen, apart from the public API (port 0:
    /// any free port).
    #[arg(long, env = "GATEWAY_INTERNAL_ADDR", default_value = Settings::DEFAULT_INTERNAL_ADDR)]
    pub internal_addr: String,
    /// The topic accepted registrations are published to.
    #[arg(long, env = "REGISTRATIONS_TOPIC", default_value = registration_events::REGISTRATIONS_TOPIC)]
    pub registrations_topic: String,
    /// How long a request waits for the broker's acknowledgement before it is answered 503 (ms).
    #[arg(long, env = "PUBLISH_TIMEOUT_MS", default_value_t = 5_000)]
    pub publish_timeout_ms: u64,
    /// Upper bound on any request (ms) [default: PUBLISH_TIMEOUT_MS + 10 000, so the more
    /// precise "broker did not acknowledge" answer wins].
    #[arg(long, env = "REQUEST_TIMEOUT_MS")]
    pub request_timeout_ms: Option<u64>,
    /// Key that signs request ids: hex, at least 32 digits, the same on every instance (never
    /// printed) [default: random per process; ids then do not survive a restart].
    #[arg(long, env = "REQUEST_ID_SECRET", hide_env_values = true)]
    pub request_id_secret: Option<Secret>,

    /// argon2id memory cost (KiB); the defaults of the three are OWASP's recommendation.
    #[arg(long, env = "ARGON2_MEMORY_KIB", default_value_t = HashingSettings::OWASP_MEMORY_KIB, help_heading = "Password hashing")]
    pub argon2_memory_kib: u32,
    /// argon2id passes.
    #[arg(long, env = "ARGON2_ITERATIONS", default_value_t = HashingSettings::OWASP_ITERATIONS, help_heading = "Password hashing")]
    pub argon2_iterations: u32,
    /// argon2id lanes.
    #[arg(long, env = "ARGON2_PARALLELISM", default_value_t = HashingSettings::OWASP_PARALLELISM, help_heading = "Password hashing")]
    pub argon2_parallelism: u32,
    /// Hashes running at once on blocking threads [default: CPUs].
    #[arg(long, env = "HASHING_CONCURRENCY", value_parser = at_least_one, help_heading = "Password hashing")]
    pub hashing_concurrency: Option<usize>,
    /// Hashes allowed to wait for a slot; past it the gateway answers 503 at once [default: 64
    /// per concurrent hash].
    #[arg(long, env = "HASHING_QUEUE_LIMIT", help_heading = "Password hashing")]
    pub hashing_queue_limit: Option<usize>,

    /// How long an Idempotency-Key stays bound to its first request (s).
    #[arg(long, env = "IDEMPOTENCY_TTL_SECS", default_value_t = 24 * 60 * 60, help_heading = "Idempotency-Key")]
    pub idempotency_ttl_secs: u64,
    /// How long a request waits for the shared claim table before this instance's map decides (ms).
    #[arg(long, env = "IDEMPOTENCY_DB_TIMEOUT_MS", default_value_t = 500, help_heading = "Idempotency-Key")]
    pub idempotency_db_timeout_ms: u64,
    /// Keys the fallback map remembers at most; the oldest is forgotten first.
    #[arg(long, env = "IDEMPOTENCY_CAPACITY", default_value_t = 100_000, help_heading = "Idempotency-Key")]
    pub idempotency_capacity: usize,

    /// Time until a request's headers are complete; past it the connection is closed (ms).
    #[arg(long, env = "HTTP_HEADER_READ_TIMEOUT_MS", default_value_t = 10_000, help_heading = "HTTP clients")]
    pub http_header_read_timeout_ms: u64,
    /// Time from the complete headers until the whole body has arrived; past it 408 (ms).
    #[arg(long, env = "HTTP_BODY_READ_TIMEOUT_MS", default_value_t = 10_000, help_heading = "HTTP clients")]
    pub http_body_read_timeout_ms: u64,
    /// Connections open at once; one beyond it is closed as soon as it is accepted.
    #[arg(long, env = "HTTP_MAX_CONNECTIONS", default_value_t = 1_024, value_parser = at_least_one, help_heading = "HTTP clients")]
    pub http_max_connections: usize,

    /// The per-client budget of POST /registrations: on, off.
    #[arg(long, env = "CLIENT_RATE_LIMIT", default_value = "on", action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new(), help_heading = "Per-client budget")]
    pub client_rate_limit: bool,
    /// Sign-ups one client may make per minute, steadily.
    #[arg(long, env = "CLIENT_RATE_PER_MINUTE", default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..), help_heading = "Per-client budget")]
    pub client_rate_per_minute: u32,
    /// Sign-ups one client may make at once after a quiet spell.
    #[arg(long, env = "CLIENT_RATE_BURST", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..), help_heading = "Per-client budget")]
    pub client_rate_burst: u32,
    /// Clients tracked at most; past it new clients share one budget until full ones are dropped.
    #[arg(long, env = "CLIENT_RATE_MAX_CLIENTS", default_value_t = 100_000, value_parser = at_least_one, help_heading = "Per-client budget")]
    pub client_rate_max_clients: usize,
    /// Proxies whose forwarding header names the client: addresses or CIDR blocks, comma-separated
    /// [default: none; the TCP peer is the client].
    #[arg(long, env = "TRUSTED_PROXIES", value_delimiter = ',', value_parser = network, help_heading = "Per-client budget")]
    pub trusted_proxies: Vec<Network>,
    /// The header trusted proxies name the client in; its right-most untrusted hop is the client.
    #[arg(long, env = "CLIENT_ADDRESS_HEADER", default_value = "X-Forwarded-For", value_parser = header_name, help_heading = "Per-client budget")]
    pub client_address_header: String,

    #[command(flatten)]
    pub topics: TopicArgs,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
    // Last: its help heading would otherwise carry over to the arguments after it.
    #[command(flatten)]
    pub kafka: KafkaArgs,
}

fn at_least_one(raw: &str) -> Result<usize, String> {
    match raw.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

fn network(raw: &str) -> Result<Network, String> {
    raw.parse()
}

fn header_name(raw: &str) -> Result<String, String> {
    axum::http::HeaderName::from_bytes(raw.trim().as_bytes())
        .map(|name| name.as_str().to_owned())
        .map_err(|_| format!("{raw:?} is not a header name"))
}

fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms.max(1))
}

impl Settings {
    /// The command, with the gateway's name, address variable and defaults.
    pub fn command() -> clap::Command {
        service::command::<Args>(&DEFAULTS)
    }

    /// Parses `args` (the binary's name first) and the environment; the error names the
    /// variable at fault (`--help` is an error too, which `clap::Error::exit` prints).
    /// `variables` are the process's environment, for `KAFKA_<PROPERTY>`. The source says
    /// whether the request-id secret was generated (the caller warns about it).
    pub fn parse_from<I, T>(
        args: I,
        variables: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(Self, SecretSource), clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        Self::parse_with(Self::command(), args, variables)
    }

    pub(super) fn parse_with<I, T>(
        mut command: clap::Command,
        args: I,
        variables: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(Self, SecretSource), clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let matches = command.try_get_matches_from_mut(args)?;
        let args = Args::from_arg_matches(&matches).map_err(|e| e.format(&mut command))?;
        Self::from_args(args, variables).map_err(|e| command.error(ErrorKind::ValueValidation, e))
    }

    /// The settings `args` describe; fails only for a request-id secret that cannot be used.
    pub fn from_args(
        args: Args,
        variables: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(Self, SecretSource), ConfigError> {
        let (request_id_secret, source) = match args.request_id_secret.filter(|s| !s.expose().trim().is_empty()) {
            Some(hex_text) => (RequestIdSecret::from_hex(hex_text.expose())?, SecretSource::Configured),
            None => (RequestIdSecret::random(), SecretSource::Generated),
        };
        let concurrency = args.hashing_concurrency.unwrap_or_else(|| HashingSettings::owasp().concurrency);
        let publish_timeout = millis(args.publish_timeout_ms);
        let settings = Settings {
            addr: args.http_addr,
            internal_addr: args.internal_addr,
            kafka: args.kafka.settings(NAME, variables),
            database: args.database.settings(),
            registrations_topic: args.registrations_topic,
            publish_timeout,
            request_timeout: args.request_timeout_ms.map_or(publish_timeout + Self::REQUEST_TIMEOUT_MARGIN, millis),
            topic_policy: args.topics.policy(),
            hashing: HashingSettings {
                memory_kib: args.argon2_memory_kib,
                iterations: args.argon2_iterations,
                parallelism: args.argon2_parallelism,
                concurrency,
                queue_limit: args.hashing_queue_limit.unwrap_or(concurrency * HashingSettings::QUEUE_PER_SLOT),
            },
            request_id_secret,
            idempotency: IdempotencySettings {
                ttl: Duration::from_secs(args.idempotency_ttl_secs),
                shared_timeout: Duration::from_millis(args.idempotency_db_timeout_ms),
                capacity: args.idempotency_capacity,
            },
            http: HttpLimits {
                header_read_timeout: millis(args.http_header_read_timeout_ms),
                body_read_timeout: millis(args.http_body_read_timeout_ms),
                max_connections: args.http_max_connections,
            },
            client_budget: ClientBudgetSettings {
                enabled: args.client_rate_limit,
                per_minute: args.client_rate_per_minute,
                burst: args.client_rate_burst,
                max_clients: args.client_rate_max_clients,
                addressing: ClientAddressing {
                    trusted_proxies: args.trusted_proxies,
                    header: args.client_address_header,
                },
            },
            telemetry: args.telemetry,
        };
        Ok((settings, source))
    }
}

#[cfg(test)]
mod tests;

//! Gateway settings: the typed [`Settings`] the application runs with. The binary fills them
//! from its arguments and environment ([`args`]: `gateway --help` lists every variable with
//! its default, and the defaults run against the local services of
//! `scripts/local-services.sh`).
//!
//! Tests build a [`Settings`] with [`Settings::local_defaults`] and change fields, so they
//! never touch the process environment (which every test in the binary shares).

pub mod args;

use std::fmt;
use std::time::Duration;

use rand::RngCore;
use reliable_messaging::kafka::topics::TopicPolicy;
use reliable_messaging::service::{DatabaseSettings, TelemetryArgs};
use reliable_messaging::KafkaSettings;

use crate::client_budget::client_address::ClientAddressing;

pub use args::Args;

/// Everything the gateway needs to start. `Debug` shows neither the database password nor the
/// request-id secret.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `GATEWAY_ADDR`: where the public API (sign-up, status, OpenAPI) listens; port 0 picks
    /// a free port (tests).
    pub addr: String,
    /// `GATEWAY_INTERNAL_ADDR`: where `/metrics` and the probes listen, apart from the public
    /// API so that they need not be exposed with it; port 0 picks a free port (tests).
    pub internal_addr: String,
    pub kafka: KafkaSettings,
    /// `DATABASE_*`: the status route and the shared Idempotency-Key claims use it; the status
    /// route waits at most its acquire timeout for a connection.
    pub database: DatabaseSettings,
    /// `REGISTRATIONS_TOPIC`.
    pub registrations_topic: String,
    /// `PUBLISH_TIMEOUT_MS`: how long a request waits for the broker's acknowledgement
    /// before it is answered 503.
    pub publish_timeout: Duration,
    /// `REQUEST_TIMEOUT_MS`: upper bound on any request until its record is handed to the
    /// producer (then the publish timeout bounds it); longer than the publish timeout so
    /// that the more precise "broker did not acknowledge" answer wins.
    pub request_timeout: Duration,
    /// `TOPIC_*`: what the registrations topic's replication is checked against at start.
    pub topic_policy: TopicPolicy,
    pub hashing: HashingSettings,
    pub request_id_secret: RequestIdSecret,
    pub idempotency: IdempotencySettings,
    pub http: HttpLimits,
    pub client_budget: ClientBudgetSettings,
    /// `RUST_LOG`, `LOG_FORMAT`, `OTEL_*`: what `telemetry::init` takes.
    pub telemetry: TelemetryArgs,
}

/// What one HTTP client may hold of the gateway: how long it may take to send a request,
/// and how many connections all clients together may keep open. Without these a client
/// sending its headers one byte a second kept a connection (and its memory) forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// `HTTP_HEADER_READ_TIMEOUT_MS` (10 000): time from the moment the gateway waits for a
    /// request (a new connection, or an idle kept-alive one) until its headers are complete;
    /// past it the connection is closed without an answer.
    pub header_read_timeout: Duration,
    /// `HTTP_BODY_READ_TIMEOUT_MS` (10 000): time from the complete headers until the whole
    /// body has arrived; past it the request is answered 408 and the connection closed.
    pub body_read_timeout: Duration,
    /// `HTTP_MAX_CONNECTIONS` (1 024): connections open at once; a connection beyond it is
    /// closed as soon as it is accepted.
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            max_connections: 1024,
        }
    }
}

/// The per-client budget of `POST /registrations` (see `crate::client_budget`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientBudgetSettings {
    /// `CLIENT_RATE_LIMIT` (on): off answers no 429 at all.
    pub enabled: bool,
    /// `CLIENT_RATE_PER_MINUTE` (60): sign-ups a client may make per minute, steadily.
    pub per_minute: u32,
    /// `CLIENT_RATE_BURST` (10): sign-ups a client may make at once, after a quiet spell.
    pub burst: u32,
    /// `CLIENT_RATE_MAX_CLIENTS` (100 000): clients tracked at most (about 100 bytes each).
    pub max_clients: usize,
    /// `TRUSTED_PROXIES` (none) and `CLIENT_ADDRESS_HEADER` (`X-Forwarded-For`).
    pub addressing: ClientAddressing,
}

impl Default for ClientBudgetSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            per_minute: 60,
            burst: 10,
            max_clients: 100_000,
            addressing: ClientAddressing { trusted_proxies: Vec::new(), header: "x-forwarded-for".into() },
        }
    }
}

/// argon2id cost and how many hashes may run or wait at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashingSettings {
    /// `ARGON2_MEMORY_KIB`, `ARGON2_ITERATIONS`, `ARGON2_PARALLELISM`: OWASP's argon2id
    /// recommendation by default (19 MiB, 2 passes, 1 lane).
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    /// `HASHING_CONCURRENCY`: hashes running at once on blocking threads (default: CPUs).
    pub concurrency: usize,
    /// `HASHING_QUEUE_LIMIT`: hashes allowed to wait for a slot (default 64 per slot); past
    /// it the gateway answers 503 at once instead of queueing without bound.
    pub queue_limit: usize,
}

impl HashingSettings {
    pub const OWASP_MEMORY_KIB: u32 = 19_456;
    pub const OWASP_ITERATIONS: u32 = 2;
    pub const OWASP_PARALLELISM: u32 = 1;
    pub const QUEUE_PER_SLOT: usize = 64;

    /// OWASP parameters, one slot per CPU.
    pub fn owasp() -> Self {
        let concurrency = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        Self {
            memory_kib: Self::OWASP_MEMORY_KIB,
            iterations: Self::OWASP_ITERATIONS,
            parallelism: Self::OWASP_PARALLELISM,
            concurrency,
            queue_limit: concurrency * Self::QUEUE_PER_SLOT,
        }
    }
}

/// How Idempotency-Key claims are kept (see `crate::idempotency`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdempotencySettings {
    /// `IDEMPOTENCY_TTL_SECS`: how long a key stays bound to its first request, in the shared
    /// table and in the fallback map (default 24 h).
    pub ttl: Duration,
    /// `IDEMPOTENCY_DB_TIMEOUT_MS`: how long a request waits for the shared claim table
    /// before this instance's map decides (default 500 ms).
    pub shared_timeout: Duration,
    /// `IDEMPOTENCY_CAPACITY`: keys the fallback map remembers at most; the oldest is
    /// forgotten first.
    pub capacity: usize,
}

impl Default for IdempotencySettings {
    fn default() -> Self {
        Self { ttl: Duration::from_secs(24 * 60 * 60), shared_timeout: Duration::from_millis(500), capacity: 100_000 }
    }
}

/// The key that signs request ids. Its `Debug` never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct RequestIdSecret(Vec<u8>);

impl RequestIdSecret {
    pub const MIN_BYTES: usize = 16;

    pub fn new(bytes: Vec<u8>) -> Result<Self, ConfigError> {
        if bytes.len() < Self::MIN_BYTES {
            return Err(ConfigError::invalid("REQUEST_ID_SECRET", "must be at least 16 bytes (32 hex digits)"));
        }
        Ok(Self(bytes))
    }

    /// A fresh random 32-byte secret.
    pub fn random() -> Self {
        let mut bytes = vec![0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        Self(bytes)
    }

    pub fn from_hex(hex_text: &str) -> Result<Self, ConfigError> {
        let bytes = hex::decode(hex_text.trim())
            .map_err(|_| ConfigError::invalid("REQUEST_ID_SECRET", "must be hexadecimal"))?;
        Self::new(bytes)
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for RequestIdSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RequestIdSecret(<redacted>)")
    }
}

/// A setting that cannot be used, naming its variable; never quoting a secret's value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid {variable}: {problem}")]
pub struct ConfigError {
    pub variable: String,
    pub problem: String,
}

impl ConfigError {
    pub fn invalid(variable: impl Into<String>, problem: impl Into<String>) -> Self {
        Self { variable: variable.into(), problem: problem.into() }
    }
}

impl Settings {
    pub const DEFAULT_ADDR: &'static str = "127.0.0.1:8080";
    pub const DEFAULT_INTERNAL_ADDR: &'static str = "127.0.0.1:8083";
    pub const DEFAULT_DATABASE_URL: &'static str = "mysql://registrations@127.0.0.1:3306/registrations";
    pub const DEFAULT_PUBLISH_TIMEOUT: Duration = Duration::from_millis(5000);
    pub const DEFAULT_DB_ACQUIRE_TIMEOUT: Duration = Duration::from_millis(250);
    /// Added to the publish timeout for the default request timeout: room for hashing.
    pub const REQUEST_TIMEOUT_MARGIN: Duration = Duration::from_secs(10);

    /// The defaults, parsed as the binary parses them but from no environment at all, with a
    /// random request-id secret: what tests start from.
    pub fn local_defaults() -> Self {
        let command = reliable_messaging::service::ignoring_environment(Self::command());
        Self::parse_with(command, [args::NAME], Vec::new()).expect("the defaults parse").0
    }
}

/// Where the request-id secret came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretSource {
    Configured,
    /// Made up at start: ids issued by an earlier process can no longer be verified.
    Generated,
}

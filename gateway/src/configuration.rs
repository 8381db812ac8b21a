//! Gateway settings: read from environment variables, with defaults that run against the
//! local services of `scripts/local-services.sh`.
//!
//! Tests build a [`Settings`] with [`Settings::local_defaults`] and change fields, so they
//! never touch the process environment (which every test in the binary shares).

use std::fmt;
use std::time::Duration;

use rand::RngCore;
use reliable_messaging::KafkaSettings;

/// Everything the gateway needs to start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `GATEWAY_ADDR`: where to listen; port 0 picks a free port (tests).
    pub addr: String,
    pub kafka: KafkaSettings,
    /// `DATABASE_URL`: only `GET /registrations/{id}` reads it.
    pub database_url: String,
    /// `REGISTRATIONS_TOPIC`.
    pub registrations_topic: String,
    /// `PUBLISH_TIMEOUT_MS`: how long a request waits for the broker's acknowledgement
    /// before it is answered 503.
    pub publish_timeout: Duration,
    /// `REQUEST_TIMEOUT_MS`: upper bound on any request; longer than the publish timeout so
    /// that the more precise "broker did not acknowledge" answer wins.
    pub request_timeout: Duration,
    /// `DB_ACQUIRE_TIMEOUT_MS`: how long the status route waits for a database connection.
    pub db_acquire_timeout: Duration,
    pub hashing: HashingSettings,
    pub request_id_secret: RequestIdSecret,
    pub idempotency: IdempotencySettings,
    pub http: HttpLimits,
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

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid {variable}: {problem}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

impl ConfigError {
    fn invalid(variable: &'static str, problem: impl Into<String>) -> Self {
        Self { variable, problem: problem.into() }
    }
}

impl Settings {
    pub const DEFAULT_ADDR: &'static str = "127.0.0.1:8080";
    pub const DEFAULT_DATABASE_URL: &'static str = "mysql://registrations@127.0.0.1:3306/registrations";
    pub const DEFAULT_PUBLISH_TIMEOUT: Duration = Duration::from_millis(5000);
    pub const DEFAULT_DB_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);
    /// Added to the publish timeout for the default request timeout: room for hashing.
    const REQUEST_TIMEOUT_MARGIN: Duration = Duration::from_secs(10);

    /// The defaults, ignoring the environment, with a random request-id secret.
    pub fn local_defaults() -> Self {
        Self {
            addr: Self::DEFAULT_ADDR.to_owned(),
            kafka: KafkaSettings::new(KafkaSettings::DEFAULT_BOOTSTRAP_SERVERS, "gateway"),
            database_url: Self::DEFAULT_DATABASE_URL.to_owned(),
            registrations_topic: registration_events::REGISTRATIONS_TOPIC.to_owned(),
            publish_timeout: Self::DEFAULT_PUBLISH_TIMEOUT,
            request_timeout: Self::DEFAULT_PUBLISH_TIMEOUT + Self::REQUEST_TIMEOUT_MARGIN,
            db_acquire_timeout: Self::DEFAULT_DB_ACQUIRE_TIMEOUT,
            hashing: HashingSettings::owasp(),
            request_id_secret: RequestIdSecret::random(),
            idempotency: IdempotencySettings::default(),
            http: HttpLimits::default(),
        }
    }

    /// Reads the process environment. The flag says whether the request-id secret was
    /// generated because `REQUEST_ID_SECRET` is unset (the caller warns about it).
    pub fn from_env() -> Result<(Self, SecretSource), ConfigError> {
        let (mut settings, source) = Self::from_lookup(|name| std::env::var(name).ok())?;
        // KAFKA_<PROPERTY> variables: TLS, SASL and any other librdkafka property.
        settings.kafka.read_properties(std::env::vars());
        Ok((settings, source))
    }

    /// Like [`Settings::from_env`], reading variables through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<(Self, SecretSource), ConfigError> {
        let mut s = Self::local_defaults();
        if let Some(v) = lookup("GATEWAY_ADDR") {
            s.addr = v;
        }
        if let Some(v) = lookup("KAFKA_BOOTSTRAP_SERVERS") {
            s.kafka.bootstrap_servers = v;
        }
        if let Some(v) = lookup("DATABASE_URL") {
            s.database_url = v;
        }
        if let Some(v) = lookup("REGISTRATIONS_TOPIC") {
            s.registrations_topic = v;
        }
        if let Some(ms) = number::<u64>(&lookup, "PUBLISH_TIMEOUT_MS")? {
            s.publish_timeout = Duration::from_millis(ms.max(1));
        }
        s.request_timeout = match number::<u64>(&lookup, "REQUEST_TIMEOUT_MS")? {
            Some(ms) => Duration::from_millis(ms.max(1)),
            None => s.publish_timeout + Self::REQUEST_TIMEOUT_MARGIN,
        };
        if let Some(ms) = number::<u64>(&lookup, "DB_ACQUIRE_TIMEOUT_MS")? {
            s.db_acquire_timeout = Duration::from_millis(ms.max(1));
        }
        if let Some(v) = number(&lookup, "ARGON2_MEMORY_KIB")? {
            s.hashing.memory_kib = v;
        }
        if let Some(v) = number(&lookup, "ARGON2_ITERATIONS")? {
            s.hashing.iterations = v;
        }
        if let Some(v) = number(&lookup, "ARGON2_PARALLELISM")? {
            s.hashing.parallelism = v;
        }
        if let Some(v) = number::<usize>(&lookup, "HASHING_CONCURRENCY")? {
            if v == 0 {
                return Err(ConfigError::invalid("HASHING_CONCURRENCY", "must be at least 1"));
            }
            s.hashing.concurrency = v;
        }
        s.hashing.queue_limit = match number(&lookup, "HASHING_QUEUE_LIMIT")? {
            Some(v) => v,
            None => s.hashing.concurrency * HashingSettings::QUEUE_PER_SLOT,
        };
        if let Some(v) = number(&lookup, "IDEMPOTENCY_CAPACITY")? {
            s.idempotency.capacity = v;
        }
        if let Some(secs) = number(&lookup, "IDEMPOTENCY_TTL_SECS")? {
            s.idempotency.ttl = Duration::from_secs(secs);
        }
        if let Some(ms) = number::<u64>(&lookup, "IDEMPOTENCY_DB_TIMEOUT_MS")? {
            s.idempotency.shared_timeout = Duration::from_millis(ms);
        }
        if let Some(ms) = number::<u64>(&lookup, "HTTP_HEADER_READ_TIMEOUT_MS")? {
            s.http.header_read_timeout = Duration::from_millis(ms.max(1));
        }
        if let Some(ms) = number::<u64>(&lookup, "HTTP_BODY_READ_TIMEOUT_MS")? {
            s.http.body_read_timeout = Duration::from_millis(ms.max(1));
        }
        if let Some(v) = number::<usize>(&lookup, "HTTP_MAX_CONNECTIONS")? {
            if v == 0 {
                return Err(ConfigError::invalid("HTTP_MAX_CONNECTIONS", "must be at least 1"));
            }
            s.http.max_connections = v;
        }
        let source = match lookup("REQUEST_ID_SECRET").filter(|v| !v.trim().is_empty()) {
            Some(hex_text) => {
                s.request_id_secret = RequestIdSecret::from_hex(&hex_text)?;
                SecretSource::Configured
            }
            None => SecretSource::Generated,
        };
        Ok((s, source))
    }
}

/// Where the request-id secret came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretSource {
    Configured,
    /// Made up at start: ids issued by an earlier process can no longer be verified.
    Generated,
}

fn number<T: std::str::FromStr>(
    lookup: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
) -> Result<Option<T>, ConfigError> {
    match lookup(variable) {
        None => Ok(None),
        Some(v) => {
            v.trim().parse().map(Some).map_err(|_| ConfigError::invalid(variable, format!("not a number: {v:?}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(vars: &[(&str, &str)]) -> Result<(Settings, SecretSource), ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_run_locally() {
        let (s, source) = from(&[]).unwrap();
        assert_eq!(s.addr, "127.0.0.1:8080");
        assert_eq!(s.database_url, "mysql://registrations@127.0.0.1:3306/registrations");
        assert_eq!(s.registrations_topic, "user-registrations");
        assert_eq!(s.publish_timeout, Duration::from_millis(5000));
        assert!(s.request_timeout > s.publish_timeout);
        assert_eq!((s.hashing.memory_kib, s.hashing.iterations, s.hashing.parallelism), (19_456, 2, 1));
        assert_eq!(s.hashing.queue_limit, 64 * s.hashing.concurrency);
        assert_eq!(s.http, HttpLimits::default());
        assert_eq!(s.http.header_read_timeout, Duration::from_secs(10));
        assert_eq!(source, SecretSource::Generated);
    }

    #[test]
    fn reads_overrides() {
        let secret = "00112233445566778899aabbccddeeff";
        let (s, source) = from(&[
            ("PUBLISH_TIMEOUT_MS", "250"),
            ("HASHING_CONCURRENCY", "3"),
            ("ARGON2_MEMORY_KIB", "64"),
            ("REQUEST_ID_SECRET", secret),
            ("HTTP_HEADER_READ_TIMEOUT_MS", "1500"),
            ("HTTP_BODY_READ_TIMEOUT_MS", "2500"),
            ("HTTP_MAX_CONNECTIONS", "7"),
        ])
        .unwrap();
        assert_eq!(
            s.http,
            HttpLimits {
                header_read_timeout: Duration::from_millis(1500),
                body_read_timeout: Duration::from_millis(2500),
                max_connections: 7,
            }
        );
        assert_eq!(s.publish_timeout, Duration::from_millis(250));
        assert_eq!(s.hashing.concurrency, 3);
        assert_eq!(s.hashing.queue_limit, 192);
        assert_eq!(s.hashing.memory_kib, 64);
        assert_eq!(s.request_id_secret.expose(), hex::decode(secret).unwrap());
        assert_eq!(source, SecretSource::Configured);
    }

    #[test]
    fn rejects_bad_values_and_never_prints_the_secret() {
        assert_eq!(from(&[("PUBLISH_TIMEOUT_MS", "soon")]).unwrap_err().variable, "PUBLISH_TIMEOUT_MS");
        assert_eq!(from(&[("REQUEST_ID_SECRET", "zz")]).unwrap_err().variable, "REQUEST_ID_SECRET");
        assert_eq!(from(&[("REQUEST_ID_SECRET", "0011")]).unwrap_err().variable, "REQUEST_ID_SECRET");
        assert_eq!(from(&[("HASHING_CONCURRENCY", "0")]).unwrap_err().variable, "HASHING_CONCURRENCY");
        assert_eq!(from(&[("HTTP_MAX_CONNECTIONS", "0")]).unwrap_err().variable, "HTTP_MAX_CONNECTIONS");
        let secret = RequestIdSecret::from_hex("00112233445566778899aabbccddeeff").unwrap();
        assert!(!format!("{secret:?}").contains("0011"));
    }
}

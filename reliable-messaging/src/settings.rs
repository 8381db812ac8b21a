//! Connection settings shared by every Kafka client in the workspace.

use rdkafka::ClientConfig;

/// Where the brokers are and who we are, read from the environment with defaults that work
/// against the local services started by `scripts/local-services.sh`.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    pub bootstrap_servers: String,
    pub client_id: String,
}

impl KafkaSettings {
    pub const DEFAULT_BOOTSTRAP_SERVERS: &'static str = "localhost:9092";

    /// `KAFKA_BOOTSTRAP_SERVERS`, defaulting to the local broker.
    pub fn from_env(client_id: &str) -> Self {
        Self {
            bootstrap_servers: std::env::var("KAFKA_BOOTSTRAP_SERVERS")
                .unwrap_or_else(|_| Self::DEFAULT_BOOTSTRAP_SERVERS.to_owned()),
            client_id: client_id.to_owned(),
        }
    }

    pub fn new(bootstrap_servers: impl Into<String>, client_id: impl Into<String>) -> Self {
        Self { bootstrap_servers: bootstrap_servers.into(), client_id: client_id.into() }
    }

    /// The configuration every client starts from.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap_servers)
            .set("client.id", &self.client_id)
            // librdkafka logs connection refusals at error level every second while a broker
            // is down; our own code reports what matters, so keep its noise at warning.
            .set("log_level", "4");
        config
    }
}

/// Reads `name` from the environment and parses it, or returns `default` when unset.
/// The error names the variable and the bad value, so a typo fails at start-up, loudly.
pub fn env_or<T>(name: &str, default: T) -> Result<T, String>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Ok(raw) => raw.trim().parse().map_err(|e| format!("{name}={raw:?} is invalid: {e}")),
        Err(_) => Ok(default),
    }
}

//! Connection settings shared by every Kafka client in the workspace.
//!
//! Besides the bootstrap servers, any librdkafka property can be set from the environment:
//! `KAFKA_` followed by the property name in upper case with `.` written as `_`
//! (`security.protocol` → `KAFKA_SECURITY_PROTOCOL`, `sasl.password` → `KAFKA_SASL_PASSWORD`,
//! `ssl.ca.location` → `KAFKA_SSL_CA_LOCATION`). That is how TLS and SASL are configured for a
//! managed cluster. A `KAFKA_*` variable that names no librdkafka property (a typo, or a
//! variable of another tool such as `KAFKA_HEAP_OPTS`) is ignored with a warning naming it.
//! Values of secret properties (passwords, keys, secrets) are never logged or printed.

use std::fmt;

use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaConfRes;
use rdkafka::ClientConfig;

/// What a producer waits for before a send counts as done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProducerAcks {
    /// Every in-sync replica, with idempotence: the default and the only safe value.
    #[default]
    All,
    /// The leader alone, without idempotence. Exists so the replicated-cluster negative
    /// control can show what `acks=all` prevents, the way `CommitPolicy::UnsafeAutoCommit`
    /// does for commits.
    UnsafeLeaderOnly,
}

/// Prefix of the variables that become librdkafka properties.
pub const PROPERTY_ENV_PREFIX: &str = "KAFKA_";

/// Where the brokers are, who we are, and how we connect (TLS, SASL, any other librdkafka
/// property). A service fills it from its arguments
/// ([`KafkaArgs`](crate::service::KafkaArgs)); nothing here reads the environment.
#[derive(Clone)]
pub struct KafkaSettings {
    pub bootstrap_servers: String,
    pub client_id: String,
    /// librdkafka properties applied to every client, after our defaults (so they can tune,
    /// e.g. `compression.type`) but before what durability needs (`acks`, idempotence, manual
    /// commits), which they cannot weaken.
    pub properties: Vec<(String, String)>,
    /// What a producer waits for; anything but [`ProducerAcks::All`] loses acknowledged
    /// records, and exists only for a negative-control test.
    pub producer_acks: ProducerAcks,
}

/// Debug output with the values of secret properties replaced, so a settings struct can be
/// logged (or end up in a panic message) without leaking a password.
impl fmt::Debug for KafkaSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let properties: Vec<(&str, &str)> = self.properties.iter().map(|(k, v)| (k.as_str(), redacted(k, v))).collect();
        f.debug_struct("KafkaSettings")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("client_id", &self.client_id)
            .field("properties", &properties)
            .field("producer_acks", &self.producer_acks)
            .finish()
    }
}

/// Whether the value of property `key` is a secret: never logged, never in an error message.
pub fn is_secret_property(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["password", "secret", "key.pem", "sasl.jaas.config", "oauthbearer.config", "token"]
        .iter()
        .any(|needle| key.contains(needle))
}

fn redacted<'a>(key: &str, value: &'a str) -> &'a str {
    if is_secret_property(key) {
        "<redacted>"
    } else {
        value
    }
}

/// The librdkafka property a `KAFKA_*` variable names, if it has the prefix.
fn property_name(variable: &str) -> Option<String> {
    let rest = variable.strip_prefix(PROPERTY_ENV_PREFIX)?;
    (!rest.is_empty()).then(|| rest.to_ascii_lowercase().replace('_', "."))
}

/// Whether librdkafka knows property `name` (its value may still be invalid: that is reported
/// when the client is created, naming the property).
fn is_librdkafka_property(name: &str, value: &str) -> bool {
    let mut probe = ClientConfig::new();
    probe.set(name, value);
    !matches!(probe.create_native_config(), Err(KafkaError::ClientConfig(RDKafkaConfRes::RD_KAFKA_CONF_UNKNOWN, ..)))
}

impl KafkaSettings {
    pub const DEFAULT_BOOTSTRAP_SERVERS: &'static str = "localhost:9092";

    pub fn new(bootstrap_servers: impl Into<String>, client_id: impl Into<String>) -> Self {
        Self {
            bootstrap_servers: bootstrap_servers.into(),
            client_id: client_id.into(),
            properties: Vec::new(),
            producer_acks: ProducerAcks::All,
        }
    }

    /// Takes the librdkafka properties out of `variables` (name, value pairs, e.g.
    /// `std::env::vars()`); returns the `KAFKA_*` variables that were ignored because they
    /// name no librdkafka property (each is also logged as a warning). `KAFKA_BOOTSTRAP_SERVERS`
    /// is the `bootstrap_servers` field and is skipped here.
    pub fn read_properties(&mut self, variables: impl IntoIterator<Item = (String, String)>) -> Vec<String> {
        let mut ignored = Vec::new();
        let mut variables: Vec<(String, String)> = variables.into_iter().collect();
        variables.sort();
        for (variable, value) in variables {
            if variable == "KAFKA_BOOTSTRAP_SERVERS" {
                continue;
            }
            let Some(property) = property_name(&variable) else { continue };
            if is_librdkafka_property(&property, &value) {
                self.set_property(property, value);
            } else {
                tracing::warn!(
                    variable = %variable,
                    "{variable} is not a librdkafka property ({property}); ignored"
                );
                ignored.push(variable);
            }
        }
        ignored
    }

    /// Sets (or replaces) one librdkafka property.
    pub fn set_property(&mut self, name: impl Into<String>, value: impl Into<String>) -> &mut Self {
        let (name, value) = (name.into(), value.into());
        self.properties.retain(|(k, _)| *k != name);
        self.properties.push((name, value));
        self
    }

    /// The value of a property set through [`KafkaSettings::set_property`] or the environment.
    pub fn property(&self, name: &str) -> Option<&str> {
        self.properties.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// `security.protocol` as configured (librdkafka's default is `plaintext`).
    pub fn security_protocol(&self) -> &str {
        self.property("security.protocol").unwrap_or("plaintext")
    }

    /// Applies the configured properties to `config` (for clients that set defaults of their
    /// own first and want the operator's properties to win over them).
    pub fn apply_properties(&self, config: &mut ClientConfig) {
        for (k, v) in &self.properties {
            config.set(k, v);
        }
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
        self.apply_properties(&mut config);
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn kafka_variables_become_librdkafka_properties_and_unknown_ones_are_named() {
        let mut settings = KafkaSettings::new("localhost:9092", "test");
        let ignored = settings.read_properties(vars(&[
            ("KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
            ("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"),
            ("KAFKA_SASL_PASSWORD", "hunter2"),
            ("KAFKA_SSL_CA_LOCATION", "/etc/ca.pem"),
            ("KAFKA_BOOTSTRAP_SERVERS", "elsewhere:9092"),
            ("KAFKA_HEAP_OPTS", "-Xmx1g"),
            ("KAFKA_SASL_PASWORD", "typo"),
            ("PATH", "/bin"),
        ]));
        assert_eq!(settings.security_protocol(), "SASL_SSL");
        assert_eq!(settings.property("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(settings.property("ssl.ca.location"), Some("/etc/ca.pem"));
        assert_eq!(settings.property("bootstrap.servers"), None, "the field, not a property");
        assert_eq!(ignored, vec!["KAFKA_HEAP_OPTS".to_owned(), "KAFKA_SASL_PASWORD".to_owned()]);
        let config = settings.client_config();
        assert_eq!(config.get("sasl.password"), Some("hunter2"));
        assert_eq!(config.get("bootstrap.servers"), Some("localhost:9092"));
    }

    #[test]
    fn debug_output_never_shows_a_secret() {
        let mut settings = KafkaSettings::new("localhost:9092", "test");
        settings.set_property("sasl.password", "hunter2");
        settings.set_property("ssl.key.password", "s3cret");
        settings.set_property("sasl.username", "alice");
        let shown = format!("{settings:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("alice") && shown.contains("<redacted>"), "{shown}");
    }
}

//! Where the brokers are and how to connect to them, as flattenable command-line/environment
//! arguments that become a [`KafkaSettings`].
//!
//! The security settings a managed cluster needs are named here so `--help` shows them. Any
//! other librdkafka property still comes from a `KAFKA_<PROPERTY>` variable, as
//! [`KafkaSettings::read_properties`] describes; the binary hands those variables over
//! explicitly ([`KafkaArgs::settings`]), so no library type reads the environment itself.

use crate::kafka::KafkaSettings;
use crate::kafka::ProducerAcks;
use crate::service::configuration::Secret;

/// Kafka connection arguments.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Kafka (any other librdkafka property: KAFKA_<PROPERTY>, `.` written `_`)")]
pub struct KafkaArgs {
    /// Comma-separated brokers to bootstrap from.
    #[arg(long, env = "KAFKA_BOOTSTRAP_SERVERS", default_value = KafkaSettings::DEFAULT_BOOTSTRAP_SERVERS)]
    pub kafka_bootstrap_servers: String,
    /// librdkafka `security.protocol`: plaintext, ssl, sasl_plaintext or sasl_ssl [default: plaintext].
    #[arg(long, env = "KAFKA_SECURITY_PROTOCOL")]
    pub kafka_security_protocol: Option<String>,
    /// SASL mechanism, e.g. SCRAM-SHA-512 or PLAIN.
    #[arg(long, env = "KAFKA_SASL_MECHANISM")]
    pub kafka_sasl_mechanism: Option<String>,
    /// SASL user name.
    #[arg(long, env = "KAFKA_SASL_USERNAME")]
    pub kafka_sasl_username: Option<String>,
    /// SASL password (never printed).
    #[arg(long, env = "KAFKA_SASL_PASSWORD", hide_env_values = true)]
    pub kafka_sasl_password: Option<Secret>,
    /// CA certificate (PEM file) that signed the brokers' certificates.
    #[arg(long, env = "KAFKA_SSL_CA_LOCATION")]
    pub kafka_ssl_ca_location: Option<String>,
    /// What a producer waits for: all in-sync replicas; unsafe-1 (the leader alone) loses
    /// acknowledged records and exists only for a negative-control test.
    #[arg(long, env = "PRODUCER_ACKS", value_enum, default_value_t = ProducerAcksArg::All)]
    pub producer_acks: ProducerAcksArg,
}

/// [`ProducerAcks`] as a command-line value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProducerAcksArg {
    All,
    #[value(name = "unsafe-1")]
    Unsafe1,
}

impl KafkaArgs {
    /// The settings for a client named `client_id`. `variables` are the process's environment
    /// variables (pass `std::env::vars()`): every `KAFKA_<PROPERTY>` among them becomes a
    /// librdkafka property, unknown ones are logged and ignored. The named arguments above win.
    pub fn settings(&self, client_id: &str, variables: impl IntoIterator<Item = (String, String)>) -> KafkaSettings {
        let mut settings = KafkaSettings::new(&self.kafka_bootstrap_servers, client_id);
        settings.read_properties(variables);
        settings.producer_acks = match self.producer_acks {
            ProducerAcksArg::All => ProducerAcks::All,
            ProducerAcksArg::Unsafe1 => ProducerAcks::UnsafeLeaderOnly,
        };
        let named = [
            ("security.protocol", self.kafka_security_protocol.as_deref()),
            ("sasl.mechanism", self.kafka_sasl_mechanism.as_deref()),
            ("sasl.username", self.kafka_sasl_username.as_deref()),
            ("sasl.password", self.kafka_sasl_password.as_ref().map(Secret::expose)),
            ("ssl.ca.location", self.kafka_ssl_ca_location.as_deref()),
        ];
        for (property, value) in named {
            if let Some(value) = value {
                settings.set_property(property, value);
            }
        }
        settings
    }
}

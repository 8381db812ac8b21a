//! Settings from the environment (or the same-named flags), with defaults that run against the
//! local services: `registration-service --help` lists every variable and its default.
//!
//! The variables are the service kit's ([`ServiceArgs`], [`DatabaseArgs`]) plus
//! `REGISTRATIONS_TOPIC`; the probe address is `REGISTRATION_SERVICE_ADDR`. Any other
//! librdkafka property can be set as `KAFKA_<PROPERTY>`.

use clap::FromArgMatches;
use reliable_messaging::service::{
    self, DatabaseArgs, DatabaseSettings, ServiceArgs, ServiceDefaults, ServiceSettings,
};

pub const NAME: &str = "registration-service";
pub const DEFAULT_DATABASE_URL: &str = "mysql://registrations@127.0.0.1:3306/registrations";

/// What this service's command differs in from other services built with the kit.
pub const DEFAULTS: ServiceDefaults = ServiceDefaults {
    name: NAME,
    http_addr_env: "REGISTRATION_SERVICE_ADDR",
    http_addr: "127.0.0.1:8081",
    database_url: Some(DEFAULT_DATABASE_URL),
};

/// The command-line / environment arguments.
#[derive(Debug, Clone, clap::Parser)]
#[command(version, about = "Consumes sign-up events and stores each user in MySQL exactly once.")]
pub struct Args {
    /// The topic of sign-up events; failures go to `<topic>-dlq`.
    #[arg(long, env = "REGISTRATIONS_TOPIC", default_value = registration_events::REGISTRATIONS_TOPIC)]
    pub registrations_topic: String,
    #[command(flatten)]
    pub service: ServiceArgs,
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Tests only (hidden): act as a build that understands schema versions up to this one,
    /// to rehearse a rollout with an "old" consumer.
    #[arg(long, hide = true, default_value_t = registration_events::SCHEMA_VERSION)]
    pub max_schema_version: u32,
    /// Tests only (hidden): `park` treats events for a newer consumer as poison, as builds
    /// before schema version 2 did: the rollout test's negative control.
    #[arg(long, hide = true, value_enum, default_value_t = NewerEvents::Wait)]
    pub newer_events: NewerEvents,
}

/// What the service does with an event written for a newer version of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NewerEvents {
    /// Stop its partition before it until a newer instance takes over (the default).
    Wait,
    /// Dead-letter it as a permanent failure, to be parked (the negative control only).
    Park,
}

/// The typed settings the application runs with: the kit's, kept whole. `Debug` shows no password.
#[derive(Debug, Clone)]
pub struct Settings {
    pub service: ServiceSettings,
    pub database: DatabaseSettings,
    /// The newest schema version this instance reads (this build's, unless a test lowers it).
    pub max_schema_version: u32,
    pub newer_events: NewerEvents,
}

impl Settings {
    /// The command, with this service's name, address variable and defaults.
    pub fn command() -> clap::Command {
        service::command::<Args>(&DEFAULTS)
    }

    /// Parses `args` (the binary's name first) and the environment; the error names the
    /// variable at fault. `variables` are the process's environment, for `KAFKA_<PROPERTY>`.
    pub fn parse_from<I, T>(args: I, variables: impl IntoIterator<Item = (String, String)>) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        Self::parse_with(Self::command(), args, variables)
    }

    /// The defaults, parsed as the binary parses them but from no environment at all: what
    /// tests start from, so a variable set on the developer's machine cannot leak into them.
    pub fn defaults() -> Self {
        Self::parse_with(service::ignoring_environment(Self::command()), [NAME], Vec::new())
            .expect("the defaults parse")
    }

    fn parse_with<I, T>(
        mut command: clap::Command,
        args: I,
        variables: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let matches = command.try_get_matches_from_mut(args)?;
        let args = Args::from_arg_matches(&matches).map_err(|e| e.format(&mut command))?;
        Ok(Self::from_args(&args, variables))
    }

    pub fn from_args(args: &Args, variables: impl IntoIterator<Item = (String, String)>) -> Self {
        Settings {
            service: args.service.settings(NAME, &[args.registrations_topic.as_str()], variables),
            database: args.database.settings(),
            max_schema_version: args.max_schema_version.min(registration_events::SCHEMA_VERSION),
            newer_events: args.newer_events,
        }
    }
}

#[cfg(test)]
mod tests {

    use std::time::Duration;

    use reliable_messaging::dead_letter::Backoff;

    use super::*;

    /// Every variable the service has always read, with those the library once read itself
    /// (the Kafka connection, the topic policy, `PRODUCER_ACKS`, logs and traces).
    const VARIABLES: &[&str] = &[
        "KAFKA_BOOTSTRAP_SERVERS",
        "KAFKA_SECURITY_PROTOCOL",
        "KAFKA_SASL_MECHANISM",
        "KAFKA_SASL_USERNAME",
        "KAFKA_SASL_PASSWORD",
        "KAFKA_SSL_CA_LOCATION",
        "PRODUCER_ACKS",
        "DATABASE_URL",
        "DATABASE_POOL_SIZE",
        "DATABASE_ACQUIRE_TIMEOUT_MS",
        "DATABASE_LOCK_WAIT_TIMEOUT_SECS",
        "DATABASE_MIGRATION_URL",
        "REGISTRATIONS_TOPIC",
        "CONSUMER_GROUP",
        "CONSUMER_INSTANCE_ID",
        "REGISTRATION_SERVICE_ADDR",
        "BATCH_SIZE",
        "PARTITION_CONCURRENCY",
        "BATCH_WAIT_MS",
        "COMMIT_POLICY",
        "DEPENDENCY_OUTAGE",
        "IN_PLACE_RETRIES",
        "IN_PLACE_BACKOFF",
        "IN_PLACE_BACKOFF_INITIAL_MS",
        "IN_PLACE_BACKOFF_MULTIPLIER",
        "IN_PLACE_BACKOFF_MAX_MS",
        "IN_PLACE_BACKOFF_JITTER",
        "OUTAGE_PROBE_BACKOFF",
        "OUTAGE_PROBE_BACKOFF_INITIAL_MS",
        "OUTAGE_PROBE_BACKOFF_MULTIPLIER",
        "OUTAGE_PROBE_BACKOFF_MAX_MS",
        "OUTAGE_PROBE_BACKOFF_JITTER",
        "RETRY_METADATA_FORMAT",
        "RETRY_BACKOFF",
        "RETRY_BACKOFF_INITIAL_MS",
        "RETRY_BACKOFF_MULTIPLIER",
        "RETRY_BACKOFF_MAX_MS",
        "RETRY_BACKOFF_JITTER",
        "DLQ_MAX_CONSECUTIVE_PERMANENT",
        "DLQ_PERMANENT_WINDOW",
        "DLQ_MAX_PERMANENT_SHARE",
        "PUBLISH_TIMEOUT_MS",
        "TOPIC_REPLICATION_FACTOR",
        "TOPIC_MIN_INSYNC_REPLICAS",
        "TOPIC_UNCLEAN_LEADER_ELECTION",
        "TOPIC_PARTITIONS",
        "RUST_LOG",
        "LOG_FORMAT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_SERVICE_NAME",
    ];

    #[test]
    fn help_lists_every_variable() {
        let mut command = Settings::command();
        reliable_messaging::service::check_variables(&mut command, VARIABLES).unwrap();
        let help = command.render_long_help().to_string();
        assert!(!help.contains("HTTP_ADDR]"), "the shared address variable is renamed:\n{help}");
    }

    #[test]
    fn defaults_are_those_of_the_local_services() {
        let settings = Settings::parse_from(
            [NAME, "--kafka-bootstrap-servers", "localhost:9092", "--database-url", DEFAULT_DATABASE_URL],
            Vec::new(),
        )
        .expect("defaults parse");
        let (service, database) = (&settings.service, &settings.database);
        assert_eq!(service.http_addr, "127.0.0.1:8081".parse().expect("addr"));
        assert_eq!(service.consumer.topics, vec![registration_events::REGISTRATIONS_TOPIC.to_owned()]);
        assert_eq!(service.consumer.group_id, NAME);
        assert_eq!(database.url.expose(), DEFAULT_DATABASE_URL);
        assert_eq!((database.pool_size, database.lock_wait_timeout_secs), (5, 5));
        assert_eq!(database.acquire_timeout, Duration::from_millis(250));
        assert_eq!(service.dead_letters.publish_timeout, Duration::from_secs(10));
        assert_eq!(service.dead_letters.schedule, Backoff::default());
    }

    #[test]
    fn debug_never_shows_a_password() {
        let settings = Settings::parse_from(
            [
                NAME,
                "--database-url",
                "mysql://app:hunter2@db.example.com/registrations",
                "--kafka-sasl-password",
                "s3cret",
            ],
            vec![("KAFKA_SSL_KEY_PASSWORD".to_owned(), "k3y".to_owned())],
        )
        .expect("parses");
        assert_eq!(settings.service.kafka.property("sasl.password"), Some("s3cret"), "the secret is used");
        let shown = format!("{settings:?}");
        for secret in ["hunter2", "s3cret", "k3y"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("db.example.com"), "{shown}");
    }

    #[test]
    fn the_readme_lists_every_variable() {
        let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"));
        for variable in VARIABLES {
            assert!(
                readme.contains(&format!("| `{variable}` |")),
                "README.md's configuration does not list {variable}"
            );
        }
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let error = Settings::parse_from([NAME, "--batch-wait-ms", "soon"], Vec::new()).expect_err("invalid");
        assert!(error.to_string().contains("BATCH_WAIT_MS"), "{error}");
    }
}

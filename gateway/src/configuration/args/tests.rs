//! Tests of the gateway's arguments: every variable in `--help`, the defaults, overrides, bad
//! values named, secrets never printed. They pass flags to a command that ignores the
//! environment, so the variables of the machine running them change nothing.

use clap::error::{ContextKind, ContextValue};

use super::*;

/// Every variable the gateway reads, with the kit's (Kafka, database, topic policy, logs and
/// traces).
const VARIABLES: &[&str] = &[
    "GATEWAY_ADDR",
    "GATEWAY_INTERNAL_ADDR",
    "REGISTRATIONS_TOPIC",
    "PUBLISH_TIMEOUT_MS",
    "REQUEST_TIMEOUT_MS",
    "REQUEST_ID_SECRET",
    "ARGON2_MEMORY_KIB",
    "ARGON2_ITERATIONS",
    "ARGON2_PARALLELISM",
    "HASHING_CONCURRENCY",
    "HASHING_QUEUE_LIMIT",
    "IDEMPOTENCY_TTL_SECS",
    "IDEMPOTENCY_DB_TIMEOUT_MS",
    "IDEMPOTENCY_CAPACITY",
    "HTTP_HEADER_READ_TIMEOUT_MS",
    "HTTP_BODY_READ_TIMEOUT_MS",
    "HTTP_MAX_CONNECTIONS",
    "CLIENT_RATE_LIMIT",
    "CLIENT_RATE_PER_MINUTE",
    "CLIENT_RATE_BURST",
    "CLIENT_RATE_MAX_CLIENTS",
    "TRUSTED_PROXIES",
    "CLIENT_ADDRESS_HEADER",
    "TOPIC_REPLICATION_FACTOR",
    "TOPIC_MIN_INSYNC_REPLICAS",
    "TOPIC_UNCLEAN_LEADER_ELECTION",
    "TOPIC_PARTITIONS",
    "DATABASE_URL",
    "DATABASE_POOL_SIZE",
    "DATABASE_ACQUIRE_TIMEOUT_MS",
    "DATABASE_LOCK_WAIT_TIMEOUT_SECS",
    "DATABASE_MIGRATION_URL",
    "KAFKA_BOOTSTRAP_SERVERS",
    "KAFKA_SECURITY_PROTOCOL",
    "KAFKA_SASL_MECHANISM",
    "KAFKA_SASL_USERNAME",
    "KAFKA_SASL_PASSWORD",
    "KAFKA_SSL_CA_LOCATION",
    "PRODUCER_ACKS",
    "RUST_LOG",
    "LOG_FORMAT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_SERVICE_NAME",
];

/// The flag that sets `variable`.
fn flag(variable: &str) -> String {
    let command = Settings::command();
    let arg = command
        .get_arguments()
        .find(|a| a.get_env().is_some_and(|env| env == variable))
        .unwrap_or_else(|| panic!("no argument reads {variable}"));
    format!("--{}", arg.get_long().expect("every argument has a long flag"))
}

/// The variable a clap error is about: its value name, which is the variable's name.
fn variable_in(error: &clap::Error) -> String {
    match error.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(arg)) => arg.split(['<', '>']).nth(1).unwrap_or(arg).to_owned(),
        _ => String::new(),
    }
}

/// The settings that `vars` set, as the binary would make them from those variables alone.
fn from(vars: &[(&str, &str)]) -> Result<(Settings, SecretSource), ConfigError> {
    let mut argv = vec![NAME.to_owned()];
    for (variable, value) in vars {
        argv.extend([flag(variable), (*value).to_owned()]);
    }
    let matches = service::ignoring_environment(Settings::command())
        .try_get_matches_from(argv)
        .map_err(|e| ConfigError::invalid(variable_in(&e), e.to_string()))?;
    let args = Args::from_arg_matches(&matches).expect("matches of this command");
    Settings::from_args(args, Vec::new())
}

#[test]
fn defaults_run_locally() {
    let (s, source) = from(&[]).unwrap();
    assert_eq!(s.addr, "127.0.0.1:8080");
    assert_eq!(s.database.url, "mysql://registrations@127.0.0.1:3306/registrations");
    assert_eq!((s.database.pool_size, s.database.lock_wait_timeout_secs), (5, 5));
    assert_eq!(s.database.acquire_timeout, Duration::from_millis(250));
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
fn local_defaults_are_the_parsed_defaults() {
    let local = Settings::local_defaults();
    assert_eq!(local.addr, Settings::DEFAULT_ADDR);
    assert_eq!(local.database.url, Settings::DEFAULT_DATABASE_URL);
    assert_eq!(local.database.acquire_timeout, Settings::DEFAULT_DB_ACQUIRE_TIMEOUT);
    assert_eq!(local.publish_timeout, Settings::DEFAULT_PUBLISH_TIMEOUT);
    assert_eq!(local.request_timeout, Settings::DEFAULT_PUBLISH_TIMEOUT + Settings::REQUEST_TIMEOUT_MARGIN);
    assert_eq!(local.kafka.bootstrap_servers, reliable_messaging::KafkaSettings::DEFAULT_BOOTSTRAP_SERVERS);
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

#[test]
fn help_lists_every_variable() {
    let mut command = Settings::command();
    reliable_messaging::service::check_variables(&mut command, VARIABLES).unwrap();
    let help = command.render_long_help().to_string();
    assert!(!help.contains("HTTP_ADDR]"), "the shared address variable is renamed:\n{help}");
}

#[test]
fn debug_never_shows_a_secret() {
    let secret = "00112233445566778899aabbccddeeff";
    let (settings, _) = Settings::parse_from(
        [
            NAME,
            "--database-url",
            "mysql://app:hunter2@db.example.com/registrations",
            "--kafka-sasl-password",
            "s3cret",
            "--request-id-secret",
            secret,
        ],
        Vec::new(),
    )
    .expect("parses");
    assert_eq!(settings.kafka.property("sasl.password"), Some("s3cret"), "the secret is used");
    let shown = format!("{settings:?}");
    for hidden in ["hunter2", "s3cret", secret, "0, 17, 34"] {
        assert!(!shown.contains(hidden), "{hidden} in {shown}");
    }
    assert!(shown.contains("db.example.com"), "{shown}");
}

#[test]
fn a_bad_value_names_its_variable_and_not_the_secret() {
    let error = Settings::parse_from([NAME, "--publish-timeout-ms", "soon"], Vec::new()).expect_err("invalid");
    assert!(error.to_string().contains("PUBLISH_TIMEOUT_MS"), "{error}");
    let error =
        Settings::parse_from([NAME, "--request-id-secret", "not-hex-hunter2"], Vec::new()).expect_err("invalid");
    assert!(error.to_string().contains("REQUEST_ID_SECRET"), "{error}");
    assert!(!error.to_string().contains("hunter2"), "{error}");
}

#[test]
fn the_readme_lists_every_variable() {
    let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"));
    for variable in VARIABLES {
        assert!(readme.contains(&format!("| `{variable}` |")), "README.md's configuration does not list {variable}");
    }
}

#[test]
fn the_client_budget_and_the_internal_listener_are_configurable() {
    let (s, _) = from(&[]).unwrap();
    assert_eq!(s.internal_addr, "127.0.0.1:8083");
    assert_ne!(s.internal_addr, s.addr, "the probes and /metrics are not on the public listener");
    assert_eq!(s.client_budget, ClientBudgetSettings::default());
    assert!(s.client_budget.enabled && s.client_budget.addressing.trusted_proxies.is_empty());

    let (s, _) = from(&[
        ("CLIENT_RATE_LIMIT", "off"),
        ("CLIENT_RATE_PER_MINUTE", "120"),
        ("CLIENT_RATE_BURST", "3"),
        ("TRUSTED_PROXIES", "127.0.0.1,10.0.0.0/8"),
        ("CLIENT_ADDRESS_HEADER", "X-Real-IP"),
    ])
    .unwrap();
    assert!(!s.client_budget.enabled);
    assert_eq!((s.client_budget.per_minute, s.client_budget.burst), (120, 3));
    assert_eq!(s.client_budget.addressing.trusted_proxies.len(), 2);
    assert_eq!(s.client_budget.addressing.header, "x-real-ip");

    assert_eq!(from(&[("TRUSTED_PROXIES", "10.0.0.0/40")]).unwrap_err().variable, "TRUSTED_PROXIES");
    assert_eq!(from(&[("CLIENT_RATE_BURST", "0")]).unwrap_err().variable, "CLIENT_RATE_BURST");
}

//! Tests of the worker's arguments: every variable in `--help`, the defaults, bad values named,
//! secrets never printed, and the variables still read when a subcommand runs.

use super::*;
use crate::cli::{Cli, Command};

/// Every variable the worker has always read, with `PRODUCER_ACKS` and the kit's database,
/// log and trace variables, which the worker now reads like every other service.
const VARIABLES: &[&str] = &[
    "DLQ_WORKER_ADDR",
    "ADMIN_TOKEN",
    "ADMIN_TOKENS",
    "ADMIN_TOKENS_FILE",
    "CONSOLE_READYZ_URLS",
    "CANARY_STATUS_URL",
    "ERASURE_TOPIC",
    "DLQ_TOPIC_PATTERN",
    "DLQ_CONSUMER_GROUP",
    "DLQ_METADATA_REFRESH_MS",
    "RETRY_THRESHOLD",
    "DLQ_MAX_SCHEDULED",
    "DLQ_RESUME_BELOW",
    "DLQ_MAX_IN_FLIGHT",
    "DLQ_COMMIT_INTERVAL_MS",
    "PUBLISH_TIMEOUT_MS",
    "DLQ_REDRIVE_RATE",
    "DLQ_MAX_CONSECUTIVE_PARKED",
    "DLQ_PARKED_WINDOW",
    "DLQ_MAX_PARKED_SHARE",
    "RETRY_METADATA_FORMAT",
    "RETRY_BACKOFF",
    "RETRY_BACKOFF_INITIAL_MS",
    "RETRY_BACKOFF_MULTIPLIER",
    "RETRY_BACKOFF_MAX_MS",
    "RETRY_BACKOFF_JITTER",
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

/// Parses flags alone: the variables of the machine running the tests change nothing.
fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
    use clap::FromArgMatches;
    let matches = service::ignoring_environment(Cli::command())
        .try_get_matches_from(std::iter::once(NAME).chain(args.iter().copied()))?;
    Ok(Cli::from_arg_matches(&matches).expect("matches of this command"))
}

fn settings(args: &[&str]) -> Settings {
    Settings::from_args(&parse(args).expect("parses").worker, Vec::new())
}

#[test]
fn help_lists_every_variable() {
    let mut command = Cli::command();
    reliable_messaging::service::check_variables(&mut command, VARIABLES).unwrap();
}

#[test]
fn defaults_run_locally() {
    let s = Settings::defaults();
    assert_eq!(s.http_addr, "127.0.0.1:8082".parse().expect("address"));
    assert_eq!(s.database.url, DEFAULT_DATABASE_URL);
    assert_eq!((s.topic_pattern.as_str(), s.group_id.as_str()), ("^.*-dlq$", "dlq-worker"));
    assert_eq!((s.max_scheduled, s.resume_below, s.max_in_flight), (20_000, 10_000, 64));
    assert_eq!(s.retry_schedule, Backoff::default());
    assert_eq!(s.metadata_format, MetadataFormat::Headers);
    assert_eq!(s.park_limit, DeadLetterLimit::default());
    assert_eq!(s.redrive_rate, Rate::default());
    assert!(s.admin_token.is_none(), "the admin API is off unless a token is set");
}

#[test]
fn debug_never_shows_a_secret() {
    let s = settings(&[
        "--admin-token",
        "t0ken",
        "--database-url",
        "mysql://app:hunter2@db.example.com/registrations",
        "--kafka-sasl-password",
        "s3cret",
    ]);
    assert_eq!(s.admin_token.as_ref().map(Secret::expose), Some("t0ken"), "the token is used");
    let shown = format!("{s:?}");
    for secret in ["t0ken", "hunter2", "s3cret"] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    assert!(shown.contains("db.example.com"), "{shown}");
}

#[test]
fn a_bad_value_names_its_variable() {
    for (args, variable) in [
        (&["--dlq-max-scheduled", "many"][..], "DLQ_MAX_SCHEDULED"),
        (&["--dlq-topic-pattern", "orders-dlq"][..], "DLQ_TOPIC_PATTERN"),
        (&["--dlq-max-parked-share", "1.5"][..], "DLQ_MAX_PARKED_SHARE"),
        (&["--retry-backoff", "linear"][..], "RETRY_BACKOFF"),
        (&["--dlq-redrive-rate", "fast"][..], "DLQ_REDRIVE_RATE"),
    ] {
        let error = parse(args).expect_err("invalid").to_string();
        assert!(error.contains(variable), "{args:?}: {error}");
    }
}

#[test]
fn the_worker_settings_apply_to_the_subcommands() {
    let cli = parse(&["--database-url", "mysql://ops@db.example.com/registrations", "parked", "list"]).expect("parses");
    assert!(matches!(cli.command, Some(Command::Parked(_))), "{cli:?}");
    assert_eq!(Settings::from_args(&cli.worker, Vec::new()).database.url, "mysql://ops@db.example.com/registrations");
}

#[test]
fn an_empty_admin_token_leaves_the_admin_api_off() {
    assert!(settings(&["--admin-token", " "]).admin_token.is_none());
}

#[test]
fn operator_settings_are_read_and_a_bad_readyz_list_is_refused() {
    let s = settings(&[
        "--admin-tokens",
        "alice:a",
        "--console-readyz-urls",
        "gateway=http://127.0.0.1:8080/readyz",
        "--canary-status-url",
        "http://127.0.0.1:8080/registrations/{request_id}",
    ]);
    assert_eq!(s.operator.named_tokens.as_ref().map(Secret::expose), Some("alice:a"));
    assert!(!format!("{s:?}").contains("alice:a"), "named tokens are never printed");
    assert_eq!(s.operator.readyz_urls, vec![("gateway".to_owned(), "http://127.0.0.1:8080/readyz".to_owned())]);
    assert!(s.operator.canary_status_url.is_some());
    let args = ["dlq-worker", "--console-readyz-urls", "gateway"];
    assert!(crate::cli::Cli::parse_args(args).is_err());
}

#[test]
fn the_readme_lists_every_variable() {
    let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"));
    for variable in VARIABLES {
        assert!(readme.contains(&format!("| `{variable}` |")), "README.md's configuration does not list {variable}");
    }
}

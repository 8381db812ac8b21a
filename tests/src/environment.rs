//! Finds the Kafka broker and MySQL server the tests run against.
//!
//! In order: `KAFKA_BOOTSTRAP_SERVERS` + `DATABASE_URL` from the environment (what
//! `scripts/test.sh` sets after starting the local services); else containers started with
//! testcontainers when a Docker engine answers; else a panic that says how to start them.

use std::process::Command;
use std::time::Duration;

use clap::Parser as _;

use testcontainers_modules::kafka::apache::{Kafka, KAFKA_PORT};
use testcontainers_modules::mysql::Mysql;
use testcontainers_modules::testcontainers::runners::AsyncRunner;
use testcontainers_modules::testcontainers::{ContainerAsync, ImageExt};
use tokio::sync::OnceCell;

/// The servers of this test run. Shared by every test of a test binary.
pub struct TestEnv {
    pub kafka_bootstrap: String,
    /// A URL whose user may create databases; tests get their own database from it.
    pub database_url: String,
    _containers: Option<(ContainerAsync<Kafka>, ContainerAsync<Mysql>)>,
}

static ENV: OnceCell<TestEnv> = OnceCell::const_new();

/// The Kafka version of every path: scripts/kafka/pom.xml (local services), compose.yaml and
/// here. Change them together.
pub const KAFKA_IMAGE_TAG: &str = "4.1.1";

const HOW_TO_START: &str = "No Kafka/MySQL for the integration tests. Start the local services and export their \
addresses:\n\n    scripts/local-services.sh up && eval \"$(scripts/local-services.sh env)\"\n\nor run the whole suite \
with scripts/test.sh (which does both), or set KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL to servers of your own, \
or make a Docker engine reachable so testcontainers can start apache/kafka and mysql:8.4.";

/// The shared environment, resolved once per test binary.
pub async fn test_env() -> &'static TestEnv {
    ENV.get_or_init(resolve).await
}

async fn resolve() -> TestEnv {
    let _ = tracing_subscriber_init();
    match (std::env::var("KAFKA_BOOTSTRAP_SERVERS"), std::env::var("DATABASE_URL")) {
        (Ok(kafka_bootstrap), Ok(database_url)) => TestEnv { kafka_bootstrap, database_url, _containers: None },
        _ if docker_answers() => start_containers().await,
        _ => panic!("{HOW_TO_START}"),
    }
}

fn tracing_subscriber_init() -> Option<()> {
    // Service logs in tests are noise unless asked for with TEST_LOG=1.
    if std::env::var("TEST_LOG").is_ok() {
        let args = TestLogArgs::try_parse_from(["integration-tests"]).unwrap_or_else(|e| panic!("{e}"));
        reliable_messaging::service::telemetry::init("integration-tests", &args.telemetry);
    }
    Some(())
}

/// The test process's logs and traces, read by clap from `RUST_LOG`, `LOG_FORMAT` and `OTEL_*`
/// as a service reads them: the library reads no variable itself.
#[derive(clap::Parser)]
struct TestLogArgs {
    #[command(flatten)]
    telemetry: reliable_messaging::service::TelemetryArgs,
}

fn docker_answers() -> bool {
    Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .map(|o| o.status.success() && !o.stdout.is_empty())
        .unwrap_or(false)
}

async fn start_containers() -> TestEnv {
    // The module defaults to apache/kafka:3.8.0; pinned to the broker every other path runs.
    let kafka =
        Kafka::default().with_tag(KAFKA_IMAGE_TAG).start().await.expect("start apache/kafka with testcontainers");
    let mysql = Mysql::default().with_tag("8.4").start().await.expect("start mysql:8.4 with testcontainers");
    let kafka_port = kafka.get_host_port_ipv4(KAFKA_PORT).await.expect("kafka port");
    let mysql_port = mysql.get_host_port_ipv4(3306).await.expect("mysql port");
    // The images report ready slightly before they accept clients.
    tokio::time::sleep(Duration::from_secs(2)).await;
    TestEnv {
        kafka_bootstrap: format!("127.0.0.1:{kafka_port}"),
        database_url: format!("mysql://root@127.0.0.1:{mysql_port}/test"),
        _containers: Some((kafka, mysql)),
    }
}

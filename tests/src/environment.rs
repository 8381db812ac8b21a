//! Finds the Kafka broker and MySQL/MariaDB server the tests run against.
//!
//! In order: `KAFKA_BOOTSTRAP_SERVERS` + `DATABASE_URL` from the environment (what
//! `scripts/test.sh` sets after starting the local services); else containers started with
//! testcontainers when a Docker-API engine answers and accepts the API version the crate sends
//! (an older one fails at once, saying so); else a panic that says how to start them.
//!
//! The containers run in the host's network namespace on free ports picked here, because
//! podman reports published ports in a form testcontainers cannot read, and a bridge would
//! change the machine's network; the images take those ports through their environment.

use std::time::Duration;

use clap::Parser as _;

use rdkafka::consumer::{BaseConsumer, Consumer as _};
use sqlx::Connection as _;
use testcontainers_modules::testcontainers::runners::AsyncRunner;
use testcontainers_modules::testcontainers::{ContainerAsync, GenericImage, ImageExt};
use tokio::sync::OnceCell;

use crate::engine::{self, Probe};

/// The servers of this test run. Shared by every test of a test binary.
pub struct TestEnv {
    pub kafka_bootstrap: String,
    /// A URL whose user may create databases; tests get their own database from it.
    pub database_url: String,
    /// The ids of the broker's and the database's containers, when they run in containers.
    pub container_ids: Option<(String, String)>,
    _containers: Option<(ContainerAsync<GenericImage>, ContainerAsync<GenericImage>)>,
}

static ENV: OnceCell<TestEnv> = OnceCell::const_new();

/// The Kafka version of every path: scripts/kafka/pom.xml (local services), compose.yaml,
/// scripts/container-images.sh and here. Change them together.
pub const KAFKA_IMAGE_TAG: &str = "4.1.1";
/// MariaDB, as the local services run it (Debian 12's); MySQL 8 has no package or registry here.
pub const MARIADB_IMAGE_TAG: &str = "10.11";

const HOW_TO_START: &str = "No Kafka/MySQL for the integration tests. Start the local services and export their \
addresses:\n\n    scripts/local-services.sh up && eval \"$(scripts/local-services.sh env)\"\n\nor run the whole suite \
with scripts/test.sh (which does both), or set KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL to servers of your own, \
or make a Docker engine reachable (DOCKER_HOST) so testcontainers can start apache/kafka:4.1.1 and mariadb:10.11 \
(scripts/container-engine.sh up starts one; README, \"Docker / containers\").";

/// The shared environment, resolved once per test binary.
pub async fn test_env() -> &'static TestEnv {
    ENV.get_or_init(resolve).await
}

async fn resolve() -> TestEnv {
    let _ = tracing_subscriber_init();
    match (std::env::var("KAFKA_BOOTSTRAP_SERVERS"), std::env::var("DATABASE_URL")) {
        (Ok(kafka_bootstrap), Ok(database_url)) => {
            TestEnv { kafka_bootstrap, database_url, container_ids: None, _containers: None }
        }
        _ => match engine::probe().await {
            Probe::Ready { endpoint, server } => start_containers(&endpoint, &server).await,
            Probe::TooOld { endpoint, server_api, answer } => panic!("{}", too_old(&endpoint, &server_api, &answer)),
            Probe::Absent { endpoint, reason } => panic!("{HOW_TO_START}\n\n(no engine at {endpoint}: {reason})"),
        },
    }
}

/// The message for an engine whose API is older than testcontainers speaks.
pub fn too_old(endpoint: &str, server_api: &str, answer: &str) -> String {
    format!(
        "The container engine at {endpoint} speaks Docker API {server_api} at most, but testcontainers (0.27) sends \
API {client} and cannot negotiate down (its answer: {answer}).\n\nEither use an engine that accepts API {client} \
(Docker Engine 29 or newer, or podman's `podman system service`: scripts/container-engine.sh up starts one and prints \
its DOCKER_HOST), or run the tests against the local services instead:\n\n    scripts/local-services.sh up && eval \
\"$(scripts/local-services.sh env)\"\n\n(which sets KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL; scripts/test.sh does both).",
        client = engine::CLIENT_API_VERSION,
    )
}

fn tracing_subscriber_init() -> Option<()> {
    // Service logs in tests are noise unless asked for with TEST_LOG=1.
    if std::env::var("TEST_LOG").is_ok() {
        let args = TestLogArgs::try_parse_from(["integration-tests"]).unwrap_or_else(|e| panic!("{e}"));
        reliable_messaging::service::runtime::telemetry::init("integration-tests", &args.telemetry);
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

async fn start_containers(endpoint: &engine::Endpoint, server: &str) -> TestEnv {
    engine::remove_orphans(endpoint).await;
    let [kafka_port, controller_port, db_port] = free_ports();
    let pid = std::process::id().to_string();
    let listeners = format!("PLAINTEXT://127.0.0.1:{kafka_port},CONTROLLER://127.0.0.1:{controller_port}");
    let kafka = GenericImage::new("apache/kafka", KAFKA_IMAGE_TAG)
        .with_env_var("KAFKA_NODE_ID", "1")
        .with_env_var("KAFKA_PROCESS_ROLES", "broker,controller")
        .with_env_var("KAFKA_LISTENERS", listeners)
        .with_env_var("KAFKA_ADVERTISED_LISTENERS", format!("PLAINTEXT://127.0.0.1:{kafka_port}"))
        .with_env_var("KAFKA_LISTENER_SECURITY_PROTOCOL_MAP", "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT")
        .with_env_var("KAFKA_CONTROLLER_LISTENER_NAMES", "CONTROLLER")
        .with_env_var("KAFKA_INTER_BROKER_LISTENER_NAME", "PLAINTEXT")
        .with_env_var("KAFKA_CONTROLLER_QUORUM_VOTERS", format!("1@127.0.0.1:{controller_port}"))
        // As the local broker (scripts/kafka/server.properties): the tests rely on these.
        .with_env_var("KAFKA_NUM_PARTITIONS", "3")
        .with_env_var("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "true")
        .with_env_var("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "1")
        .with_env_var("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1")
        .with_env_var("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1")
        .with_env_var("KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR", "1")
        .with_env_var("KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR", "1")
        .with_env_var("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS", "0")
        .with_env_var("KAFKA_HEAP_OPTS", "-Xms256m -Xmx512m")
        .with_label(engine::PID_LABEL, &pid)
        .with_host_config_modifier(host_network)
        .start()
        .await
        .unwrap_or_else(|e| panic!("start apache/kafka:{KAFKA_IMAGE_TAG} with testcontainers on {server}: {e}"));
    // Loopback only: with the host's network, 0.0.0.0 would open the database to the LAN.
    let mariadb = GenericImage::new("mariadb", MARIADB_IMAGE_TAG)
        .with_env_var("MARIADB_ALLOW_EMPTY_ROOT_PASSWORD", "1")
        .with_env_var("MARIADB_DATABASE", "test")
        .with_cmd([
            format!("--port={db_port}"),
            "--bind-address=127.0.0.1".into(),
            "--character-set-server=utf8mb4".into(),
            "--collation-server=utf8mb4_unicode_ci".into(),
            "--max-connections=500".into(),
        ])
        .with_label(engine::PID_LABEL, &pid)
        .with_host_config_modifier(host_network)
        .start()
        .await
        .unwrap_or_else(|e| panic!("start mariadb:{MARIADB_IMAGE_TAG} with testcontainers on {server}: {e}"));
    let env = TestEnv {
        kafka_bootstrap: format!("127.0.0.1:{kafka_port}"),
        database_url: format!("mysql://root@127.0.0.1:{db_port}/mysql"),
        container_ids: Some((kafka.id().to_owned(), mariadb.id().to_owned())),
        _containers: Some((kafka, mariadb)),
    };
    await_ready(&env).await;
    record(&env);
    env
}

fn host_network(config: &mut testcontainers_modules::testcontainers::bollard::models::HostConfig) {
    config.network_mode = Some("host".into());
}

/// Three ports free on 127.0.0.1 now (held together, so they differ).
fn free_ports() -> [u16; 3] {
    let listeners: Vec<_> =
        (0..3).map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port")).collect();
    let port = |i: usize| listeners[i].local_addr().expect("local addr").port();
    [port(0), port(1), port(2)]
}

/// Both servers take clients: a metadata answer from the broker, a session on the database.
async fn await_ready(env: &TestEnv) {
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &env.kafka_bootstrap)
        .create()
        .expect("kafka client for the readiness check");
    let ready = crate::wait::within(Duration::from_secs(180), || async {
        sqlx::MySqlConnection::connect(&env.database_url).await.is_ok()
            && consumer.fetch_metadata(None, Duration::from_secs(2)).is_ok_and(|m| !m.brokers().is_empty())
    })
    .await;
    assert!(ready, "the broker and database containers {:?} did not take clients within 180 s", env.container_ids);
}

/// With TESTCONTAINERS_RECORD=FILE, one line per test binary: its containers' ids, so that the
/// CI can check them against the engine's event log (that the tests really ran in them).
fn record(env: &TestEnv) {
    let (Ok(file), Some((kafka, mariadb))) = (std::env::var("TESTCONTAINERS_RECORD"), &env.container_ids) else {
        return;
    };
    let binary = std::env::args().next().unwrap_or_default();
    let line = format!("{binary} kafka={kafka} mariadb={mariadb}\n");
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&file).expect("open TESTCONTAINERS_RECORD");
    f.write_all(line.as_bytes()).expect("write TESTCONTAINERS_RECORD");
}

//! The dlq-worker for tests, scoped to one test (its own topic prefix, subscription pattern and
//! consumer group, so tests running in parallel never drain each other's dead-letter topics):
//! in-process ([`RunningWorker`], from [`settings`]) or as an OS process ([`process_env`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dlq_worker::metrics::Metrics;
use dlq_worker::{Application, Settings};
use reliable_messaging::dead_letter::Backoff;
use reliable_messaging::service::DatabaseSettings;
use reliable_messaging::KafkaSettings;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::TestEnv;

/// The retry delay the tests configure: short, so a test waits seconds, not minutes.
pub const TEST_BACKOFF: Duration = Duration::from_millis(300);

/// Names of one test's topics and of its worker's subscription and group.
pub struct Scope {
    pub prefix: String,
    pub group: String,
}

impl Scope {
    pub fn new(env: &TestEnv) -> Self {
        let prefix = env.unique_topic("dlqt");
        Scope { group: format!("{prefix}-dlq-worker"), prefix }
    }

    /// A topic of this test: `<prefix>-<name>`.
    pub fn topic(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    /// The default `-dlq` rule, restricted to this test's topics.
    pub fn pattern(&self) -> String {
        format!("^{}-.*-dlq$", self.prefix)
    }
}

/// The worker's defaults (parsed, never from the environment), pointed at this test's broker,
/// database and topics, with short delays so a test waits seconds, not minutes.
pub fn settings(env: &TestEnv, scope: &Scope, database_url: &str) -> Settings {
    let mut settings = Settings::defaults();
    settings.kafka = KafkaSettings::new(env.kafka_bootstrap.clone(), "dlq-worker-test");
    settings.database = DatabaseSettings { pool_size: 3, ..DatabaseSettings::new(database_url) };
    settings.topic_pattern = scope.pattern();
    settings.group_id = scope.group.clone();
    settings.metadata_refresh = Duration::from_millis(1000);
    settings.retry_schedule = Backoff::constant(TEST_BACKOFF);
    settings.commit_interval = Duration::from_millis(200);
    settings.http_addr = "127.0.0.1:0".parse().unwrap();
    settings
}

/// A worker running in this process.
pub struct RunningWorker {
    pub address: SocketAddr,
    pub metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    handle: JoinHandle<anyhow::Result<()>>,
}

impl RunningWorker {
    pub async fn start(settings: Settings) -> RunningWorker {
        let app = Application::build(settings).await.expect("build the dlq-worker");
        let address = app.address();
        let metrics = app.metrics();
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(app.run_until_stopped(shutdown.clone()));
        // The worker migrates before it subscribes; tests that take the database away right
        // after the start mean an outage of a worker that is already working.
        let subscribed = metrics.clone();
        crate::wait::until(Duration::from_secs(60), "the dlq-worker migrated and subscribed", || {
            let subscribed = subscribed.subscribed.load(std::sync::atomic::Ordering::Relaxed);
            async move { subscribed }
        })
        .await;
        RunningWorker { address, metrics, shutdown, handle }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Graceful stop, as on SIGTERM.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.handle)
            .await
            .expect("worker stops within 30 s")
            .expect("worker task")
            .expect("worker ran cleanly");
    }
}

/// Environment for the `dlq-worker` binary, equivalent to [`settings`].
pub fn process_env(env: &TestEnv, scope: &Scope, database_url: &str, http_port: u16) -> Vec<(&'static str, String)> {
    vec![
        ("KAFKA_BOOTSTRAP_SERVERS", env.kafka_bootstrap.clone()),
        ("DATABASE_URL", database_url.to_owned()),
        ("DLQ_TOPIC_PATTERN", scope.pattern()),
        ("DLQ_CONSUMER_GROUP", scope.group.clone()),
        ("DLQ_METADATA_REFRESH_MS", "1000".into()),
        ("DLQ_COMMIT_INTERVAL_MS", "200".into()),
        ("RETRY_BACKOFF", "constant".into()),
        ("RETRY_BACKOFF_INITIAL_MS", TEST_BACKOFF.as_millis().to_string()),
        ("DLQ_WORKER_ADDR", format!("127.0.0.1:{http_port}")),
        ("RUST_LOG", "info,dlq_worker=debug".into()),
    ]
}

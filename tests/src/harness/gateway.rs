//! The gateway for tests: in-process on random ports ([`GatewayServer`] from any settings,
//! [`InProcessGateway`] with a topic and a database of its own), and the environment of the
//! `gateway` binary run as an OS process ([`process_env`], on [`GatewayPorts`]). Every gateway
//! has two listeners: the public API, and `/metrics` with the probes (`internal_url`).

use std::time::Duration;

use gateway::configuration::{HashingSettings, Settings};
use gateway::routes::ServedRoute;
use gateway::startup::Application;
use tokio_util::sync::CancellationToken;

use crate::database::TestDatabase;
use crate::TestEnv;

/// Gateway settings for a test: a free port, the test run's broker, `topic` and
/// `database_url`, generous timeouts and cheap password hashing (tests are not about its cost).
pub fn test_settings(env: &TestEnv, topic: &str, database_url: &str) -> Settings {
    let mut settings = Settings::local_defaults();
    settings.addr = "127.0.0.1:0".into();
    settings.internal_addr = "127.0.0.1:0".into();
    settings.kafka.bootstrap_servers = env.kafka_bootstrap.clone();
    settings.registrations_topic = topic.to_owned();
    settings.database.url = database_url.into();
    // Generous: the first send of a fresh idempotent producer waits for its producer id.
    settings.publish_timeout = Duration::from_secs(15);
    settings.request_timeout = Duration::from_secs(30);
    settings.hashing =
        HashingSettings { memory_kib: 1024, iterations: 1, parallelism: 1, concurrency: 2, queue_limit: 128 };
    // Every test client is 127.0.0.1: the per-client budget would turn floods about other
    // things into 429s. Tests of the budget switch it on.
    settings.client_budget.enabled = false;
    settings
}

/// A gateway served by a task of the test process, from settings the test chose; several may
/// share a topic, a database and a secret, as instances of one deployment do.
pub struct GatewayServer {
    pub port: u16,
    /// `http://127.0.0.1:<port>`
    pub base: String,
    /// The port of `/metrics` and the probes.
    pub internal_port: u16,
    /// The routes its public router serves, for tests that hold the API document to them.
    pub routes: Vec<ServedRoute>,
    /// The routes of its internal listener.
    pub internal_routes: Vec<ServedRoute>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl GatewayServer {
    /// Builds the gateway (it binds its port here, so it is reachable when this returns) and
    /// serves it in the background.
    pub async fn start(settings: Settings) -> Self {
        let app = Application::build(settings).await.expect("build the gateway");
        let (port, internal_port) = (app.port(), app.internal_port());
        let (routes, internal_routes) = (app.routes().to_vec(), app.internal_routes().to_vec());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(app.run_until_stopped(shutdown.clone()));
        let base = format!("http://127.0.0.1:{port}");
        Self { port, base, internal_port, routes, internal_routes, shutdown, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `path` (`/metrics`, `/healthz`, `/readyz`) on the internal listener.
    pub fn internal_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.internal_port)
    }

    /// Graceful stop; panics unless the server ends cleanly within `within`.
    pub async fn stop(self, within: Duration) {
        self.shutdown.cancel();
        tokio::time::timeout(within, self.task)
            .await
            .unwrap_or_else(|_| panic!("the gateway stops within {within:?}"))
            .expect("the gateway task joins")
            .expect("the server ends without error");
    }
}

/// A gateway in-process on a random port, against the test run's broker, with a topic and a
/// database of its own.
pub struct InProcessGateway {
    pub port: u16,
    /// `http://127.0.0.1:<port>`
    pub base: String,
    /// The port of `/metrics` and the probes.
    pub internal_port: u16,
    pub topic: String,
    pub db: TestDatabase,
    pub routes: Vec<ServedRoute>,
    pub internal_routes: Vec<ServedRoute>,
    server: GatewayServer,
}

impl InProcessGateway {
    /// Starts a gateway with cheap password hashing (tests are not about its cost), after
    /// `customise` has changed its settings.
    pub async fn start(env: &TestEnv, customise: impl FnOnce(&mut Settings)) -> Self {
        let topic = env.unique_topic("edge-registrations");
        env.create_topics(&[&topic], 1).await;
        let db = env.fresh_database().await;
        let mut settings = test_settings(env, &topic, &db.url);
        customise(&mut settings);
        let server = GatewayServer::start(settings).await;
        Self {
            port: server.port,
            base: server.base.clone(),
            internal_port: server.internal_port,
            topic,
            db,
            routes: server.routes.clone(),
            internal_routes: server.internal_routes.clone(),
            server,
        }
    }

    pub fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    /// `path` (`/metrics`, `/healthz`, `/readyz`) on the internal listener.
    pub fn internal_url(&self, path: &str) -> String {
        self.server.internal_url(path)
    }

    /// Records on this gateway's topic, across partitions.
    pub fn records_on_topic(&self, env: &TestEnv) -> i64 {
        env.end_offsets(&self.topic).values().sum()
    }

    /// Graceful stop; panics unless the server ends cleanly within `within`.
    pub async fn stop(self, within: Duration) {
        self.server.stop(within).await;
    }
}

/// The two ports of a gateway process: the public API and the internal listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GatewayPorts {
    pub public: u16,
    /// `/metrics`, `/healthz`, `/readyz`.
    pub internal: u16,
}

impl GatewayPorts {
    pub fn free() -> Self {
        Self { public: super::free_port(), internal: super::free_port() }
    }

    /// `http://127.0.0.1:<public>`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.public)
    }

    /// `http://127.0.0.1:<internal>`
    pub fn internal_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.internal)
    }
}

/// Environment of the `gateway` binary serving on `ports`, publishing to `topic` of the broker at
/// `kafka_bootstrap`, with `database_url` and the request-id `secret` (instances of one
/// deployment share it), and cheap password hashing: tests are about loss and start-up, not
/// about the cost of a hash, and no per-client budget (every test client is 127.0.0.1). Tests
/// add or override variables after these.
pub fn process_env(
    ports: GatewayPorts,
    kafka_bootstrap: &str,
    database_url: &str,
    topic: &str,
    secret: &str,
) -> Vec<(&'static str, String)> {
    vec![
        ("GATEWAY_ADDR", format!("127.0.0.1:{}", ports.public)),
        ("GATEWAY_INTERNAL_ADDR", format!("127.0.0.1:{}", ports.internal)),
        ("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap.to_owned()),
        ("DATABASE_URL", database_url.to_owned()),
        ("REGISTRATIONS_TOPIC", topic.to_owned()),
        ("REQUEST_ID_SECRET", secret.to_owned()),
        ("ARGON2_MEMORY_KIB", "1024".to_owned()),
        ("ARGON2_ITERATIONS", "1".to_owned()),
        ("CLIENT_RATE_LIMIT", "off".to_owned()),
    ]
}

/// A secret for [`process_env`]: 64 hex characters, fresh per deployment.
pub fn random_secret() -> String {
    uuid::Uuid::new_v4().simple().to_string() + &uuid::Uuid::new_v4().simple().to_string()
}

/// Whether `GET status_url` (a gateway's `/registrations/{id}`) answers `"completed"` within
/// `timeout`.
pub async fn completed_within(client: &reqwest::Client, status_url: &str, timeout: Duration) -> bool {
    crate::wait::within(timeout, || async move {
        match client.get(status_url).send().await {
            Ok(r) => r.json::<serde_json::Value>().await.is_ok_and(|v| v["status"] == "completed"),
            Err(_) => false,
        }
    })
    .await
}

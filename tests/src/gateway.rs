//! A gateway served in-process on a random port, against the test run's broker, with a
//! topic and a database of its own: for tests that talk to it over raw sockets or through
//! an external tool rather than with `reqwest` alone.

use std::time::Duration;

use gateway::configuration::{HashingSettings, Settings};
use gateway::startup::Application;
use tokio_util::sync::CancellationToken;

use crate::database::TestDatabase;
use crate::TestEnv;

pub struct InProcessGateway {
    pub port: u16,
    /// `http://127.0.0.1:<port>`
    pub base: String,
    pub topic: String,
    pub db: TestDatabase,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Gateway settings for a test: a free port, the test run's broker, `topic` and
/// `database_url`, generous timeouts and cheap password hashing (tests are not about its cost).
pub fn test_settings(env: &TestEnv, topic: &str, database_url: &str) -> Settings {
    let mut settings = Settings::local_defaults();
    settings.addr = "127.0.0.1:0".into();
    settings.kafka.bootstrap_servers = env.kafka_bootstrap.clone();
    settings.registrations_topic = topic.to_owned();
    settings.database_url = database_url.into();
    // Generous: the first send of a fresh idempotent producer waits for its producer id.
    settings.publish_timeout = Duration::from_secs(15);
    settings.request_timeout = Duration::from_secs(30);
    settings.hashing =
        HashingSettings { memory_kib: 1024, iterations: 1, parallelism: 1, concurrency: 2, queue_limit: 128 };
    settings
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
        let app = Application::build(settings).await.expect("build the gateway");
        let port = app.port();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(app.run_until_stopped(shutdown.clone()));
        Self { port, base: format!("http://127.0.0.1:{port}"), topic, db, shutdown, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Records on this gateway's topic, across partitions.
    pub fn records_on_topic(&self, env: &TestEnv) -> i64 {
        env.end_offsets(&self.topic).values().sum()
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

//! The registration-service for tests: in-process on a random port ([`InProcessService`], from
//! [`service_settings`]), or as a killable OS process ([`service_process_env`],
//! [`spawn_service_process`]).

use std::time::Duration;

use registration_service::configuration::Settings;
use registration_service::startup::Application;
use reliable_messaging::consumer::CommitPolicy;
use reliable_messaging::dead_letter::Backoff;
use tokio_util::sync::CancellationToken;

use crate::database::TestDatabase;
use crate::harness::ServiceProcess;
use crate::TestEnv;

/// Settings for a registration-service of one test: its own topic, group and database.
pub fn service_settings(env: &TestEnv, topic: &str, group: &str, database_url: &str) -> Settings {
    // The defaults (no environment read), then this test's resources.
    let mut settings = Settings::defaults();
    let service = &mut settings.service;
    service.kafka = reliable_messaging::KafkaSettings::new(&env.kafka_bootstrap, "registration-service-test");
    service.consumer = reliable_messaging::consumer::ConsumerSettings::new(group, &[topic]);
    service.consumer.in_place_backoff = Backoff::constant(Duration::from_millis(100));
    service.consumer.commit_policy = CommitPolicy::AfterDurableOutcome;
    service.http_addr = "127.0.0.1:0".parse().expect("addr");
    service.dead_letters.schedule = Backoff::constant(Duration::from_millis(200));
    settings.database.url = database_url.into();
    settings
}

/// A registration-service running inside the test process; stops when dropped.
pub struct InProcessService {
    pub http_port: u16,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl InProcessService {
    pub async fn start(settings: Settings) -> InProcessService {
        let app = Application::build(settings).await.expect("build registration-service");
        let http_port = app.http_port();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(app.run_until_stopped(shutdown.clone()));
        InProcessService { http_port, shutdown, task }
    }

    /// Graceful stop: the batch in progress is committed before this returns.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.expect("service task").expect("service exited cleanly");
    }
}

/// Stores every record on `topic` into `db` with a registration-service of its own, and
/// returns how many there were: what the ledger of a flood test holds the answers to.
pub async fn store_everything_on(env: &TestEnv, topic: &str, db: &TestDatabase) -> i64 {
    let on_topic: i64 = env.end_offsets(topic).values().sum();
    let service = InProcessService::start(service_settings(env, topic, &format!("{topic}-group"), &db.url)).await;
    crate::wait::until(Duration::from_secs(60), "every record on the topic stored", || async {
        db.count("SELECT COUNT(*) FROM users").await == on_topic
    })
    .await;
    service.stop().await;
    on_topic
}

/// Environment for the `registration-service` binary of one test.
pub fn service_process_env(env: &TestEnv, topic: &str, group: &str, database_url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("KAFKA_BOOTSTRAP_SERVERS", env.kafka_bootstrap.clone()),
        ("DATABASE_URL", database_url.to_owned()),
        ("REGISTRATIONS_TOPIC", topic.to_owned()),
        ("CONSUMER_GROUP", group.to_owned()),
        ("REGISTRATION_SERVICE_ADDR", "127.0.0.1:0".to_owned()),
        ("RETRY_BACKOFF", "constant".to_owned()),
        ("RETRY_BACKOFF_INITIAL_MS", "200".to_owned()),
    ]
}

/// Starts the `registration-service` binary with `env` plus `extra` overrides.
pub fn spawn_service_process(base: &[(&'static str, String)], extra: &[(&'static str, &str)]) -> ServiceProcess {
    let mut vars: Vec<(&str, String)> = base.to_vec();
    for (k, v) in extra {
        vars.retain(|(name, _)| name != k);
        vars.push((k, (*v).to_owned()));
    }
    ServiceProcess::spawn("registration-service", &vars)
}

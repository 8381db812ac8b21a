//! Registration events and a registration-service for tests: sample events, fast bulk
//! producing, and the service either in-process or as a killable OS process.

use std::time::Duration;

use chrono::Utc;
use futures::future::join_all;
use rdkafka::message::{Header as KafkaHeader, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use registration_events::{RegistrationRequested, REQUEST_ID_HEADER, SCHEMA_VERSION};
use registration_service::configuration::Settings;
use registration_service::startup::Application;
use reliable_messaging::backoff::Backoff;
use reliable_messaging::CommitPolicy;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::processes::ServiceProcess;
use crate::TestEnv;

/// A valid event for a unique user. The hash is a syntactically valid argon2id PHC string;
/// the consumer never verifies passwords, so no slow hashing is needed here.
pub fn sample_event() -> RegistrationRequested {
    let id = Uuid::new_v4();
    RegistrationRequested {
        schema_version: SCHEMA_VERSION,
        request_id: id,
        email: format!("user-{}@example.com", id.simple()),
        name: "Test User".into(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG".into(),
        requested_at: Utc::now(),
    }
}

/// Produces `events` to `topic` as the gateway would (key = email, `x-request-id` header),
/// concurrently, and waits for every acknowledgement.
pub async fn produce_events(env: &TestEnv, topic: &str, events: &[RegistrationRequested]) {
    let producer = env.producer();
    for chunk in events.chunks(1000) {
        let sends = chunk.iter().map(|e| {
            let payload = e.to_json();
            let id = e.request_id.to_string();
            let producer = producer.clone();
            let topic = topic.to_owned();
            let key = e.email.clone();
            async move {
                let headers =
                    OwnedHeaders::new().insert(KafkaHeader { key: REQUEST_ID_HEADER, value: Some(id.as_bytes()) });
                let record = FutureRecord::to(&topic).key(key.as_bytes()).payload(&payload).headers(headers);
                producer.send(record, Duration::from_secs(10)).await.map_err(|(e, _)| e).expect("produce event");
            }
        });
        join_all(sends).await;
    }
}

/// Settings for a registration-service of one test: its own topic, group and database.
pub fn service_settings(env: &TestEnv, topic: &str, group: &str, database_url: &str) -> Settings {
    // Defaults, then point at this test's resources; from_env reads nothing test-specific.
    let mut settings = Settings::from_env().expect("default settings");
    settings.kafka = reliable_messaging::KafkaSettings::new(&env.kafka_bootstrap, "registration-service-test");
    settings.consumer = reliable_messaging::ConsumerSettings::new(group, &[topic]);
    settings.consumer.in_place_backoff = Backoff::constant(Duration::from_millis(100));
    settings.consumer.commit_policy = CommitPolicy::AfterDurableOutcome;
    settings.database_url = database_url.into();
    settings.http_addr = "127.0.0.1:0".parse().expect("addr");
    settings.retry_schedule = Backoff::constant(Duration::from_millis(200));
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

//! What the system says is what happened, against a real broker and a real database:
//! * an `Idempotency-Key` reused with another body is refused with 409 across gateway restarts
//!   and across instances, and even when the shared claim cannot be checked, the other body
//!   never gets the first one's request id (so it can never be reported as the first one's
//!   `completed`);
//! * the registration-service never calls an event stored because *a* row holds its request
//!   id: the row must hold its content, else the event is `rejected`, and the status says so;
//! * "email already registered" exactly when the canonical address is taken: pairs that must
//!   and must not collide, on the database's own unique key.

use std::time::Duration;

use gateway::configuration::RequestIdSecret;
use gateway::request_id::RequestIds;
use integration_tests::harness::free_port;
use integration_tests::harness::gateway::{test_settings, GatewayServer};
use integration_tests::harness::registration::{service_settings, InProcessService};
use integration_tests::ledger::{self, Expected};
use integration_tests::registrations::{produce_events, sample_event};
use integration_tests::{test_env, wait, TestEnv};
use registration_events::canonical_email;
use registration_events::email::equality_examples::{MUST_COLLIDE, MUST_NOT_COLLIDE};
use reliable_messaging::dead_letter::dead_letter_topic;
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

/// One in-process gateway; several may share a topic, a database and a secret, as instances
/// of one deployment do.
struct Gateway(GatewayServer);

struct Deployment {
    topic: String,
    database_url: String,
    secret: RequestIdSecret,
}

impl Deployment {
    async fn new(env: &TestEnv, database_url: String) -> Self {
        let topic = env.unique_topic("truthful-registrations");
        env.create_topics(&[&topic], 1).await;
        Self { topic, database_url, secret: RequestIdSecret::random() }
    }

    async fn start_gateway(&self, env: &TestEnv) -> Gateway {
        let mut settings = test_settings(env, &self.topic, &self.database_url);
        settings.request_id_secret = self.secret.clone();
        settings.database.acquire_timeout = Duration::from_millis(500);
        settings.idempotency.shared_timeout = Duration::from_millis(1_000);
        Gateway(GatewayServer::start(settings).await)
    }
}

impl Gateway {
    async fn register(&self, body: &Value, key: &str) -> reqwest::Response {
        reqwest::Client::new()
            .post(self.0.url("/registrations"))
            .header("Idempotency-Key", key)
            .json(body)
            .send()
            .await
            .expect("POST /registrations")
    }

    /// Asserts a 202 and returns its request id.
    async fn accepted(&self, body: &Value, key: &str) -> Uuid {
        let response = self.register(body, key).await;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert_eq!(status, StatusCode::ACCEPTED, "{text}");
        let json: Value = serde_json::from_str(&text).expect("JSON");
        Uuid::parse_str(json["request_id"].as_str().expect("request_id")).expect("uuid")
    }

    async fn conflict(&self, body: &Value, key: &str) {
        let response = self.register(body, key).await;
        let status = response.status();
        let problem: Value = response.json().await.unwrap_or_default();
        assert_eq!(status, StatusCode::CONFLICT, "a reused key with another body: {problem}");
        assert_eq!(problem["type"], "/problems/idempotency-key-reused", "{problem}");
    }

    async fn metrics(&self) -> String {
        reqwest::get(self.0.internal_url("/metrics")).await.unwrap().text().await.unwrap()
    }

    async fn stop(self) {
        self.0.stop(Duration::from_secs(20)).await;
    }
}

fn body(email: &str, name: &str) -> Value {
    json!({"email": email, "name": name, "password": "correct horse battery staple"})
}

fn unique_email(prefix: &str) -> String {
    format!("{prefix}-{}@example.com", Uuid::new_v4().simple())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_key_with_another_body_is_409_across_restarts_and_instances() {
    let env = test_env().await;
    let db = env.fresh_database().await;
    let deployment = Deployment::new(env, db.url.clone()).await;
    let (a, b) = (body(&unique_email("a"), "Ada"), body(&unique_email("b"), "Bob"));

    let first = deployment.start_gateway(env).await;
    let id_a = first.accepted(&a, "K").await;
    first.stop().await;

    // A restart forgets everything in memory; the claim is shared.
    let restarted = deployment.start_gateway(env).await;
    restarted.conflict(&b, "K").await;
    assert_eq!(restarted.accepted(&a, "K").await, id_a, "the same request keeps its id after a restart");

    // A second instance, running beside the first.
    let second = deployment.start_gateway(env).await;
    second.conflict(&b, "K").await;
    assert_eq!(second.accepted(&a, "K").await, id_a, "and at another instance");
    let (c, d) = (body(&unique_email("c"), "Cy"), body(&unique_email("d"), "Di"));
    restarted.accepted(&c, "K2").await;
    second.conflict(&d, "K2").await;
    assert!(
        second.metrics().await.contains("gateway_idempotency_claims_total{source=\"shared\"}"),
        "claims are decided by the shared table"
    );
    restarted.stop().await;
    second.stop().await;

    let published: i64 = env.end_offsets(&deployment.topic).values().sum();
    assert_eq!(published, 4, "A three times and C once; the conflicting bodies were never published");
    assert_eq!(db.count("SELECT COUNT(*) FROM idempotency_keys").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_shared_claims_another_body_still_gets_another_request_id() {
    let env = test_env().await;
    // Nothing listens here: the shared claim fails and each instance's own map decides.
    let port = free_port();
    let deployment = Deployment::new(env, format!("mysql://nobody@127.0.0.1:{port}/nothing")).await;
    let (a, b) = (body(&unique_email("a"), "Ada"), body(&unique_email("b"), "Bob"));

    let first = deployment.start_gateway(env).await;
    let id_a = first.accepted(&a, "K").await;
    first.stop().await;
    let restarted = deployment.start_gateway(env).await;
    // Accepting B here is honest only because B is not A: it gets its own id, so its outcome
    // (stored, or "email already registered") is its own, never A's "completed".
    let id_b = restarted.accepted(&b, "K").await;
    assert_ne!(id_b, id_a, "a different body under a reused key never shares the first one's request id");
    // Within one instance the fallback map still refuses the conflict.
    restarted.conflict(&a, "K").await;
    // And without any storage, the same body gets the same id at another instance.
    let another = deployment.start_gateway(env).await;
    assert_eq!(another.accepted(&a, "K").await, id_a, "the same body keeps its id");
    another.stop().await;
    assert!(
        restarted.metrics().await.contains("gateway_idempotency_claims_total{source=\"local_fallback\"}"),
        "the fallback decided"
    );
    restarted.stop().await;
}

/// An event whose request id finds a row holding another email: rejected with a reason that
/// says so, the row untouched, and the status route never says `completed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_whose_request_id_holds_other_content_is_rejected_never_completed() {
    let env = test_env().await;
    let db = env.fresh_database().await;
    let topic = env.unique_topic("truthful-sink");
    env.create_topics(&[&topic, &dead_letter_topic(&topic)], 1).await;
    // An id the gateway of this deployment would recognise, so its status route answers.
    let secret = RequestIdSecret::random();
    let request_id = RequestIds::new(secret.clone()).random();
    let mut first = sample_event();
    first.request_id = request_id;
    let mut other = sample_event();
    other.request_id = request_id;
    // Same id, a different sign-up: what a reused key produced before ids were bound to the body.
    produce_events(env, &topic, &[first.clone(), other.clone()]).await;

    let service = InProcessService::start(service_settings(env, &topic, "registration-service", &db.url)).await;
    let db_ref = &db;
    wait::until(Duration::from_secs(30), "the conflicting event is rejected", || async move {
        db_ref.count("SELECT COUNT(*) FROM request_status WHERE status = 'rejected'").await == 1
    })
    .await;
    service.stop().await;

    let stored_email: Vec<u8> = sqlx::query_scalar("SELECT email FROM users WHERE request_id = ?")
        .bind(request_id.as_bytes().to_vec())
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(stored_email, first.email.as_bytes(), "the first row is untouched");
    let reason: String = sqlx::query_scalar("SELECT reason FROM request_status WHERE request_id = ?")
        .bind(request_id.as_bytes().to_vec())
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert!(reason.contains("different email or name"), "{reason}");

    // The ledger, which compares content, flags the second acceptance.
    let report = ledger::check(&db, &ledger::expected_from_events(&[first, other])).await;
    assert_eq!(report.mismatched, vec![request_id], "{report}");

    // What a client holding this id is told.
    let deployment = Deployment { topic: topic.clone(), database_url: db.url.clone(), secret };
    let gateway = deployment.start_gateway(env).await;
    let status: Value =
        reqwest::get(format!("{}/registrations/{request_id}", gateway.0.base)).await.unwrap().json().await.unwrap();
    assert_eq!(status["status"], "rejected", "never completed for content that was not stored: {status}");
    gateway.stop().await;
}

/// "Email already registered" exactly when the canonical address is taken: through the
/// gateway's canonical form, the consumer, and the database's unique key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_already_registered_only_when_it_is() {
    let env = test_env().await;
    let db = env.fresh_database().await;
    let topic = env.unique_topic("truthful-emails");
    env.create_topics(&[&topic, &dead_letter_topic(&topic)], 1).await;
    let run = Uuid::new_v4().simple().to_string();
    // A local-part suffix per run and pair keeps every pair apart from the others.
    let event_for = |address: &str, pair: usize| {
        let (local, domain) = address.trim().rsplit_once('@').unwrap();
        let mut event = sample_event();
        event.email = canonical_email(&format!("{local}.{run}{pair}@{domain}")).expect("valid address");
        event
    };
    let (firsts, seconds): (Vec<_>, Vec<_>) = MUST_COLLIDE
        .iter()
        .chain(MUST_NOT_COLLIDE)
        .enumerate()
        .map(|(pair, (a, b))| (event_for(a, pair), event_for(b, pair)))
        .unzip();
    produce_events(env, &topic, &firsts).await;
    let service = InProcessService::start(service_settings(env, &topic, "registration-service", &db.url)).await;
    let expected_rows = firsts.len() as i64;
    let db_ref = &db;
    wait::until(Duration::from_secs(30), "the first of each pair is stored", || async move {
        db_ref.count("SELECT COUNT(*) FROM users").await == expected_rows
    })
    .await;
    produce_events(env, &topic, &seconds).await;
    wait::until(Duration::from_secs(30), "the second of each pair is consumed", || async {
        env.group_caught_up("registration-service", &topic)
    })
    .await;
    service.stop().await;

    for (first, second) in firsts.iter().zip(&seconds) {
        let rejected = db
            .count(&format!(
                "SELECT COUNT(*) FROM request_status WHERE status = 'rejected' AND request_id = UNHEX('{}')",
                second.request_id.simple()
            ))
            .await
            == 1;
        let collide = first.email == second.email;
        assert_eq!(
            rejected,
            collide,
            "{:?} after {:?}: rejected={rejected}, but the addresses {} the same",
            second.email,
            first.email,
            if collide { "are" } else { "are not" }
        );
    }
    let all: Vec<Expected> =
        ledger::expected_from_events(&firsts).into_iter().chain(ledger::expected_from_events(&seconds)).collect();
    let report = ledger::check(&db, &all).await;
    report.assert_clean();
    assert_eq!(report.rejected, MUST_COLLIDE.len(), "{report}");
}

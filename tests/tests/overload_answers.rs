//! Every answer true under overload, against a real broker and a real database: one client
//! floods `POST /registrations` (bounded in count and time, loopback only) while every record
//! sits in the producer past the gateway's overall request limit. The ledger then holds each
//! stored row to its answer: a row exists only for a request answered 202, or 503 saying it
//! may have been recorded (with its request id); never for a "not accepted".
//!
//! The fault is placed, not hoped for: `linger.ms` is longer than `REQUEST_TIMEOUT_MS`, so the
//! overall limit passes while *every* published record is with the producer. Before the fix
//! such requests were answered "timed out … not accepted" and stored anyway.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use gateway::configuration::HashingSettings;
use integration_tests::harness::gateway::{test_settings, GatewayServer};
use integration_tests::harness::registration::store_everything_on;
use integration_tests::ledger::{self, Expected, PasswordEvidence};
use integration_tests::{metrics, test_env};
use reliable_messaging::message::REQUEST_ID_HEADER;
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

/// The overall request limit, and how long every record lingers in the producer past it.
const REQUEST_TIMEOUT: Duration = Duration::from_millis(800);
const LINGER: Duration = Duration::from_millis(1_500);
/// The flood: one client, this many requests, this many in flight at once.
const FLOOD_REQUESTS: usize = 240;
const FLOOD_IN_FLIGHT: usize = 48;
const PASSWORD: &str = "correct horse battery staple";

/// What one request of the flood was told.
#[derive(Debug)]
struct Answer {
    email: String,
    status: StatusCode,
    problem_type: Option<String>,
    /// From the request id header (a 202, or a 503 that may have been recorded).
    request_id: Option<Uuid>,
    took: Duration,
}

impl Answer {
    /// A 503 that says the registration may have been recorded: the publish timeout's.
    fn may_be_recorded(&self) -> bool {
        self.status == StatusCode::SERVICE_UNAVAILABLE
            && self.problem_type.as_deref() == Some("/problems/not-accepted")
            && self.request_id.is_some()
    }
}

async fn post(client: &reqwest::Client, url: &str, email: String) -> Answer {
    let started = Instant::now();
    let response = client
        .post(url)
        .json(&json!({"email": email, "name": "Flood", "password": PASSWORD}))
        .send()
        .await
        .expect("POST /registrations");
    let status = response.status();
    let request_id =
        response.headers().get(REQUEST_ID_HEADER).and_then(|v| v.to_str().ok()).and_then(|v| Uuid::parse_str(v).ok());
    let problem: Value = response.json().await.unwrap_or_default();
    let problem_type = problem["type"].as_str().map(str::to_owned);
    Answer { email, status, problem_type, request_id, took: started.elapsed() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_a_flood_every_stored_row_was_answered_202_or_may_have_been_recorded() {
    let env = test_env().await;
    let db = env.fresh_database().await;
    let topic = env.unique_topic("overload-answers");
    env.create_topics(&[&topic], 1).await;

    let mut settings = test_settings(env, &topic, &db.url);
    settings.request_timeout = REQUEST_TIMEOUT;
    settings.publish_timeout = Duration::from_secs(15);
    settings.kafka.properties.push(("linger.ms".into(), LINGER.as_millis().to_string()));
    // A small hashing queue: the flood overloads it, so some answers are a clean 503.
    settings.hashing =
        HashingSettings { memory_kib: 1024, iterations: 1, parallelism: 1, concurrency: 2, queue_limit: 16 };
    let gateway = GatewayServer::start(settings).await;

    let client = reqwest::Client::builder().pool_max_idle_per_host(FLOOD_IN_FLIGHT).build().expect("client");
    let url = gateway.url("/registrations");
    let flood = futures::stream::iter((0..FLOOD_REQUESTS).map(|i| {
        let (client, url) = (client.clone(), url.clone());
        async move { post(&client, &url, format!("flood-{i}-{}@example.com", Uuid::new_v4().simple())).await }
    }))
    .buffer_unordered(FLOOD_IN_FLIGHT)
    .collect::<Vec<Answer>>();
    let answers = tokio::time::timeout(Duration::from_secs(120), flood).await.expect("the flood ends within 2 min");
    let past_deadline = metrics::read(gateway.internal_port, "gateway_requests_past_deadline_total")
        .await
        .expect("the gateway's metrics");
    gateway.stop(Duration::from_secs(30)).await;

    let mut by_kind: HashMap<String, usize> = HashMap::new();
    for a in &answers {
        *by_kind.entry(format!("{} {}", a.status.as_u16(), a.problem_type.as_deref().unwrap_or("-"))).or_default() += 1;
    }
    let accepted: Vec<&Answer> = answers.iter().filter(|a| a.status == StatusCode::ACCEPTED).collect();
    let overloaded = answers.iter().filter(|a| a.problem_type.as_deref() == Some("/problems/overloaded")).count();
    eprintln!("answers: {by_kind:?}; requests past the deadline: {past_deadline}");

    // The flood really overloaded the gateway: some answers were a clean "not accepted".
    assert!(overloaded > 0, "the flood must overload the hashing queue: {by_kind:?}");

    // Let the registration-service store everything the broker holds.
    let on_topic = store_everything_on(env, &topic, &db).await;

    // The ledger: every 202 stored, with what it sent ...
    let expected: Vec<Expected> = accepted
        .iter()
        .map(|a| Expected {
            request_id: a.request_id.expect("a 202 carries its request id"),
            email: a.email.clone(),
            name: "Flood".into(),
            password: PasswordEvidence::Plaintext(PASSWORD.into()),
        })
        .collect();
    let report = ledger::check(&db, &expected).await;
    let may_be: Vec<Uuid> = answers.iter().filter(|a| a.may_be_recorded()).filter_map(|a| a.request_id).collect();
    // ... and every stored row was answered 202 or "may have been recorded"; a row behind a
    // "not accepted" (a timeout, an overload) would be a lie told to its client.
    let untrue = report.stored_but_answered_not_accepted(&may_be);
    assert!(report.lost.is_empty() && report.duplicated.is_empty() && report.mismatched.is_empty(), "{report}");
    assert!(
        untrue.is_empty(),
        "{} stored row(s) were answered \"not accepted\" ({by_kind:?}), e.g. {:?}",
        untrue.len(),
        &untrue[..untrue.len().min(5)]
    );
    assert_eq!(
        on_topic as usize,
        accepted.len() + report.unexpected.len(),
        "every record on the topic is accounted for"
    );

    // The fault landed: the overall limit passed while records were with the producer, and
    // those requests were let finish (each 202 waited out the linger, past the limit).
    assert!(!accepted.is_empty(), "some sign-ups must get through: {by_kind:?}");
    assert!(past_deadline >= 1.0, "the request limit must pass with records at the producer: {by_kind:?}");
    assert!(
        accepted.iter().all(|a| a.took > REQUEST_TIMEOUT),
        "every 202 waited out the linger, past the request limit"
    );
}

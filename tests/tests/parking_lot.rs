//! The parking lot against a real database and broker: parking is idempotent and records the
//! request's status; operators list, show, redrive and discard through the `dlq-worker parked`
//! command and through the admin API; every action leaves an audit row and no row is deleted.
//!
//! The CLI tests need the binary: `cargo build -p dlq-worker` (scripts/test.sh builds it).

use std::process::Output;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use integration_tests::harness::binary_path;
use integration_tests::harness::dlq_worker::{settings, RunningWorker, Scope};
use integration_tests::{test_env, TestEnv};
use reliable_messaging::dead_letter::dead_letter_topic;
use reliable_messaging::message::retry_metadata::header;
use reliable_messaging::message::Header;
use reliable_messaging::parking::{NewParkedMessage, ParkReason, ParkedFilter, ParkedState, ParkingLot};
use reliable_messaging::request_status;
use serde_json::{json, Value};
use uuid::Uuid;

fn first_failure() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 10, 0, 0).unwrap()
}

/// A message as the worker would park it after five failed re-sends.
fn exhausted(origin: &str, dlq_offset: i64) -> NewParkedMessage {
    NewParkedMessage {
        source_topic: origin.to_owned(),
        dlq_topic: dead_letter_topic(origin),
        dlq_partition: 0,
        dlq_offset,
        original_partition: Some(1),
        original_offset: Some(100 + dlq_offset),
        key: Some(format!("key-{dlq_offset}").into_bytes()),
        headers: vec![
            Header { key: "traceparent".into(), value: Some(b"00-abc-01".to_vec()) },
            Header { key: header::RETRY_COUNT.into(), value: Some(b"5".to_vec()) },
            Header { key: "binary".into(), value: Some(vec![0, 0, 0, 3]) },
            Header { key: "null".into(), value: None },
        ],
        payload: Some(format!(r#"{{"n": {dlq_offset}}}"#).into_bytes()),
        reason: ParkReason::RetriesExhausted,
        error_kind: "transient".into(),
        error_message: Some("db down; retry budget of 5 exhausted".into()),
        retry_count: 5,
        first_failure_at: Some(first_failure()),
        last_failure_at: Some(first_failure() + chrono::Duration::minutes(5)),
        request_id: Some(Uuid::new_v4()),
    }
}

async fn origin_topic(env: &TestEnv, scope: &Scope) -> String {
    let origin = scope.topic("orders");
    env.create_topics(&[&origin], 1).await;
    origin
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parking_the_same_dlq_record_twice_keeps_one_row_and_records_the_request_status() {
    let env = test_env().await;
    let db = env.fresh_database().await;
    let lot = ParkingLot::new(db.pool.clone());
    let message = exhausted("orders", 7);
    let first = lot.park(&message).await.unwrap();
    let again = lot.park(&message).await.unwrap();
    assert!(first.newly_parked);
    assert!(!again.newly_parked, "a redelivered DLQ record parks once");
    assert_eq!(first.id, again.id);
    assert_eq!(db.count("SELECT COUNT(*) FROM parked_messages").await, 1);

    let status = request_status::fetch(&db.pool, message.request_id.unwrap()).await.unwrap().expect("status");
    assert_eq!((status.status.as_str(), status.retry_count), ("parked", 5));
    assert_eq!(status.reason.as_deref(), Some("db down; retry budget of 5 exhausted"));

    let stored = lot.get(first.id).await.unwrap().unwrap();
    assert_eq!(stored.headers, message.headers, "binary and null header values survive");
    assert_eq!(stored.key, message.key);
    assert_eq!(stored.payload, message.payload);
    assert_eq!((stored.original_partition, stored.original_offset), (Some(1), Some(107)));
    assert_eq!(stored.first_failure_at, Some(first_failure()));
    assert_eq!(stored.state, ParkedState::Parked);
    assert_eq!(stored.request_id, message.request_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_filters_by_topic_kind_reason_time_and_state() {
    let env = test_env().await;
    let db = env.fresh_database().await;
    let lot = ParkingLot::new(db.pool.clone());
    let a = lot.park(&exhausted("orders", 1)).await.unwrap().id;
    let mut poison = exhausted("payments", 2);
    poison.reason = ParkReason::Poison;
    poison.error_kind = "unknown".into();
    let b = lot.park(&poison).await.unwrap().id;
    lot.discard(a, "test", "duplicate").await.unwrap();

    let ids = |filter: ParkedFilter| {
        let lot = lot.clone();
        async move { lot.list(&filter).await.unwrap().into_iter().map(|s| s.id).collect::<Vec<_>>() }
    };
    assert_eq!(ids(ParkedFilter::default()).await, vec![a, b]);
    assert_eq!(ids(ParkedFilter { source_topic: Some("payments".into()), ..Default::default() }).await, vec![b]);
    assert_eq!(ids(ParkedFilter { error_kind: Some("transient".into()), ..Default::default() }).await, vec![a]);
    assert_eq!(ids(ParkedFilter { reason: Some("poison".into()), ..Default::default() }).await, vec![b]);
    assert_eq!(ids(ParkedFilter { state: Some(ParkedState::Discarded), ..Default::default() }).await, vec![a]);
    let future = Utc::now() + chrono::Duration::hours(1);
    assert!(ids(ParkedFilter { since: Some(future), ..Default::default() }).await.is_empty());
    assert_eq!(ids(ParkedFilter { until: Some(future), ..Default::default() }).await, vec![a, b]);
    let past = Utc::now() - chrono::Duration::hours(1);
    assert!(ids(ParkedFilter { until: Some(past), ..Default::default() }).await.is_empty());
    assert_eq!(ids(ParkedFilter { limit: Some(1), ..Default::default() }).await, vec![a]);
}

/// Runs `dlq-worker parked ...` against this test's database and the broker.
fn cli(env: &TestEnv, database_url: &str, args: &[&str]) -> Output {
    std::process::Command::new(binary_path("dlq-worker"))
        .arg("parked")
        .args(args)
        .env("DATABASE_URL", database_url)
        .env("KAFKA_BOOTSTRAP_SERVERS", &env.kafka_bootstrap)
        .env_remove("ADMIN_TOKEN")
        .output()
        .expect("run dlq-worker parked")
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "dlq-worker failed: {}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_list_then_redrive_puts_the_message_back_with_count_zero_and_an_audit_row() {
    let env = test_env().await;
    let db = env.fresh_database().await;
    let scope = Scope::new(env);
    let origin = origin_topic(env, &scope).await;
    let lot = ParkingLot::new(db.pool.clone());
    let id = lot.park(&exhausted(&origin, 3)).await.unwrap().id;

    let listed = stdout(&cli(env, &db.url, &["list", "--json", "--topic", &origin]));
    let rows: Vec<Value> = listed.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 1, "{listed}");
    assert_eq!(rows[0]["id"], json!(id));
    assert_eq!(rows[0]["reason"], "retries_exhausted");
    assert_eq!(rows[0]["retry_count"], 5);
    let table = stdout(&cli(env, &db.url, &["list"]));
    assert!(table.contains(&origin) && table.contains("retries_exhausted"), "{table}");

    let out =
        stdout(&cli(env, &db.url, &["redrive", &id.to_string(), "--actor", "alice", "--reason", "database fixed"]));
    assert!(out.starts_with(&format!("{id}\tredriven\t{origin}/0@")), "{out}");
    let back = env.read_topic(&origin, 1, Duration::from_secs(15)).await;
    assert_eq!(back.len(), 1, "the message is back on {origin}");
    let r = &back[0];
    assert_eq!(r.header_str(header::RETRY_COUNT), Some("0"), "a fresh retry budget");
    assert_eq!(r.header_str(header::FIRST_FAILURE_AT), Some("2026-11-26T10:00:00.000Z"), "history kept");
    assert_eq!(r.header_str(header::ORIGINAL_OFFSET), Some("103"));
    assert_eq!(r.header_str("traceparent"), Some("00-abc-01"));
    assert_eq!(r.header(header::NOT_BEFORE), None);
    assert_eq!(r.key.as_deref(), Some(&b"key-3"[..]));
    assert_eq!(r.payload.as_deref(), Some(&br#"{"n": 3}"#[..]));

    let row = lot.get(id).await.unwrap().unwrap();
    assert_eq!(row.state, ParkedState::Redriven);
    let audit = lot.audit_trail(id).await.unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!((audit[0].action.as_str(), audit[0].actor.as_str()), ("redrive", "alice"));
    assert_eq!(audit[0].reason.as_deref(), Some("database fixed"));

    let again = stdout(&cli(env, &db.url, &["redrive", &id.to_string(), &id.to_string()]));
    assert_eq!(again.trim(), format!("{id}\tskipped\talready redriven"), "redriven at most once");
    assert_eq!(env.end_offsets(&origin).values().sum::<i64>(), 1, "nothing was published again");

    let shown: Value = serde_json::from_str(&stdout(&cli(env, &db.url, &["show", &id.to_string()]))).unwrap();
    assert_eq!(shown["state"], "redriven");
    assert_eq!(shown["payload"], r#"{"n": 3}"#);
    assert_eq!(shown["audit"][0]["actor"], "alice");
    assert_eq!(shown["headers"][2]["value_base64"], "AAAAAw==");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_discard_marks_the_message_discarded_with_an_audit_row_and_keeps_it() {
    let env = test_env().await;
    let db = env.fresh_database().await;
    let lot = ParkingLot::new(db.pool.clone());
    let id = lot.park(&exhausted("orders", 4)).await.unwrap().id;

    let without_reason = cli(env, &db.url, &["discard", &id.to_string()]);
    assert!(!without_reason.status.success(), "a discard needs a reason");

    let out = stdout(&cli(env, &db.url, &["discard", &id.to_string(), "--reason", "test data", "--actor", "bob"]));
    assert_eq!(out.trim(), format!("{id}\tdiscarded"));
    let row = lot.get(id).await.unwrap().expect("a discarded message is kept, never deleted");
    assert_eq!(row.state, ParkedState::Discarded);
    let audit = lot.audit_trail(id).await.unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!((audit[0].action.as_str(), audit[0].actor.as_str()), ("discard", "bob"));
    assert_eq!(audit[0].reason.as_deref(), Some("test data"));

    let redrive = stdout(&cli(env, &db.url, &["redrive", &id.to_string()]));
    assert_eq!(redrive.trim(), format!("{id}\tskipped\talready discarded"));
    let missing = cli(env, &db.url, &["discard", "999999", "--reason", "x"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stdout).contains("999999\tfailed\tparked message 999999 does not exist"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_redrive_by_filter_is_rate_limited() {
    let env = test_env().await;
    let db = env.fresh_database().await;
    let scope = Scope::new(env);
    let origin = origin_topic(env, &scope).await;
    let lot = ParkingLot::new(db.pool.clone());
    for offset in 0..4 {
        lot.park(&exhausted(&origin, offset)).await.unwrap();
    }
    lot.park(&exhausted("another-topic", 9)).await.unwrap();

    let nothing_selected = cli(env, &db.url, &["redrive"]);
    assert!(!nothing_selected.status.success(), "a redrive without ids or filter touches nothing");

    let started = Instant::now();
    let out = stdout(&cli(env, &db.url, &["redrive", "--topic", &origin, "--rate", "5/s"]));
    let took = started.elapsed();
    assert_eq!(out.lines().filter(|l| l.contains("\tredriven\t")).count(), 4, "{out}");
    assert!(took >= Duration::from_millis(600), "4 redrives at 5/s take at least 0.6 s, took {took:?}");
    assert_eq!(env.read_topic(&origin, 4, Duration::from_secs(15)).await.len(), 4);
    let still_parked =
        lot.list(&ParkedFilter { state: Some(ParkedState::Parked), ..Default::default() }).await.unwrap();
    assert_eq!(still_parked.len(), 1, "the other topic's message is untouched");
}

async fn admin_worker(env: &TestEnv, scope: &Scope, database_url: &str, token: Option<&str>) -> RunningWorker {
    let mut config = settings(env, scope, database_url);
    config.admin_token = token.map(reliable_messaging::service::Secret::new);
    RunningWorker::start(config).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_routes_are_not_mounted_without_a_token() {
    let env = test_env().await;
    let db = env.fresh_database().await;
    let scope = Scope::new(env);
    let worker = admin_worker(env, &scope, &db.url, None).await;
    let client = reqwest::Client::new();
    let response = client.get(worker.url("/admin/parked")).bearer_auth("anything").send().await.unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["status"], 404);
    let health = client.get(worker.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_rejects_a_missing_or_wrong_token() {
    let env = test_env().await;
    let db = env.fresh_database().await;
    let scope = Scope::new(env);
    let worker = admin_worker(env, &scope, &db.url, Some("s3cret-token")).await;
    let client = reqwest::Client::new();
    for request in [
        client.get(worker.url("/admin/parked")),
        client.get(worker.url("/admin/parked")).bearer_auth("wrong"),
        client.post(worker.url("/admin/parked/discard")).json(&json!({"ids": [1], "reason": "x"})),
        client.get(worker.url("/admin/parked/1")).header("authorization", "s3cret-token"),
    ] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401);
        assert_eq!(response.headers()["content-type"], "application/problem+json");
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
    }
    let ok = client.get(worker.url("/admin/parked")).bearer_auth("s3cret-token").send().await.unwrap();
    assert_eq!(ok.status(), 200);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_lists_shows_redrives_and_discards() {
    let env = test_env().await;
    let db = env.fresh_database().await;
    let scope = Scope::new(env);
    let origin = origin_topic(env, &scope).await;
    let lot = ParkingLot::new(db.pool.clone());
    let a = lot.park(&exhausted(&origin, 1)).await.unwrap().id;
    let b = lot.park(&exhausted(&origin, 2)).await.unwrap().id;
    let worker = admin_worker(env, &scope, &db.url, Some("tok")).await;
    let client = reqwest::Client::new();
    let get = |path: String| client.get(worker.url(&path)).bearer_auth("tok").send();

    let listed: Value = get(format!("/admin/parked?topic={origin}&state=parked")).await.unwrap().json().await.unwrap();
    let ids: Vec<u64> = listed["items"].as_array().unwrap().iter().map(|i| i["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, vec![a, b]);
    let bad = get("/admin/parked?since=yesterday".into()).await.unwrap();
    assert_eq!(bad.status(), 400);
    assert_eq!(bad.headers()["content-type"], "application/problem+json");

    let shown: Value = get(format!("/admin/parked/{a}")).await.unwrap().json().await.unwrap();
    assert_eq!(shown["payload"], r#"{"n": 1}"#);
    assert_eq!(shown["source_topic"], origin);
    assert_eq!(get("/admin/parked/999999".into()).await.unwrap().status(), 404);

    let redriven: Value = client
        .post(worker.url("/admin/parked/redrive"))
        .bearer_auth("tok")
        .json(&json!({"ids": [a, a, 999999], "actor": "carol", "reason": "fixed"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let results = redriven["results"].as_array().unwrap();
    assert_eq!(results.len(), 2, "each id at most once per request: {redriven}");
    assert_eq!(results[0]["outcome"], "redriven");
    assert_eq!(results[0]["topic"], origin);
    assert_eq!(results[1]["outcome"], "not_found");
    let back = env.read_topic(&origin, 1, Duration::from_secs(15)).await;
    assert_eq!(back[0].header_str(header::RETRY_COUNT), Some("0"));
    assert_eq!(lot.audit_trail(a).await.unwrap()[0].actor, "carol");

    let discarded: Value = client
        .post(worker.url("/admin/parked/discard"))
        .bearer_auth("tok")
        .json(&json!({"ids": [b, a], "reason": "obsolete order"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(discarded["results"][0]["outcome"], "discarded");
    assert_eq!(discarded["results"][1]["outcome"], "not_parked", "a redriven message cannot be discarded");
    let row = lot.get(b).await.unwrap().unwrap();
    assert_eq!(row.state, ParkedState::Discarded);
    let audit = lot.audit_trail(b).await.unwrap();
    assert_eq!((audit[0].action.as_str(), audit[0].reason.as_deref()), ("discard", Some("obsolete order")));
    let no_reason = client
        .post(worker.url("/admin/parked/discard"))
        .bearer_auth("tok")
        .json(&json!({"ids": [b]}))
        .send()
        .await
        .unwrap();
    assert_eq!(no_reason.status(), 400, "a discard without a reason is refused");

    let metrics = client.get(worker.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("dlq_operator_actions_total{action=\"redrive\"} 1"), "{metrics}");
    assert!(metrics.contains("dlq_parked_total{reason=\"retries_exhausted\"}"), "{metrics}");
    let ready = client.get(worker.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "{}", ready.text().await.unwrap());
    worker.stop().await;
}

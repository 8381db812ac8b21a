//! The gateway's status route (`GET /registrations/{id}`), against a real Kafka broker and a
//! real MySQL/MariaDB: ids it does not know, each status a request can be in, and a database
//! that is away.
//!
//! Each test runs its own gateway in-process on a random port, with its own topic and its own
//! database. No registration-service runs here: the tests write the rows it would write.

use std::time::Duration;

use chrono::Utc;
use integration_tests::database::TestDatabase;
use integration_tests::gateway_client::{closed_port, expect_problem, spawn_gateway, unique_email};
use integration_tests::test_env;
use reliable_messaging::request_status::{self, Status, Transition};
use reqwest::header::RETRY_AFTER;
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

#[tokio::test]
async fn status_of_a_malformed_or_foreign_id_is_400_or_404() {
    let env = test_env().await;
    let gateway = spawn_gateway(env, |_| {}).await;

    let problem = expect_problem(gateway.get("/registrations/not-a-uuid").await, StatusCode::BAD_REQUEST).await;
    assert_eq!(problem["type"], "/problems/invalid-request-id");

    // Well-formed UUIDs this gateway never issued: a v4, and a v8 with a forged tag.
    let v4 = Uuid::new_v4();
    let problem = expect_problem(gateway.get(&format!("/registrations/{v4}")).await, StatusCode::NOT_FOUND).await;
    assert_eq!(problem["type"], "/problems/unknown-request");
    let issued = gateway.register_ok().await;
    let forged = Uuid::from_u128(issued.as_u128() ^ 1);
    // Even with a user row under the forged id, it must never be reported as completed.
    insert_user(&gateway.db, forged).await;
    expect_problem(gateway.get(&format!("/registrations/{forged}")).await, StatusCode::NOT_FOUND).await;
    // An id issued by another gateway (another secret) is unknown here too.
    let other = spawn_gateway(env, |_| {}).await;
    let foreign = other.register_ok().await;
    expect_problem(gateway.get(&format!("/registrations/{foreign}")).await, StatusCode::NOT_FOUND).await;
    assert_eq!(gateway.get(&format!("/registrations/{issued}")).await.status(), StatusCode::OK);
}

async fn insert_user(db: &TestDatabase, request_id: Uuid) {
    sqlx::query("INSERT INTO users (request_id, email, name, password_hash, requested_at) VALUES (?, ?, ?, ?, ?)")
        .bind(request_id.as_bytes().to_vec())
        .bind(unique_email())
        .bind("Ada Lovelace")
        .bind("$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG")
        .bind(Utc::now().naive_utc())
        .execute(&db.pool)
        .await
        .expect("insert user");
}

async fn record(db: &TestDatabase, request_id: Uuid, status: Status, retry_count: u32, reason: &str) {
    let transition = Transition { request_id, status, retry_count, reason: Some(reason.into()), at: Utc::now() };
    request_status::record(&db.pool, &[transition]).await.expect("record status");
}

#[tokio::test]
async fn status_reports_pending_completed_rejected_retrying_and_parked() {
    let env = test_env().await;
    let gateway = spawn_gateway(env, |_| {}).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(gateway.register_ok().await);
    }
    let (pending, completed, rejected, retrying, parked) = (ids[0], ids[1], ids[2], ids[3], ids[4]);
    insert_user(&gateway.db, completed).await;
    record(&gateway.db, completed, Status::Retrying, 1, "deadlock").await;
    record(&gateway.db, rejected, Status::Rejected, 0, "email already registered").await;
    record(&gateway.db, retrying, Status::Retrying, 2, "database unavailable").await;
    record(&gateway.db, parked, Status::Parked, 5, "retries exhausted").await;

    let status = |id: Uuid| {
        let gateway = &gateway;
        async move {
            let response = gateway.get(&format!("/registrations/{id}")).await;
            assert_eq!(response.status(), StatusCode::OK);
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["request_id"], id.to_string());
            body
        }
    };

    let body = status(pending).await;
    assert_eq!(
        body,
        json!({"request_id": pending, "status": "pending", "retry_count": 0, "reason": null, "updated_at": null})
    );

    let body = status(completed).await;
    assert_eq!((body["status"].as_str(), body["retry_count"].as_u64()), (Some("completed"), Some(1)));
    assert!(body["reason"].is_null());
    assert!(body["updated_at"].as_str().is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok()), "{body}");

    let body = status(rejected).await;
    assert_eq!(body["status"], "rejected");
    assert_eq!(body["reason"], "email already registered");
    assert!(body["updated_at"].is_string());

    let body = status(retrying).await;
    assert_eq!((body["status"].as_str(), body["retry_count"].as_u64()), (Some("retrying"), Some(2)));

    let body = status(parked).await;
    assert_eq!(body["status"], "parked");
    assert_eq!(body["retry_count"], 5);
    assert_eq!(body["reason"], "retries exhausted");
}

#[tokio::test]
async fn database_down_fails_only_the_status_route_with_503() {
    let env = test_env().await;
    let dead_db = format!("mysql://registrations@127.0.0.1:{}/registrations", closed_port());
    let gateway = spawn_gateway(env, |s| s.database.url = dead_db.into()).await;

    // Registering needs no database.
    let id = gateway.register_ok().await;

    let started = std::time::Instant::now();
    let response = gateway.get(&format!("/registrations/{id}")).await;
    assert!(response.headers().get(RETRY_AFTER).is_some(), "Retry-After on 503");
    expect_problem(response, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(started.elapsed() < Duration::from_secs(10), "bounded by the acquire timeout");
    gateway.stop().await;
}

//! Withdrawal and erasure (issue 22) against a real broker and database: `DELETE
//! /registrations/{id}` on the gateway, the tombstones the registration-service keeps, and an
//! operator's erasure through the dlq-worker's admin API and CLI, each with its audit row.
//! A redelivered or late sign-up of a withdrawn or erased account is `rejected`, never stored.

use std::time::Duration;

use chrono::Utc;
use integration_tests::harness::dlq_worker::{self, RunningWorker, Scope};
use integration_tests::harness::gateway::InProcessGateway;
use integration_tests::harness::registration::{service_settings, InProcessService};
use integration_tests::harness::ServiceProcess;
use integration_tests::ledger;
use integration_tests::registrations::{produce_events, sample_event};
use integration_tests::{test_env, wait};
use registration_events::{email_digest, RegistrationWithdrawn};
use reliable_messaging::dead_letter::dead_letter_topic;
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

async fn status_of(client: &reqwest::Client, url: &str) -> Value {
    client.get(url).send().await.expect("GET status").json().await.expect("status JSON")
}

async fn expect_problem(response: reqwest::Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert_eq!(content_type, "application/problem+json");
    let problem: Value = response.json().await.expect("problem JSON");
    assert_eq!(problem["status"], status.as_u16());
    problem
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_withdraws_a_sign_up_idempotently_and_answers_problems_for_bad_ids() {
    let env = test_env().await;
    let gateway = InProcessGateway::start(env, |_| {}).await;
    let service =
        InProcessService::start(service_settings(env, &gateway.topic, "registration-service", &gateway.db.url)).await;
    let client = reqwest::Client::new();

    let mut ids = Vec::new();
    for i in 0..2 {
        let response = client
            .post(gateway.url("/registrations"))
            .json(&json!({"email": format!("w{i}-{}@example.com", Uuid::new_v4().simple()), "name": "Wanda", "password": "a long passphrase"}))
            .send()
            .await
            .expect("POST");
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let body: Value = response.json().await.unwrap();
        ids.push(Uuid::parse_str(body["request_id"].as_str().unwrap()).unwrap());
    }
    let (stored, kept) = (ids[0], ids[1]);
    let db = &gateway.db;
    wait::until(Duration::from_secs(60), "both sign-ups are stored", || async move {
        db.count("SELECT COUNT(*) FROM users").await == 2
    })
    .await;

    // Withdrawn after it was stored: 202 with the status URL, then the row is gone.
    let response = client.delete(gateway.url(&format!("/registrations/{stored}"))).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(response.headers()["location"], format!("/registrations/{stored}").as_str());
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"request_id": stored, "status": "withdrawal_pending"}));
    let status_url = gateway.url(&format!("/registrations/{stored}"));
    let withdrawn = wait::within(Duration::from_secs(30), || {
        let (client, url) = (&client, &status_url);
        async move { status_of(client, url).await["status"] == "withdrawn" }
    })
    .await;
    assert!(withdrawn, "status never read withdrawn: {}", status_of(&client, &status_url).await);
    let row = format!("SELECT COUNT(*) FROM users WHERE request_id = X'{}'", stored.simple());
    assert_eq!(db.count(&row).await, 0, "the user row is deleted");
    assert_eq!(status_of(&client, &gateway.url(&format!("/registrations/{kept}"))).await["status"], "completed");

    // Repeated: 202 again, one tombstone, no second event.
    let records = gateway.records_on_topic(env);
    let again = client.delete(gateway.url(&format!("/registrations/{stored}"))).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::ACCEPTED);
    assert_eq!(gateway.records_on_topic(env), records, "an applied withdrawal is not published again");
    assert_eq!(db.count("SELECT COUNT(*) FROM registration_tombstones").await, 1);
    assert_eq!(db.count("SELECT COUNT(*) FROM users").await, 1, "the other account is untouched");

    // Ids it never issued, and no id at all.
    let unknown = client.delete(gateway.url(&format!("/registrations/{}", Uuid::new_v4()))).send().await.unwrap();
    assert_eq!(expect_problem(unknown, StatusCode::NOT_FOUND).await["type"], "/problems/unknown-request");
    let forged = Uuid::from_u128(kept.as_u128() ^ 1);
    let forged = client.delete(gateway.url(&format!("/registrations/{forged}"))).send().await.unwrap();
    expect_problem(forged, StatusCode::NOT_FOUND).await;
    let malformed = client.delete(gateway.url("/registrations/not-a-uuid")).send().await.unwrap();
    assert_eq!(expect_problem(malformed, StatusCode::BAD_REQUEST).await["type"], "/problems/invalid-request-id");
    assert_eq!(db.count("SELECT COUNT(*) FROM users").await, 1, "no bad DELETE removed anything");

    service.stop().await;
    gateway.stop(Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_up_redelivered_after_its_withdrawal_is_rejected_withdrawn_never_stored() {
    let env = test_env().await;
    let db = env.fresh_database().await;
    let topic = env.unique_topic("withdrawals");
    env.create_topics(&[&topic, &dead_letter_topic(&topic)], 3).await;
    let events: Vec<_> = (0..20).map(|_| sample_event()).collect();
    let (withdrawn, kept) = events.split_at(5);
    // One withdrawal arrives before its sign-up (as when the sign-up is in the retry path).
    let early = withdrawal_record(&withdrawn[0]);
    env.produce(&topic, Some(withdrawn[0].email.as_bytes()), Some(&early), &[]).await;
    produce_events(env, &topic, &events).await;
    let service = InProcessService::start(service_settings(env, &topic, "registration-service", &db.url)).await;
    let db_ref = &db;
    wait::until(Duration::from_secs(60), "the sign-ups are handled", || async move {
        db_ref.count("SELECT COUNT(*) FROM users").await == 19
    })
    .await;
    for event in &withdrawn[1..] {
        env.produce(&topic, Some(event.email.as_bytes()), Some(&withdrawal_record(event)), &[]).await;
    }
    wait::until(Duration::from_secs(30), "the withdrawals are applied", || async move {
        db_ref.count("SELECT COUNT(*) FROM users").await == 15
    })
    .await;
    // Every sign-up delivered again, as after a crash or a retry from the DLQ.
    produce_events(env, &topic, &events).await;
    wait::until(Duration::from_secs(30), "the redeliveries are consumed", || async {
        env.group_caught_up("registration-service", &topic)
    })
    .await;
    service.stop().await;

    assert_eq!(db.count("SELECT COUNT(*) FROM users").await, 15, "no withdrawn account came back");
    for event in withdrawn {
        let id = event.request_id.simple();
        assert_eq!(db.count(&format!("SELECT COUNT(*) FROM users WHERE request_id = X'{id}'")).await, 0);
        let rejected = format!(
            "SELECT COUNT(*) FROM request_status WHERE request_id = X'{id}' AND status = 'rejected' AND reason = 'withdrawn'"
        );
        assert_eq!(db.count(&rejected).await, 1, "{id} is rejected: withdrawn");
        let tomb =
            format!("SELECT COUNT(*) FROM registration_tombstones WHERE request_id = X'{id}' AND kind = 'withdrawn'");
        assert_eq!(db.count(&tomb).await, 1);
    }
    let tombstone_columns: Vec<String> = sqlx::query_scalar(
        "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() \
         AND TABLE_NAME = 'registration_tombstones' ORDER BY ORDINAL_POSITION",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(tombstone_columns, ["request_id", "kind", "reason", "recorded_at"], "no personal data in a tombstone");
    // The rest exactly as sent, content compared.
    let report = ledger::check(&db, &ledger::expected_from_events(kept)).await;
    report.assert_clean();
    assert_eq!(report.stored, 15, "{report}");
}

fn withdrawal_record(event: &registration_events::RegistrationRequested) -> Vec<u8> {
    RegistrationWithdrawn::new(event.request_id, Utc::now()).to_json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_erases_an_address_through_the_admin_api_and_the_cli_with_an_audit_row() {
    let env = test_env().await;
    let db = env.fresh_database().await;
    let scope = Scope::new(env);
    let topic = scope.topic("registrations");
    env.create_topics(&[&topic, &dead_letter_topic(&topic)], 3).await;
    let mut settings = dlq_worker::settings(env, &scope, &db.url);
    settings.admin_token = Some(reliable_messaging::service::Secret::new("erase-token".to_owned()));
    settings.operator.erasure_topic = topic.clone();
    let worker = RunningWorker::start(settings).await;
    let service = InProcessService::start(service_settings(env, &topic, "registration-service", &db.url)).await;

    let (by_api, by_cli, kept) = (sample_event(), sample_event(), sample_event());
    produce_events(env, &topic, &[by_api.clone(), by_cli.clone(), kept.clone()]).await;
    let db_ref = &db;
    wait::until(Duration::from_secs(60), "three users stored", || async move {
        db_ref.count("SELECT COUNT(*) FROM users").await == 3
    })
    .await;

    let client = reqwest::Client::new();
    let erase = |body: Value, token: &'static str| {
        client.post(worker.url("/admin/erasures")).bearer_auth(token).json(&body).send()
    };
    let refused = erase(json!({"email": by_api.email, "reason": "asked"}), "wrong").await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let invalid = erase(json!({"email": "not an address", "reason": "asked"}), "erase-token").await.unwrap();
    assert_eq!(invalid.status(), StatusCode::BAD_REQUEST);
    // Another spelling of the same address erases it.
    let spelled = by_api.email.to_uppercase();
    let accepted =
        erase(json!({"email": spelled, "reason": "the user asked, ticket 42"}), "erase-token").await.unwrap();
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let accepted: Value = accepted.json().await.unwrap();

    let mut cli = ServiceProcess::spawn_with_args(
        "dlq-worker",
        &[
            ("KAFKA_BOOTSTRAP_SERVERS", env.kafka_bootstrap.clone()),
            ("DATABASE_URL", db.url.clone()),
            ("ERASURE_TOPIC", topic.clone()),
            ("USER", "operator-olga".to_owned()),
        ],
        &["erase", &by_cli.email, "--reason", "GDPR request"],
    );
    let exit = cli.wait_exit(Duration::from_secs(60)).await.expect("the CLI exits");
    assert!(exit.success(), "dlq-worker erase failed: {}", cli.log());

    wait::until(Duration::from_secs(30), "both erasures are applied", || async move {
        db_ref.count("SELECT COUNT(*) FROM users").await == 1
    })
    .await;
    let audit: Vec<(Vec<u8>, String, String)> =
        sqlx::query_as("SELECT email_digest, actor, reason FROM erasure_audit ORDER BY requested_at")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        audit,
        vec![
            (email_digest(&by_api.email).to_vec(), "admin".to_owned(), "the user asked, ticket 42".to_owned()),
            (email_digest(&by_cli.email).to_vec(), "operator-olga".to_owned(), "GDPR request".to_owned()),
        ],
        "one audit row per erasure, with its actor; API answer: {accepted}"
    );

    // A sign-up of an erased address requested before the erasure (still in the retry path)
    // is refused; one requested after it is a new account.
    let mut late = by_api.clone();
    late.request_id = Uuid::new_v4();
    late.requested_at = by_api.requested_at;
    let mut anew = sample_event();
    anew.email = by_cli.email.clone();
    produce_events(env, &topic, &[by_api.clone(), late.clone(), anew.clone()]).await;
    wait::until(Duration::from_secs(30), "the late sign-ups are consumed", || async {
        env.group_caught_up("registration-service", &topic)
    })
    .await;
    service.stop().await;
    worker.stop().await;
    for refused in [&by_api, &late, &by_cli] {
        let id = refused.request_id.simple();
        assert_eq!(db.count(&format!("SELECT COUNT(*) FROM users WHERE request_id = X'{id}'")).await, 0, "{id}");
        let tomb =
            format!("SELECT COUNT(*) FROM registration_tombstones WHERE request_id = X'{id}' AND kind = 'erased'");
        assert_eq!(db.count(&tomb).await, 1, "{id} reads erased");
    }
    let report = ledger::check(&db, &ledger::expected_from_events(&[kept, anew])).await;
    report.assert_clean();
    assert_eq!(report.stored, 2, "{report}");
}

//! The whole system as separate OS processes — gateway, registration-service, dlq-worker —
//! on a real broker and a real database: sign-ups over HTTP end as rows, the article's
//! 10-second database outage loses nothing, a longer one parks every message after exactly
//! five retries, and the password never leaves the gateway in clear.

use std::collections::HashSet;
use std::time::Duration;

use integration_tests::cluster::{Cluster, ClusterConfig};
use integration_tests::wait;
use registration_events::REQUEST_ID_HEADER;
use integration_tests::ledger::{Expected, PasswordEvidence};
use reliable_messaging::dead_letter::dead_letter_topic;
use serde_json::{json, Value};
use uuid::Uuid;

/// Signs up over HTTP (asserting the 202) and returns what was accepted, for the ledger.
async fn sign_up(cluster: &Cluster, email: &str, password: &str) -> Expected {
    let response = reqwest::Client::new()
        .post(format!("{}/registrations", cluster.gateway_url))
        .json(&json!({"email": email, "name": "End To End", "password": password}))
        .send()
        .await
        .expect("POST /registrations");
    assert_eq!(response.status().as_u16(), 202, "{:?}", response.text().await);
    let body: Value = response.json().await.expect("json");
    Expected {
        request_id: Uuid::parse_str(body["request_id"].as_str().expect("request_id")).expect("uuid"),
        email: email.to_owned(),
        name: "End To End".to_owned(),
        password: PasswordEvidence::Plaintext(password.to_owned()),
    }
}

async fn status(cluster: &Cluster, id: Uuid) -> Value {
    reqwest::get(format!("{}/registrations/{id}", cluster.gateway_url)).await.expect("GET status").json().await.expect("json")
}

/// Request ids of the dead letters whose retry budget is spent (retry count 5 or more): the
/// dlq-worker parks these instead of re-sending them.
async fn exhausted_budgets(cluster: &Cluster) -> HashSet<Uuid> {
    let dlq = dead_letter_topic(&cluster.topic);
    let total: i64 = cluster.env.end_offsets(&dlq).values().sum();
    let records = cluster.env.read_topic(&dlq, usize::try_from(total).unwrap_or(0), Duration::from_secs(10)).await;
    records
        .iter()
        .filter(|r| r.retry_count() >= 5)
        .filter_map(|r| r.header_str(REQUEST_ID_HEADER).and_then(|id| Uuid::parse_str(id).ok()))
        .collect()
}

fn unique_email() -> String {
    format!("e2e-{}@example.com", Uuid::new_v4().simple())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ups_over_http_become_rows_exactly_once_and_report_their_outcome() {
    let cluster = Cluster::start(ClusterConfig::default()).await;
    let mut ids = Vec::new();
    for _ in 0..40 {
        ids.push(sign_up(&cluster, &unique_email(), "a fine passphrase").await);
    }
    let taken = unique_email();
    let first = sign_up(&cluster, &taken, "a fine passphrase").await;
    let second = sign_up(&cluster, &taken, "another passphrase").await;
    ids.extend([first, second]);

    let report = cluster.settle(&ids, Duration::from_secs(60)).await;
    report.assert_clean();
    assert_eq!((report.stored, report.rejected), (41, 1), "{report}");
    assert_eq!(status(&cluster, ids[0].request_id).await["status"], "completed");
    assert_eq!(status(&cluster, ids[40].request_id).await["status"], "completed");
    let rejected = status(&cluster, ids[41].request_id).await;
    assert_eq!(rejected["status"], "rejected", "{rejected}");
    assert_eq!(rejected["reason"], "email already registered");
    assert!(cluster.stop().await.is_empty(), "every service exits cleanly on SIGTERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_articles_scenario_a_10_second_database_outage_during_a_burst_loses_nothing() {
    let cluster = Cluster::start(ClusterConfig::default()).await;
    cluster.proxy.cut();
    let outage = tokio::time::Instant::now();
    let mut ids = Vec::new();
    for _ in 0..60 {
        ids.push(sign_up(&cluster, &unique_email(), "a fine passphrase").await);
    }
    tokio::time::sleep_until(outage + Duration::from_secs(10)).await;
    // The outage must have hit work, not an idle consumer: checked before the database
    // returns, nothing was stored, and the consumer had polled sign-ups it could not store and
    // handed them to the DLQ once its in-place retries ran out.
    let stored_during_outage = cluster.db.count("SELECT COUNT(*) FROM users").await;
    let dead_lettered: i64 = cluster.env.end_offsets(&dead_letter_topic(&cluster.topic)).values().sum();
    cluster.proxy.restore();
    assert_eq!(stored_during_outage, 0, "the cut database stored nothing");
    assert!(dead_lettered > 0, "the outage outlasted the in-place retries, so the DLQ carried the retries");

    let report = cluster.settle(&ids, Duration::from_secs(90)).await;
    report.assert_clean();
    assert_eq!(report.stored, 60, "every registration is stored, none parked: {report}");
    assert!(cluster.stop().await.is_empty(), "no service was restarted or crashed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_longer_than_the_retry_budget_parks_each_message_after_exactly_five_retries() {
    let config = ClusterConfig {
        retry_backoff: ("constant", 300),
        extra_env: vec![("IN_PLACE_RETRIES", "0".into()), ("DATABASE_ACQUIRE_TIMEOUT_MS", "300".into())],
        ..ClusterConfig::default()
    };
    let cluster = Cluster::start(config).await;
    cluster.proxy.cut();
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(sign_up(&cluster, &unique_email(), "a fine passphrase").await);
    }
    // Six attempts at about 0.6 s each exhaust the budget; parking waits for the database.
    // The database returns only once every sign-up has exhausted its budget (a DLQ record
    // with retry count 5 for each), rather than after a sleep that a slow machine outlasts.
    let budget_exhausted = wait::within(Duration::from_secs(60), || async {
        exhausted_budgets(&cluster).await.is_superset(&ids.iter().map(|e| e.request_id).collect())
    })
    .await;
    let stored_during_outage = cluster.db.count("SELECT COUNT(*) FROM users").await;
    cluster.proxy.restore();
    assert!(budget_exhausted, "precondition failed: the outage ended before every sign-up exhausted its retry budget");
    assert_eq!(stored_during_outage, 0, "the cut database stored nothing");

    let report = cluster.settle(&ids, Duration::from_secs(60)).await;
    report.assert_clean();
    assert_eq!(report.parked, 5, "{report}");
    type ParkedRow = (String, u32, String, Option<i32>, Option<i64>, Option<String>);
    let rows: Vec<ParkedRow> = sqlx::query_as(
        "SELECT source_topic, retry_count, error_kind, original_partition, original_offset, error_message FROM parked_messages",
    )
    .fetch_all(&cluster.db.pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 5);
    for (topic, retries, kind, partition, offset, error) in rows {
        assert_eq!(topic, cluster.topic);
        assert_eq!(retries, 5, "parked after exactly five retries");
        assert_eq!(kind, "transient");
        assert!(partition.is_some() && offset.is_some(), "origin intact");
        assert!(error.unwrap_or_default().contains("storing the user failed"), "last error intact");
    }
    let parked = status(&cluster, ids[0].request_id).await;
    assert_eq!(parked["status"], "parked", "{parked}");
    assert_eq!(parked["retry_count"], 5, "{parked}");
    assert!(cluster.stop().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_password_never_leaves_the_gateway_in_clear() {
    let config = ClusterConfig { extra_env: vec![("RUST_LOG", "debug".into())], ..ClusterConfig::default() };
    let cluster = Cluster::start(config).await;
    let password = format!("Never-Log-Me-{}", Uuid::new_v4().simple());
    let email = unique_email();
    let stored = sign_up(&cluster, &email, &password).await;
    let rejected = sign_up(&cluster, &email, &password).await;
    // A malformed request carrying the password, too.
    let bad = reqwest::Client::new()
        .post(format!("{}/registrations", cluster.gateway_url))
        .json(&json!({"email": "not-an-email", "name": "", "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 422);
    assert!(!bad.text().await.unwrap().contains(&password), "not even echoed back in a problem document");

    cluster.settle(&[stored.clone(), rejected], Duration::from_secs(60)).await.assert_clean();
    let needle = password.as_bytes();
    let contains = |hay: &[u8]| hay.windows(needle.len()).any(|w| w == needle);

    for topic in [cluster.topic.clone(), dead_letter_topic(&cluster.topic)] {
        let expected: i64 = cluster.env.end_offsets(&topic).values().sum();
        for record in cluster.env.read_topic(&topic, expected as usize, Duration::from_secs(10)).await {
            assert!(!contains(record.payload.as_deref().unwrap_or_default()), "plaintext password on {topic}");
            assert!(record.headers.iter().all(|h| !contains(h.value.as_deref().unwrap_or_default())), "in a header on {topic}");
        }
    }
    let hash: String = sqlx::query_scalar("SELECT password_hash FROM users WHERE request_id = ?")
        .bind(stored.request_id.as_bytes().to_vec())
        .fetch_one(&cluster.db.pool)
        .await
        .unwrap();
    assert!(hash.starts_with("$argon2id$"), "stored as an argon2id hash: {hash}");
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT CAST(table_name AS CHAR) FROM information_schema.tables WHERE table_schema = DATABASE()")
            .fetch_all(&cluster.db.pool)
            .await
            .unwrap();
    assert!(tables.len() >= 4, "{tables:?}");
    for table in tables {
        let columns: Vec<String> = sqlx::query_scalar(
            "SELECT CAST(column_name AS CHAR) FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = ?",
        )
        .bind(&table)
        .fetch_all(&cluster.db.pool)
        .await
        .unwrap();
        let row_bytes = format!("SELECT CONCAT_WS(0x7c, {}) FROM `{table}`", columns.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", "));
        let rows: Vec<Option<Vec<u8>>> = sqlx::query_scalar(&row_bytes).fetch_all(&cluster.db.pool).await.unwrap();
        assert!(rows.iter().flatten().all(|row| !contains(row)), "plaintext password in table {table}");
    }
    let logs = cluster.all_logs();
    assert!(logs.len() > 1_000, "debug logs were captured");
    assert!(!logs.contains(&password), "plaintext password in a log line");
    assert!(cluster.stop().await.is_empty());
}

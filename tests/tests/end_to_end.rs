//! The whole system as separate OS processes — gateway, registration-service, dlq-worker —
//! on a real broker and a real database: sign-ups over HTTP end as rows, the article's
//! 10-second database outage loses nothing, an outage of any length parks nothing, a message
//! that keeps failing on its own is parked after exactly five retries, and the password never
//! leaves the gateway in clear.

use std::time::Duration;

use integration_tests::cluster::{Cluster, ClusterConfig};
use integration_tests::ledger::{Expected, PasswordEvidence};
use integration_tests::wait;
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
    reqwest::get(format!("{}/registrations/{id}", cluster.gateway_url))
        .await
        .expect("GET status")
        .json()
        .await
        .expect("json")
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

/// Waits until the registration-service reports it is paused for the database, i.e. the
/// outage landed on a consumer holding work (it pauses only when a batch failed on it).
async fn wait_paused(cluster: &Cluster) -> bool {
    let port = cluster.registration_port(0);
    wait::within(Duration::from_secs(30), || async move {
        integration_tests::metrics::read(port, "registration_service_paused").await == Some(1.0)
    })
    .await
}

fn dead_lettered(cluster: &Cluster) -> i64 {
    cluster.env.end_offsets(&dead_letter_topic(&cluster.topic)).values().sum()
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
    // The outage must have hit work, not an idle consumer: the consumer polled sign-ups it
    // could not store and paused on them.
    let paused = wait_paused(&cluster).await;
    tokio::time::sleep_until(outage + Duration::from_secs(10)).await;
    let stored_during_outage = cluster.db.count("SELECT COUNT(*) FROM users").await;
    let dead_lettered_during_outage = dead_lettered(&cluster);
    cluster.proxy.restore();
    assert!(paused, "precondition failed: the consumer never paused on the outage");
    assert_eq!(stored_during_outage, 0, "the cut database stored nothing");
    assert_eq!(dead_lettered_during_outage, 0, "an outage is waited out, not dead-lettered");

    let report = cluster.settle(&ids, Duration::from_secs(90)).await;
    report.assert_clean();
    assert_eq!(report.stored, 60, "every registration is stored, none parked: {report}");
    assert!(cluster.stop().await.is_empty(), "no service was restarted or crashed");
}

/// The old retry budget here is about 4 s (no in-place retries, 5 re-sends 300 ms apart, each
/// attempt ~0.3 s); the database stays away five times as long. Before the pause, every
/// sign-up of the outage was parked (64 of 642 in the chaos suite's old beyond-budget run).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_of_any_length_parks_nothing() {
    let config = ClusterConfig {
        retry_backoff: ("constant", 300),
        extra_env: vec![("IN_PLACE_RETRIES", "0".into()), ("DATABASE_ACQUIRE_TIMEOUT_MS", "300".into())],
        ..ClusterConfig::default()
    };
    let cluster = Cluster::start(config).await;
    cluster.proxy.cut();
    let outage = tokio::time::Instant::now();
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(sign_up(&cluster, &unique_email(), "a fine passphrase").await);
    }
    let paused = wait_paused(&cluster).await;
    tokio::time::sleep_until(outage + Duration::from_secs(20)).await;
    let dead_lettered_during_outage = dead_lettered(&cluster);
    cluster.proxy.restore();
    assert!(paused, "precondition failed: the consumer never paused on the outage");
    assert_eq!(dead_lettered_during_outage, 0, "nothing spent a retry on the outage");

    let report = cluster.settle(&ids, Duration::from_secs(60)).await;
    report.assert_clean();
    assert_eq!((report.stored, report.parked), (20, 0), "{report}");
    assert_eq!(cluster.db.count("SELECT COUNT(*) FROM parked_messages").await, 0);
    assert!(cluster.stop().await.is_empty());
}

/// The article's path, kept for what it is for: a message that keeps failing on its own (here
/// its row is locked by another transaction: a lock wait timeout on that one email) goes
/// through the DLQ, is re-sent with backoff, and is parked after exactly five retries, while
/// the sign-ups around it are stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_keeps_failing_on_its_own_is_parked_after_exactly_five_retries() {
    let config = ClusterConfig {
        retry_backoff: ("constant", 300),
        extra_env: vec![("IN_PLACE_RETRIES", "0".into()), ("DATABASE_LOCK_WAIT_TIMEOUT_SECS", "1".into())],
        ..ClusterConfig::default()
    };
    let cluster = Cluster::start(config).await;
    // Another transaction holds the unique-key entry of this address until the test ends.
    let locked_email = unique_email();
    let holder = cluster.db.hold_email_lock(&locked_email).await;

    let mut ids = Vec::new();
    for _ in 0..10 {
        ids.push(sign_up(&cluster, &unique_email(), "a fine passphrase").await);
    }
    let locked = sign_up(&cluster, &locked_email, "a fine passphrase").await;
    for _ in 0..10 {
        ids.push(sign_up(&cluster, &unique_email(), "a fine passphrase").await);
    }
    let db = &cluster.db;
    let parked =
        wait::within(
            Duration::from_secs(90),
            || async move { db.count("SELECT COUNT(*) FROM parked_messages").await >= 1 },
        )
        .await;
    holder.rollback().await.expect("release the lock");
    assert!(parked, "the locked sign-up was never parked");

    ids.push(locked.clone());
    let report = cluster.settle(&ids, Duration::from_secs(60)).await;
    report.assert_clean();
    assert_eq!((report.stored, report.parked), (20, 1), "the rest is stored: {report}");
    let (retries, kind, error): (u32, String, Option<String>) =
        sqlx::query_as("SELECT retry_count, error_kind, error_message FROM parked_messages")
            .fetch_one(&cluster.db.pool)
            .await
            .unwrap();
    assert_eq!(retries, 5, "parked after exactly five retries");
    assert_eq!(kind, "transient");
    assert!(error.unwrap_or_default().contains("Lock wait timeout"), "its own error, intact");
    let status = status(&cluster, locked.request_id).await;
    assert_eq!((status["status"].as_str(), status["retry_count"].as_u64()), (Some("parked"), Some(5)), "{status}");
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
            assert!(
                record.headers.iter().all(|h| !contains(h.value.as_deref().unwrap_or_default())),
                "in a header on {topic}"
            );
        }
    }
    let hash: String = sqlx::query_scalar("SELECT password_hash FROM users WHERE request_id = ?")
        .bind(stored.request_id.as_bytes().to_vec())
        .fetch_one(&cluster.db.pool)
        .await
        .unwrap();
    assert!(hash.starts_with("$argon2id$"), "stored as an argon2id hash: {hash}");
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT CAST(table_name AS CHAR) FROM information_schema.tables WHERE table_schema = DATABASE()",
    )
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
        let row_bytes = format!(
            "SELECT CONCAT_WS(0x7c, {}) FROM `{table}`",
            columns.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ")
        );
        let rows: Vec<Option<Vec<u8>>> = sqlx::query_scalar(&row_bytes).fetch_all(&cluster.db.pool).await.unwrap();
        assert!(rows.iter().flatten().all(|row| !contains(row)), "plaintext password in table {table}");
    }
    let logs = cluster.all_logs();
    assert!(logs.len() > 1_000, "debug logs were captured");
    assert!(!logs.contains(&password), "plaintext password in a log line");
    assert!(cluster.stop().await.is_empty());
}

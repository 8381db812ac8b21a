//! `kill -9` of the registration-service mid-stream loses nothing, and the same check catches
//! the loss when the service runs with Kafka's auto-commit (the negative control): proof that
//! the check can fail.

use std::time::Duration;

use integration_tests::ledger::{self, LedgerReport};
use integration_tests::registrations::{produce_events, sample_event, service_process_env, spawn_service_process};
use integration_tests::tcp_proxy::{database_socket_addr, TcpProxy};
use integration_tests::{test_env, wait};
use rand::Rng;
use reliable_messaging::dead_letter::dead_letter_topic;

const GROUP: &str = "registration-service";

/// Slow the consumer down (small batches) and make it retry in place "forever" while the
/// database is away, so the crash lands while a polled batch is not yet stored.
const STALL_ON_OUTAGE: &[(&str, &str)] = &[
    ("BATCH_SIZE", "50"),
    ("IN_PLACE_RETRIES", "100000"),
    ("IN_PLACE_BACKOFF", "constant"),
    ("IN_PLACE_BACKOFF_INITIAL_MS", "100"),
];

/// The article's crash: the database stalls under a polled batch, the process is killed with
/// SIGKILL, the database comes back and the service restarts. Returns the ledger.
async fn crash_while_a_batch_is_in_flight(commit_policy: &str) -> LedgerReport {
    let env = test_env().await;
    let db = env.fresh_database().await;
    let topic = env.unique_topic("registrations");
    env.create_topics(&[&topic, &dead_letter_topic(&topic)], 3).await;
    let proxy = TcpProxy::start(database_socket_addr(&db.url)).await;
    let events: Vec<_> = (0..2_000).map(|_| sample_event()).collect();
    produce_events(env, &topic, &events).await;

    let base = service_process_env(env, &topic, GROUP, &proxy.rewrite_url(&db.url));
    let mut overrides: Vec<(&str, &str)> = STALL_ON_OUTAGE.to_vec();
    overrides.push(("COMMIT_POLICY", commit_policy));

    let mut service = spawn_service_process(&base, &overrides);
    let db_ref = &db;
    wait::until(Duration::from_secs(60), "the service is storing users", || async move {
        db_ref.count("SELECT COUNT(*) FROM users").await >= 200
    })
    .await;
    proxy.cut();
    // Longer than auto-commit's 100 ms interval: an auto-committing consumer has now
    // committed the batch it could not store.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    service.kill_9().await;
    let stored_at_crash = db.count("SELECT COUNT(*) FROM users").await;
    proxy.restore();

    let mut restarted = spawn_service_process(&base, &overrides);
    wait::until(Duration::from_secs(90), "the restarted service consumed the topic", || async {
        env.group_caught_up(GROUP, &topic)
    })
    .await;
    assert!(restarted.terminate(Duration::from_secs(20)).await, "graceful stop\n{}", restarted.log());

    let ids: Vec<_> = events.iter().map(|e| e.request_id).collect();
    let report = ledger::check(&db, &ids).await;
    println!("commit policy {commit_policy}: stored before the crash {stored_at_crash}; {report}");
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_with_a_batch_in_flight_loses_nothing() {
    let report = crash_while_a_batch_is_in_flight("after-durable-outcome").await;
    report.assert_clean();
    assert_eq!(report.stored, 2_000, "{report}");
}

/// Negative control: the same crash with auto-commit must be caught losing registrations.
/// If this test fails, the loss check above proves nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negative_control_auto_commit_is_caught_losing_registrations() {
    let report = crash_while_a_batch_is_in_flight("unsafe-auto-commit").await;
    assert!(!report.lost.is_empty(), "the ledger must detect the loss auto-commit causes: {report}");
    assert!(report.duplicated.is_empty(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_kills_during_a_stream_lose_nothing() {
    let env = test_env().await;
    let db = env.fresh_database().await;
    let topic = env.unique_topic("registrations");
    env.create_topics(&[&topic, &dead_letter_topic(&topic)], 3).await;
    let events: Vec<_> = (0..3_000).map(|_| sample_event()).collect();
    produce_events(env, &topic, &events).await;
    let base = service_process_env(env, &topic, GROUP, &db.url);
    let small_batches = [("BATCH_SIZE", "20")];

    let kills = std::env::var("CRASH_TEST_KILLS").ok().and_then(|k| k.parse().ok()).unwrap_or(3);
    let mut service = spawn_service_process(&base, &small_batches);
    for _ in 0..kills {
        let before = db.count("SELECT COUNT(*) FROM users").await;
        let db_ref = &db;
        // Wait until this incarnation is actually writing, then kill at a random moment.
        let progressed = wait::within(Duration::from_secs(60), || async move {
            db_ref.count("SELECT COUNT(*) FROM users").await > before
        })
        .await;
        if !progressed {
            break; // everything already stored
        }
        tokio::time::sleep(Duration::from_millis(rand::thread_rng().gen_range(0..400))).await;
        service.kill_9().await;
        service = spawn_service_process(&base, &small_batches);
    }
    wait::until(Duration::from_secs(120), "the topic is consumed", || async { env.group_caught_up(GROUP, &topic) }).await;
    assert!(service.terminate(Duration::from_secs(20)).await, "graceful stop\n{}", service.log());

    let ids: Vec<_> = events.iter().map(|e| e.request_id).collect();
    let report = ledger::check(&db, &ids).await;
    println!("{kills} kills: {report}");
    report.assert_clean();
    assert_eq!(report.stored, 3_000, "{report}");
}

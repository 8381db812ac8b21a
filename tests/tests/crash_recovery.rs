//! `kill -9` of the registration-service while it holds polled records it has not stored loses
//! nothing, and the same check catches the loss when the service runs with Kafka's auto-commit
//! (the negative control): proof that the check can fail.
//!
//! Every kill is placed, not timed. Part of the stream is stored first; then the database is
//! cut, the rest of the stream is produced, and the kill comes only once the service's
//! `/metrics` shows records it has polled but not made durable (`registration_service_in_flight`).
//! While the database is cut and the in-place retries outlast the test, such a record can be
//! neither stored nor handed to the DLQ, so it is still in flight when the kill arrives. A
//! service that never holds such work (it stored everything first, or is not consuming) fails
//! the test loudly instead of letting it pass without a batch in flight.

use std::collections::HashMap;
use std::time::Duration;

use integration_tests::harness::registration::{service_process_env, spawn_service_process};
use integration_tests::harness::{free_port, ServiceProcess};
use integration_tests::ledger::{self, LedgerReport};
use integration_tests::registrations::{produce_events, sample_event};
use integration_tests::tcp_proxy::{database_socket_addr, TcpProxy};
use integration_tests::{metrics, test_env, wait};
use rand::Rng;
use reliable_messaging::dead_letter::dead_letter_topic;

const IN_FLIGHT: &str = "registration_service_in_flight";
const CONSUMED: &str = "registration_service_consumed_total";
const COUNT_USERS: &str = "SELECT COUNT(*) FROM users";

/// Small batches, and in-place retries that outlast any test while the database is away: a
/// polled batch then stays in flight (not stored, not dead-lettered, not committed by the
/// safe policy) until the kill.
const STALL_ON_OUTAGE: &[(&str, &str)] = &[
    ("BATCH_SIZE", "50"),
    ("IN_PLACE_RETRIES", "100000"),
    ("IN_PLACE_BACKOFF", "constant"),
    ("IN_PLACE_BACKOFF_INITIAL_MS", "100"),
];

/// Stored (and committed) before the database is cut.
const STORED_BEFORE_CUT: usize = 200;
const TOTAL: usize = 2_000;

/// What the service held when it was killed.
#[derive(Debug)]
struct CrashPoint {
    /// Rows in `users` right after the kill.
    stored: i64,
    /// Records below the group's committed offsets right after the kill.
    committed: i64,
    /// Records the service had taken into processing without a durable outcome, seen on its
    /// `/metrics` while the database was cut (so still in flight at the kill).
    in_flight: u64,
    /// Records the service had taken into processing since it started.
    consumed: u64,
}

fn total(offsets: &HashMap<i32, i64>) -> i64 {
    offsets.values().sum()
}

/// The last lines of a process log, for assertion messages.
fn log_tail(service: &ServiceProcess) -> String {
    let log = service.log();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// The fault's precondition: waits until the service on `port` holds polled records without a
/// durable outcome and returns how many. Panics if it never does, because a kill would then
/// hit an idle process and prove nothing.
async fn wait_for_work_in_flight(port: u16, service: &ServiceProcess) -> u64 {
    let held = wait::within(Duration::from_secs(60), || async {
        metrics::read(port, IN_FLIGHT).await.is_some_and(|n| n > 0.0)
    })
    .await;
    assert!(
        held,
        "precondition failed: the service never held polled records it could not store, so a kill \
         would hit an idle process and prove nothing\n{}",
        log_tail(service)
    );
    metrics::read(port, IN_FLIGHT).await.expect("in-flight gauge") as u64
}

/// The article's crash: the service has stored part of the stream, the database goes away,
/// the rest of the stream arrives, and the service is killed with SIGKILL while it holds
/// polled records it could not store. The database comes back and the service restarts.
async fn crash_while_a_batch_is_in_flight(commit_policy: &str) -> (LedgerReport, CrashPoint) {
    let env = test_env().await;
    let db = env.fresh_database().await;
    let topic = env.unique_topic("registrations");
    // A group of its own: members of a shared group with other tests' topics would rebalance
    // it, and a member stalled on the cut database holds every such rebalance up.
    let group = format!("{topic}-registration-service");
    let group = group.as_str();
    env.create_topics(&[&topic, &dead_letter_topic(&topic)], 3).await;
    let proxy = TcpProxy::start(database_socket_addr(&db.url)).await;
    let events: Vec<_> = (0..TOTAL).map(|_| sample_event()).collect();
    let (before_cut, after_cut) = events.split_at(STORED_BEFORE_CUT);

    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let base = service_process_env(env, &topic, group, &proxy.rewrite_url(&db.url));
    let mut overrides: Vec<(&str, &str)> = STALL_ON_OUTAGE.to_vec();
    overrides.extend([("COMMIT_POLICY", commit_policy), ("REGISTRATION_SERVICE_ADDR", addr.as_str())]);
    let mut service = spawn_service_process(&base, &overrides);

    // The consumer is assigned and working: the first part is stored and committed.
    produce_events(env, &topic, before_cut).await;
    let db_ref = &db;
    let topic_ref = topic.as_str();
    wait::until(Duration::from_secs(60), "the service stored and committed the first part", || async move {
        db_ref.count(COUNT_USERS).await == STORED_BEFORE_CUT as i64 && env.group_caught_up(group, topic_ref)
    })
    .await;

    // The database goes away, then the rest arrives: the consumer polls records it cannot store.
    proxy.cut();
    produce_events(env, &topic, after_cut).await;
    let in_flight = wait_for_work_in_flight(port, &service).await;
    if commit_policy == "unsafe-auto-commit" {
        // Auto-commit loses records only once it has committed them; it does so within its
        // 100 ms interval. Wait until the broker shows it instead of sleeping and hoping.
        let committed_unstored = wait::within(Duration::from_secs(30), || async {
            total(&env.committed_offsets(group, &topic)) > STORED_BEFORE_CUT as i64
        })
        .await;
        assert!(
            committed_unstored,
            "precondition failed: auto-commit never committed the polled records\n{}",
            log_tail(&service)
        );
    }
    let consumed = metrics::read(port, CONSUMED).await.expect("consumed counter") as u64;
    service.kill_9().await;

    let point = CrashPoint {
        stored: db.count(COUNT_USERS).await,
        committed: total(&env.committed_offsets(group, &topic)),
        in_flight,
        consumed,
    };
    // The database was cut from before the observation to after the kill: nothing the service
    // held in flight can have been stored in between.
    assert_eq!(point.stored, STORED_BEFORE_CUT as i64, "the cut database stored nothing: {point:?}");
    assert!(point.consumed > point.stored as u64, "the service had taken records it had not stored: {point:?}");
    proxy.restore();

    let mut restarted = spawn_service_process(&base, &overrides);
    wait::until(Duration::from_secs(90), "the restarted service consumed the topic", || async {
        env.group_caught_up(group, &topic)
    })
    .await;
    assert!(restarted.terminate(Duration::from_secs(20)).await, "graceful stop\n{}", log_tail(&restarted));

    let report = ledger::check(&db, &ledger::expected_from_events(&events)).await;
    println!("commit policy {commit_policy}: killed holding {point:?}; {report}");
    (report, point)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_with_a_batch_in_flight_loses_nothing() {
    let (report, point) = crash_while_a_batch_is_in_flight("after-durable-outcome").await;
    // Only durable work is committed: the first part, not the records in flight at the kill,
    // so the consumer's position was past its committed offsets when it died.
    assert_eq!(
        point.committed, STORED_BEFORE_CUT as i64,
        "the {} records in flight at the kill must not be committed: {point:?}",
        point.in_flight
    );
    report.assert_clean();
    assert_eq!(report.stored, TOTAL, "{report}");
}

/// Negative control: the same crash with auto-commit must be caught losing registrations.
/// If this test fails, the loss check above proves nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negative_control_auto_commit_is_caught_losing_registrations() {
    let (report, point) = crash_while_a_batch_is_in_flight("unsafe-auto-commit").await;
    // Every record committed without being stored is skipped after the restart: lost.
    let committed_unstored = usize::try_from(point.committed - point.stored).expect("committed past the stored part");
    assert!(committed_unstored > 0, "{point:?}");
    assert!(
        report.lost.len() >= committed_unstored,
        "the ledger must detect the {committed_unstored} registrations auto-commit committed without storing: {report}"
    );
    assert!(report.duplicated.is_empty(), "{report}");
}

/// Several crashes in a row, each placed on in-flight work: alternately at a random point of
/// the stream, and on the records a restarted service redelivers because the previous
/// incarnation died holding them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_kills_during_a_stream_lose_nothing() {
    let env = test_env().await;
    let db = env.fresh_database().await;
    let topic = env.unique_topic("registrations");
    // A group of its own: members of a shared group with other tests' topics would rebalance
    // it, and a member stalled on the cut database holds every such rebalance up.
    let group = format!("{topic}-registration-service");
    let group = group.as_str();
    env.create_topics(&[&topic, &dead_letter_topic(&topic)], 3).await;
    let proxy = TcpProxy::start(database_socket_addr(&db.url)).await;
    let kills: usize = std::env::var("CRASH_TEST_KILLS").ok().and_then(|k| k.parse().ok()).unwrap_or(3);
    let events: Vec<_> = (0..3_000).map(|_| sample_event()).collect();
    // One chunk before the first kill, then one produced under each cut.
    let chunks: Vec<_> = events.chunks(events.len().div_ceil(kills + 1)).collect();
    assert_eq!(chunks.len(), kills + 1, "one chunk per kill plus the first");

    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let base = service_process_env(env, &topic, group, &proxy.rewrite_url(&db.url));
    let mut overrides: Vec<(&str, &str)> = STALL_ON_OUTAGE.to_vec();
    overrides.push(("REGISTRATION_SERVICE_ADDR", addr.as_str()));
    let mut service = spawn_service_process(&base, &overrides);
    produce_events(env, &topic, chunks[0]).await;

    let mut stored_at_last_kill = 0;
    for (k, chunk) in chunks[1..].iter().enumerate() {
        if k % 2 == 1 {
            // On redelivered work: the restarted service has run its migrations and created
            // its consumer but owns no partitions yet; cut now, and the first records it polls
            // are the ones the killed incarnation held in flight, from the committed offsets.
            let restarted = &service;
            wait::until(Duration::from_secs(60), "the restarted service created its consumer", || async move {
                restarted.log().contains("consumer started")
            })
            .await;
        } else {
            // This incarnation is storing, then a random pause moves the cut to a different
            // point of its work.
            let db_ref = &db;
            wait::until(Duration::from_secs(60), "the service stores again", || async move {
                db_ref.count(COUNT_USERS).await > stored_at_last_kill
            })
            .await;
            tokio::time::sleep(Duration::from_millis(rand::thread_rng().gen_range(0..400))).await;
        }
        proxy.cut();
        produce_events(env, &topic, chunk).await;
        let in_flight = wait_for_work_in_flight(port, &service).await;
        let stored_at_observation = db.count(COUNT_USERS).await;
        service.kill_9().await;
        stored_at_last_kill = db.count(COUNT_USERS).await;
        assert_eq!(stored_at_last_kill, stored_at_observation, "the cut database stored nothing before the kill");
        println!("kill {}: {in_flight} records in flight, {stored_at_last_kill} stored", k + 1);
        proxy.restore();
        service = spawn_service_process(&base, &overrides);
    }
    wait::until(Duration::from_secs(120), "the topic is consumed", || async { env.group_caught_up(group, &topic) })
        .await;
    assert!(service.terminate(Duration::from_secs(20)).await, "graceful stop\n{}", log_tail(&service));

    let report = ledger::check(&db, &ledger::expected_from_events(&events)).await;
    println!("{kills} kills, each with records in flight: {report}");
    report.assert_clean();
    assert_eq!(report.stored, 3_000, "{report}");
}

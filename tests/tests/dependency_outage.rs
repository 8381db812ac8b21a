//! A dependency outage and a bad message are not alike, against a real broker and database:
//! * the database away (any length): the consumer pauses, keeps its partitions, dead-letters
//!   nothing, reports `paused: database down`, and stores everything once it answers;
//! * a 1,000-poison flood: at most 100 reach the DLQ, the consumer halts and says why, and a
//!   restart with a raised limit carries on from where it stopped.

use std::time::Duration;

use integration_tests::harness::registration::{service_settings, InProcessService};
use integration_tests::ledger;
use integration_tests::registrations::{produce_events, sample_event};
use integration_tests::tcp_proxy::{database_socket_addr, TcpProxy};
use integration_tests::{test_env, wait, TestEnv};
use reliable_messaging::dead_letter::dead_letter_topic;
use reliable_messaging::dead_letter::Backoff;
use reliable_messaging::dead_letter::DeadLetterLimit;

const GROUP: &str = "registration-service";

async fn topic_pair(env: &TestEnv, prefix: &str) -> (String, String) {
    let topic = env.unique_topic(prefix);
    let dlq = dead_letter_topic(&topic);
    env.create_topics(&[&topic, &dlq], 3).await;
    (topic, dlq)
}

async fn get(port: u16, path: &str) -> (u16, String) {
    match reqwest::get(format!("http://127.0.0.1:{port}{path}")).await {
        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
        Err(e) => (0, e.to_string()),
    }
}

fn records(env: &TestEnv, topic: &str) -> i64 {
    env.end_offsets(topic).values().sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_pauses_the_consumer_and_dead_letters_nothing() {
    let env = test_env().await;
    let db = env.fresh_database().await;
    let (topic, dlq) = topic_pair(env, "outage").await;
    let proxy = TcpProxy::start(database_socket_addr(&db.url)).await;
    let mut settings = service_settings(env, &topic, GROUP, &proxy.rewrite_url(&db.url));
    // The old budget: 2 in-place retries 100 ms apart, then the DLQ. The outage below is
    // far longer than that.
    settings.service.consumer.in_place_retries = 2;
    settings.service.consumer.outage_probe_backoff = Backoff::constant(Duration::from_millis(300));
    settings.database.acquire_timeout = Duration::from_millis(300);
    let service = InProcessService::start(settings).await;
    let port = service.http_port;

    let before: Vec<_> = (0..100).map(|_| sample_event()).collect();
    produce_events(env, &topic, &before).await;
    let db_ref = &db;
    wait::until(Duration::from_secs(30), "the first events are stored", || async move {
        db_ref.count("SELECT COUNT(*) FROM users").await == 100
    })
    .await;

    proxy.cut();
    let during: Vec<_> = (0..200).map(|_| sample_event()).collect();
    produce_events(env, &topic, &during).await;
    wait::until(Duration::from_secs(30), "readiness says why it paused", || async {
        let (status, body) = get(port, "/readyz").await;
        status == 503 && body.contains("paused: database down")
    })
    .await;
    // Work is in flight and uncommitted while paused: the outage landed on a busy consumer.
    let (_, metrics) = get(port, "/metrics").await;
    assert!(metrics.contains("registration_service_paused 1"), "{metrics}");
    assert!(!env.group_caught_up(GROUP, &topic), "nothing of the outage's events is committed");
    // Far longer than the old retry budget (3 attempts ≈ 1 s): nothing reaches the DLQ.
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(records(env, &dlq), 0, "an outage dead-letters nothing");
    let (_, metrics) = get(port, "/metrics").await;
    assert!(metrics.contains("registration_service_assigned_partitions 3"), "still in its group: {metrics}");
    let outage_secs: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("registration_service_outage_seconds "))
        .and_then(|v| v.parse().ok())
        .expect("outage duration on /metrics");
    assert!(outage_secs >= 8.0, "the outage's duration is exposed: {outage_secs}");

    proxy.restore();
    wait::until(Duration::from_secs(60), "everything is stored after the outage", || async move {
        db_ref.count("SELECT COUNT(*) FROM users").await == 300
    })
    .await;
    wait::until(Duration::from_secs(30), "offsets are committed", || async { env.group_caught_up(GROUP, &topic) })
        .await;
    let (status, _) = get(port, "/readyz").await;
    assert_eq!(status, 200, "ready again");
    let (_, metrics) = get(port, "/metrics").await;
    assert!(metrics.contains("registration_service_outages_total 1"), "{metrics}");
    assert!(metrics.contains("registration_service_dead_lettered_transient_total 0"), "{metrics}");
    service.stop().await;

    let all: Vec<_> = before.into_iter().chain(during).collect();
    let report = ledger::check(&db, &ledger::expected_from_events(&all)).await;
    report.assert_clean();
    assert_eq!((report.stored, report.parked), (300, 0), "{report}");
    assert_eq!(records(env, &dlq), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_poison_halts_after_the_limit_and_a_restart_carries_on() {
    const POISON: usize = 1_000;
    const LIMIT: u32 = 100;
    let env = test_env().await;
    let db = env.fresh_database().await;
    // One partition keeps the order "1,000 poison, then the good ones" exact.
    let topic = env.unique_topic("flood");
    let dlq = dead_letter_topic(&topic);
    env.create_topics(&[&topic, &dlq], 1).await;
    let producer = env.producer();
    let payloads: Vec<String> = (0..POISON).map(|i| format!("not json {i}")).collect();
    // One key: one partition anyway, and the sends keep their order.
    futures::future::join_all(
        payloads.iter().map(|p| {
            integration_tests::kafka::produce_with(&producer, &topic, Some(b"poison"), Some(p.as_bytes()), &[])
        }),
    )
    .await;
    let good: Vec<_> = (0..50).map(|_| sample_event()).collect();
    produce_events(env, &topic, &good).await;

    let mut settings = service_settings(env, &topic, GROUP, &db.url);
    settings.service.dead_letters.limit = DeadLetterLimit { max_consecutive: LIMIT, ..DeadLetterLimit::default() };
    let service = InProcessService::start(settings.clone()).await;
    let port = service.http_port;
    wait::until(Duration::from_secs(60), "the consumer halts and says why", || async {
        let (status, body) = get(port, "/readyz").await;
        status == 503 && body.contains("halted") && body.contains("consecutive")
    })
    .await;
    let (_, ready) = get(port, "/readyz").await;
    assert!(ready.contains("not JSON"), "the first failure's reason is reported: {ready}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(records(env, &dlq), i64::from(LIMIT), "exactly the limit reached the DLQ, not the flood");
    assert_eq!(db.count("SELECT COUNT(*) FROM users").await, 0);
    service.stop().await;
    let committed: i64 = env.committed_offsets(GROUP, &topic).values().sum();
    assert_eq!(committed, i64::from(LIMIT), "committed up to the message that tripped the limit");

    // After the fix (here: the limit raised), a restart resumes exactly where it stopped.
    settings.service.dead_letters.limit = DeadLetterLimit::disabled();
    let restarted = InProcessService::start(settings).await;
    let db_ref = &db;
    wait::until(Duration::from_secs(60), "the good records after the flood are stored", || async move {
        db_ref.count("SELECT COUNT(*) FROM users").await == 50
    })
    .await;
    wait::until(Duration::from_secs(30), "offsets are committed", || async { env.group_caught_up(GROUP, &topic) })
        .await;
    restarted.stop().await;
    assert_eq!(records(env, &dlq), POISON as i64, "each poison record dead-lettered once");
    ledger::check(&db, &ledger::expected_from_events(&good)).await.assert_clean();
}

/// The limit trips on the last message there is (a flood that has stopped, or a flood of
/// exactly limit + 1): the consumer must halt and say so at once, not only when a further
/// message arrives. It used to wait for the next poll to return, so on a now idle topic it
/// stayed "ready" with the tripping message unsettled (found by `chaos --alerts`: ConsumerHalted
/// never fired).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_flood_limit_halts_at_once_when_the_tripping_message_is_the_last_one() {
    const LIMIT: u32 = 3;
    let env = test_env().await;
    let db = env.fresh_database().await;
    let (topic, dlq) = topic_pair(env, "flood-idle").await;
    let group = format!("{topic}-registration-service");
    let mut settings = service_settings(env, &topic, &group, &db.url);
    settings.service.dead_letters.limit = DeadLetterLimit { max_consecutive: LIMIT, ..DeadLetterLimit::default() };
    let service = InProcessService::start(settings).await;
    let port = service.http_port;
    wait::until(Duration::from_secs(60), "the consumer owns its partitions", || async {
        get(port, "/readyz").await.0 == 200
    })
    .await;
    let producer = env.producer();
    for i in 0..=LIMIT {
        let payload = format!("not json {i}");
        integration_tests::kafka::produce_with(&producer, &topic, Some(b"poison"), Some(payload.as_bytes()), &[]).await;
    }
    // Nothing is produced after the tripping message.
    let dlq_ref = dlq.clone();
    wait::until(Duration::from_secs(30), "the limit's worth of poison reaches the DLQ", || {
        let dlq = dlq_ref.clone();
        async move { records(env, &dlq) == i64::from(LIMIT) }
    })
    .await;
    let halted = wait::within(Duration::from_secs(10), || async {
        let (status, body) = get(port, "/readyz").await;
        status == 503 && body.contains("halted")
    })
    .await;
    let (status, body) = get(port, "/readyz").await;
    service.stop().await;
    assert!(halted, "not halted 10 s after the tripping message, the last on the topic: /readyz {status} {body}");
    assert_eq!(records(env, &dlq), i64::from(LIMIT), "the tripping message is not dead-lettered");
}

//! The dlq-worker binary as a real OS process: `kill -9` while messages wait loses none of them,
//! SIGTERM commits exactly the finished prefix before exiting, and parking writes the one JSON
//! log line that log-based alerting picks up.
//!
//! Needs the binary: `cargo build -p dlq-worker` (scripts/test.sh builds every binary).

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::Utc;
use integration_tests::dead_letters::topic_pair;
use integration_tests::harness::dlq_worker::{process_env, Scope};
use integration_tests::harness::{free_port, ServiceProcess};
use integration_tests::metrics;
use integration_tests::{test_env, wait, TestEnv};
use reliable_messaging::message::retry_metadata::header;

async fn metric_at_least(port: u16, name: &str, n: f64) -> bool {
    metrics::read(port, name).await.is_some_and(|v| v >= n)
}

/// Produces a dead-lettered record with payload `m-<i>` due at `due_ms`.
async fn produce_due(env: &TestEnv, dlq: &str, origin: &str, i: usize, due_ms: i64) {
    let due = due_ms.to_string();
    let payload = format!("m-{i}");
    let key = format!("k-{i}");
    let headers = [
        (header::RETRY_COUNT, &b"1"[..]),
        (header::ORIGINAL_TOPIC, origin.as_bytes()),
        (header::ERROR_KIND, b"transient"),
        (header::NOT_BEFORE, due.as_bytes()),
    ];
    env.produce(dlq, Some(key.as_bytes()), Some(payload.as_bytes()), &headers).await;
}

/// The distinct payloads on `topic` so far.
async fn distinct_payloads(env: &TestEnv, topic: &str) -> BTreeSet<String> {
    let total: i64 = env.end_offsets(topic).values().sum();
    let records = env.read_topic(topic, usize::try_from(total).unwrap(), Duration::from_secs(10)).await;
    records.iter().filter_map(|r| r.payload.as_deref()).map(|p| String::from_utf8_lossy(p).into_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_messages_wait_loses_none_of_them() {
    let env = test_env().await;
    let db = env.fresh_database().await;
    let scope = Scope::new(env);
    let (origin, dlq) = topic_pair(&scope, "orders", 3).await;

    let port = free_port();
    let mut worker = ServiceProcess::spawn("dlq-worker", &process_env(env, &scope, &db.url, port));
    // Half due at once, half in 20 s, interleaved so every partition has both kinds.
    let now = Utc::now().timestamp_millis();
    let late_due = now + 20_000;
    for i in 0..20 {
        let due = if i % 2 == 0 { now } else { late_due };
        produce_due(env, &dlq, &origin, i, due).await;
    }
    wait::until(Duration::from_secs(30), "the early half is re-sent and the late half waits", || async {
        metric_at_least(port, "dlq_redriven_total", 10.0).await && metric_at_least(port, "dlq_scheduled", 10.0).await
    })
    .await;
    worker.kill_9().await;
    // The kill must land while the worker holds polled, uncommitted work: the late half was
    // scheduled (seen above) and could not be due yet, and the broker has not committed it.
    // Otherwise the restart below would prove nothing.
    let killed_at = Utc::now().timestamp_millis();
    assert!(
        killed_at < late_due,
        "precondition failed: the kill came after the late half was due ({killed_at} >= {late_due})"
    );
    let committed: i64 = env.committed_offsets(&scope.group, &dlq).values().sum();
    assert!(
        committed <= 10,
        "precondition failed: {committed} of 20 DLQ records committed at the kill, so the late half was not in flight"
    );
    let after_kill = distinct_payloads(env, &origin).await;
    assert_eq!(after_kill.len(), 10, "only the early half was sent before the crash: {after_kill:?}");

    let mut restarted = ServiceProcess::spawn("dlq-worker", &process_env(env, &scope, &db.url, free_port()));
    let expected: BTreeSet<String> = (0..20).map(|i| format!("m-{i}")).collect();
    let all_arrived =
        wait::within(Duration::from_secs(60), || async { distinct_payloads(env, &origin).await == expected }).await;
    let arrived = distinct_payloads(env, &origin).await;
    assert!(
        all_arrived,
        "missing after restart: {:?}\nworker log:\n{}",
        expected.difference(&arrived).collect::<Vec<_>>(),
        restarted.log()
    );
    wait::until(Duration::from_secs(15), "every DLQ offset is committed", || async {
        env.group_caught_up(&scope.group, &dlq)
    })
    .await;
    assert!(restarted.terminate(Duration::from_secs(20)).await, "clean exit on SIGTERM:\n{}", restarted.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_commits_exactly_the_finished_prefix_and_exits_cleanly() {
    let env = test_env().await;
    let db = env.fresh_database().await;
    let scope = Scope::new(env);
    let (origin, dlq) = topic_pair(&scope, "orders", 1).await;
    let now = Utc::now().timestamp_millis();
    for i in 0..3 {
        produce_due(env, &dlq, &origin, i, now).await;
    }
    produce_due(env, &dlq, &origin, 3, now + 600_000).await;

    let port = free_port();
    let mut worker = ServiceProcess::spawn("dlq-worker", &process_env(env, &scope, &db.url, port));
    wait::until(Duration::from_secs(30), "three are re-sent and one waits", || async {
        metric_at_least(port, "dlq_redriven_total", 3.0).await && metric_at_least(port, "dlq_scheduled", 1.0).await
    })
    .await;
    assert!(worker.terminate(Duration::from_secs(20)).await, "clean exit on SIGTERM:\n{}", worker.log());
    let committed = env.committed_offsets(&scope.group, &dlq);
    assert_eq!(
        committed.get(&0),
        Some(&3),
        "offsets 0-2 are done and committed; offset 3 still waited, so it is not:\n{}",
        worker.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parking_writes_one_structured_log_line_without_the_payload() {
    let env = test_env().await;
    let db = env.fresh_database().await;
    let scope = Scope::new(env);
    let (origin, dlq) = topic_pair(&scope, "orders", 1).await;
    env.produce(
        &dlq,
        Some(b"grace@example.com"),
        Some(b"SECRET-PAYLOAD"),
        &[
            (header::RETRY_COUNT, b"5"),
            (header::ORIGINAL_TOPIC, origin.as_bytes()),
            (header::ORIGINAL_PARTITION, b"0"),
            (header::ORIGINAL_OFFSET, b"12"),
            (header::FIRST_FAILURE_AT, b"2026-11-26T10:00:00.000Z"),
            (header::LAST_FAILURE_AT, b"2026-11-26T10:09:00.000Z"),
            (header::ERROR_KIND, b"transient"),
            (header::ERROR_MESSAGE, b"database unreachable"),
        ],
    )
    .await;
    let mut worker = ServiceProcess::spawn("dlq-worker", &process_env(env, &scope, &db.url, free_port()));
    integration_tests::dead_letters::wait_parked(&db.pool, 1, Duration::from_secs(30)).await;
    assert!(worker.terminate(Duration::from_secs(20)).await);

    let log = worker.log();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["event"] == "message_parked")
        .collect();
    assert_eq!(lines.len(), 1, "exactly one parking line:\n{log}");
    let line = &lines[0];
    assert_eq!(line["target"], "parking_lot");
    assert_eq!(line["source_topic"], origin.as_str());
    assert_eq!((line["partition"].as_i64(), line["offset"].as_i64()), (Some(0), Some(12)));
    assert_eq!(line["key"], "grace@example.com");
    assert_eq!(line["error_kind"], "transient");
    assert_eq!(line["error_message"], "database unreachable; retry budget of 5 exhausted");
    assert_eq!(line["retry_count"], 5);
    assert_eq!(line["first_failure_at"], "2026-11-26T10:00:00.000Z");
    assert_eq!(line["last_failure_at"], "2026-11-26T10:09:00.000Z");
    assert!(line["parked_id"].as_u64().is_some());
    assert!(!log.contains("SECRET-PAYLOAD"), "the payload stays in the database, out of the logs");
}

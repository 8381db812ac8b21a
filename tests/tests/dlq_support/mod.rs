//! Shared by the `dlq_*` and `parking_*` tests: parking-lot queries, topic pairs of one test's
//! [`Scope`], and reading a metric. The dlq-worker itself is started by
//! `integration_tests::harness::dlq_worker`.

#![allow(dead_code)] // each test binary uses a different part

use std::time::Duration;

use integration_tests::harness::dlq_worker::Scope;
use integration_tests::{test_env, TestEnv};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;
use reliable_messaging::dead_letter::dead_letter_topic;
use reliable_messaging::parking::{ParkedFilter, ParkedMessage, ParkingLot};
use sqlx::MySqlPool;

/// Every parked message, oldest first.
pub async fn parked(pool: &MySqlPool) -> Vec<ParkedMessage> {
    let lot = ParkingLot::new(pool.clone());
    let summaries = lot.list(&ParkedFilter { limit: Some(1000), ..Default::default() }).await.expect("list parked");
    let mut all = Vec::new();
    for s in summaries {
        all.push(lot.get(s.id).await.expect("get parked").expect("listed row exists"));
    }
    all
}

/// Waits until `n` messages are parked and returns them.
pub async fn wait_parked(pool: &MySqlPool, n: usize, timeout: Duration) -> Vec<ParkedMessage> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let rows = parked(pool).await;
        if rows.len() >= n {
            return rows;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?}: {} of {n} messages parked: {rows:#?}", rows.len());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether the broker knows `topic`, asked without creating it.
pub fn topic_exists(env: &TestEnv, topic: &str) -> bool {
    let client: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &env.kafka_bootstrap)
        .set("allow.auto.create.topics", "false")
        .create()
        .expect("metadata client");
    let metadata = client.fetch_metadata(Some(topic), Duration::from_secs(5)).expect("metadata");
    metadata.topics().iter().any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
}

/// The value of an unlabelled metric in a Prometheus text page.
pub fn metric(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')).and_then(|v| v.trim().parse().ok()))
}

/// Creates `<prefix>-<name>` and its `-dlq`, with `partitions` each.
pub async fn topic_pair(scope: &Scope, name: &str, partitions: i32) -> (String, String) {
    let origin = scope.topic(name);
    let dlq = dead_letter_topic(&origin);
    test_env().await.create_topics(&[&origin, &dlq], partitions).await;
    (origin, dlq)
}

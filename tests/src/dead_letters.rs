//! What the dead-letter tests (`dlq_*`, `parking_*`) read and set up: the parking lot's rows,
//! whether a topic exists, and the topic pairs of one test's [`Scope`]. The dlq-worker itself
//! is started by [`crate::harness::dlq_worker`].

use std::time::Duration;

use crate::harness::dlq_worker::Scope;
use crate::{test_env, TestEnv};
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

/// Creates `<prefix>-<name>` and its `-dlq`, with `partitions` each.
pub async fn topic_pair(scope: &Scope, name: &str, partitions: i32) -> (String, String) {
    let origin = scope.topic(name);
    let dlq = dead_letter_topic(&origin);
    test_env().await.create_topics(&[&origin, &dlq], partitions).await;
    (origin, dlq)
}

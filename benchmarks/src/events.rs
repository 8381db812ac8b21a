//! `RegistrationRequested` events as the gateway writes them, and a fast bulk producer that
//! pre-fills topics through the library's own `DurableProducer` (acks=all, idempotent), so the
//! pre-fill doubles as a measure of our producer next to Kafka's ProducerPerformance.

use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use futures::stream::{self, StreamExt, TryStreamExt};
use registration_events::{RegistrationRequested, REQUEST_ID_HEADER, SCHEMA_VERSION};
use reliable_messaging::delivery::Header;
use reliable_messaging::producer::OutboundRecord;
use reliable_messaging::{DurableProducer, KafkaSettings};
use uuid::Uuid;

/// A real argon2id PHC string with the gateway's parameters (the consumer never verifies it,
/// but its length is what travels on the topic).
const PASSWORD_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$Xm4rN0YdZcC6sQ4bQm0u6A$2m1wJ0m8oQ3h6cV2r0t9yq0n3c1l7p4Z8x5b6n9m2k4";

/// Sends in flight at once while pre-filling: enough to fill librdkafka's batches.
const IN_FLIGHT: usize = 5_000;

/// An event for a unique user of run `run_id`.
pub fn registration(run_id: &str) -> RegistrationRequested {
    let id = Uuid::new_v4();
    RegistrationRequested {
        schema_version: SCHEMA_VERSION,
        request_id: id,
        email: format!("bench-{run_id}-{}@example.com", id.simple()),
        name: "Benchmark User".to_owned(),
        password_hash: PASSWORD_HASH.to_owned(),
        requested_at: Utc::now(),
    }
}

/// The bytes of one event on the topic: the record size for Kafka's tools.
pub fn record_size(run_id: &str) -> usize {
    registration(run_id).to_json().len()
}

/// The record the gateway would write for `event`.
///
/// With `BENCH_TRACEPARENT=1` it also carries a `traceparent` of a trace of its own, as the
/// gateway writes when tracing is on (or its caller sent one): what the tracing-overhead rows of
/// BENCHMARKS.md are measured with.
pub fn record(topic: &str, event: &RegistrationRequested) -> OutboundRecord {
    let mut headers =
        vec![Header { key: REQUEST_ID_HEADER.to_owned(), value: Some(event.request_id.to_string().into_bytes()) }];
    if std::env::var("BENCH_TRACEPARENT").is_ok_and(|v| v == "1") {
        let id = event.request_id.simple().to_string();
        headers.push(Header {
            key: "traceparent".to_owned(),
            value: Some(format!("00-{id}-{}-01", &id[16..]).into_bytes()),
        });
    }
    OutboundRecord {
        topic: topic.to_owned(),
        key: Some(event.email.clone().into_bytes()),
        payload: Some(event.to_json()),
        headers,
    }
}

pub fn producer(bootstrap: &str) -> anyhow::Result<DurableProducer> {
    DurableProducer::new(&KafkaSettings::new(bootstrap, "benchmark-harness"), Duration::from_secs(30))
        .context("creating the Kafka producer")
}

/// Writes `records` and waits for every acknowledgement; returns how long it took.
pub async fn produce_all(producer: &DurableProducer, records: Vec<OutboundRecord>) -> anyhow::Result<Duration> {
    let started = Instant::now();
    stream::iter(records)
        .map(|record| {
            let producer = producer.clone();
            async move { producer.send(&record).await.map(|_| ()) }
        })
        .buffer_unordered(IN_FLIGHT)
        .try_collect::<()>()
        .await
        .context("pre-filling a topic")?;
    Ok(started.elapsed())
}

/// `count` fresh registrations for `topic`.
pub fn registrations(run_id: &str, topic: &str, count: usize) -> Vec<OutboundRecord> {
    (0..count).map(|_| record(topic, &registration(run_id))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_valid_for_the_consumer() {
        let event = registration("abc");
        let parsed = RegistrationRequested::parse(Some(&event.to_json())).expect("valid event");
        assert_eq!(parsed, event);
        assert!(record_size("abc") > 250);
    }
}

//! `RegistrationRequested` events as the gateway writes them, and a fast bulk producer that
//! pre-fills topics through the library's own `DurableProducer` (acks=all, idempotent), so the
//! pre-fill doubles as a measure of our producer next to Kafka's ProducerPerformance; and a
//! steady producer that spreads records evenly over a time, as sign-ups arrive in production
//! (the outage scenario's load while the database is down).

use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use futures::stream::{self, FuturesUnordered, StreamExt, TryStreamExt};
use registration_events::RegistrationRequested;
use reliable_messaging::message::Header;
use reliable_messaging::message::REQUEST_ID_HEADER;
use reliable_messaging::producer::DurableProducer;
use reliable_messaging::producer::OutboundRecord;
use reliable_messaging::KafkaSettings;
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
        schema_version: RegistrationRequested::VERSION,
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

/// How many of `count` records spread evenly over `duration` are due `elapsed` into it: record
/// i (from 0) is due at i × duration ÷ count, so the first leaves at once and the last one
/// interval before the end; everything is due once `duration` has passed.
pub fn due_by(elapsed: Duration, duration: Duration, count: usize) -> usize {
    if count == 0 || elapsed >= duration {
        return count;
    }
    // i × duration ÷ count ≤ elapsed  ⇔  i ≤ elapsed × count ÷ duration (exact, in nanoseconds).
    let last_due = elapsed.as_nanos() * count as u128 / duration.as_nanos();
    (last_due as usize + 1).min(count)
}

/// How often the steady producer wakes to send what has come due: every record's own
/// interval, but no more often than every 10 ms (several records per wake-up at high rates)
/// and no less often than every 100 ms.
pub fn pace_tick(duration: Duration, count: usize) -> Duration {
    let interval = if count == 0 { duration } else { duration / count.min(u32::MAX as usize) as u32 };
    interval.clamp(Duration::from_millis(10), Duration::from_millis(100))
}

/// What a steady load did.
#[derive(Debug, Clone, Copy)]
pub struct SteadyLoad {
    pub records: usize,
    /// From the first send to the last one (≈ the duration asked for, less one interval).
    pub spread_over: Duration,
}

/// Sends `records` spread evenly over `duration` ([`due_by`]), not as one burst, and waits for
/// every acknowledgement.
pub async fn produce_steadily(
    producer: &DurableProducer,
    records: Vec<OutboundRecord>,
    duration: Duration,
) -> anyhow::Result<SteadyLoad> {
    let count = records.len();
    let tick = pace_tick(duration, count);
    let start = tokio::time::Instant::now();
    let mut last_send = start;
    let mut pending = records.into_iter();
    let mut sent = 0;
    let mut acks = FuturesUnordered::new();
    while sent < count {
        let now = tokio::time::Instant::now();
        let due = due_by(now - start, duration, count);
        for record in pending.by_ref().take(due - sent) {
            let producer = producer.clone();
            acks.push(async move { producer.send(&record).await.map(|_| ()) });
        }
        if due > sent {
            (sent, last_send) = (due, now);
        }
        let wake = now + tick;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => break,
                Some(ack) = acks.next() => ack.context("producing the steady load")?,
            }
        }
    }
    while let Some(ack) = acks.next().await {
        ack.context("producing the steady load")?;
    }
    Ok(SteadyLoad { records: count, spread_over: last_send - start })
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

    #[test]
    fn a_steady_load_is_spread_evenly_over_its_duration() {
        let ten_s = Duration::from_secs(10);
        // 60,000 over 10 s: 6 per millisecond, the first at once.
        assert_eq!(due_by(Duration::ZERO, ten_s, 60_000), 1);
        assert_eq!(due_by(Duration::from_millis(1), ten_s, 60_000), 7);
        assert_eq!(due_by(Duration::from_secs(5), ten_s, 60_000), 30_001);
        assert_eq!(due_by(Duration::from_millis(9_999), ten_s, 60_000), 59_995);
        assert_eq!(due_by(ten_s, ten_s, 60_000), 60_000);
        assert_eq!(due_by(Duration::from_secs(11), ten_s, 60_000), 60_000);
        // 3 over 3 minutes: one at 0, 60 and 120 s.
        let three_min = Duration::from_secs(180);
        assert_eq!(due_by(Duration::from_secs(59), three_min, 3), 1);
        assert_eq!(due_by(Duration::from_secs(60), three_min, 3), 2);
        assert_eq!(due_by(Duration::from_secs(179), three_min, 3), 3);
        // Nothing to send, or no time to spread it over.
        assert_eq!(due_by(Duration::ZERO, ten_s, 0), 0);
        assert_eq!(due_by(Duration::ZERO, Duration::ZERO, 5), 5);
        // Never more than asked for, never fewer as time goes on.
        let mut before = 0;
        for ms in 0..=10_000 {
            let due = due_by(Duration::from_millis(ms), ten_s, 777);
            assert!(due >= before && due <= 777);
            before = due;
        }
    }

    #[test]
    fn the_steady_producer_wakes_often_enough_but_not_too_often() {
        // 60,000 over 10 s: a record every 167 µs, woken every 10 ms (≈ 60 records a time).
        assert_eq!(pace_tick(Duration::from_secs(10), 60_000), Duration::from_millis(10));
        // 60,000 over 3 minutes: every 3 ms → 10 ms.
        assert_eq!(pace_tick(Duration::from_secs(180), 60_000), Duration::from_millis(10));
        // 500 over 10 s: every 20 ms.
        assert_eq!(pace_tick(Duration::from_secs(10), 500), Duration::from_millis(20));
        // 10 over 10 minutes: capped at 100 ms.
        assert_eq!(pace_tick(Duration::from_secs(600), 10), Duration::from_millis(100));
        assert_eq!(pace_tick(Duration::from_secs(1), 0), Duration::from_millis(100));
    }
}

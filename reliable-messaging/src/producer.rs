//! A producer that reports success only once the broker has the record durably.

use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::message::{Header as KafkaHeader, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;

use crate::delivery::Header;
use crate::settings::KafkaSettings;

/// `PRODUCER_ACKS`: `all` (the default and the only safe value) or `unsafe-1`, which exists so
/// that the replicated-cluster negative control can show what `acks=all` prevents, the way
/// `COMMIT_POLICY=unsafe-auto-commit` does for commits.
fn unsafe_leader_only_acks() -> Result<bool, PublishError> {
    match std::env::var("PRODUCER_ACKS").as_deref() {
        Err(_) | Ok("all") => Ok(false),
        Ok("unsafe-1") => Ok(true),
        Ok(other) => Err(PublishError::Setup(KafkaError::ClientCreation(format!(
            "PRODUCER_ACKS={other:?} is invalid: use `all` (`unsafe-1` only for negative-control tests)"
        )))),
    }
}

/// A record to publish.
#[derive(Debug, Clone)]
pub struct OutboundRecord {
    pub topic: String,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub headers: Vec<Header>,
}

/// Where the broker stored a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    pub partition: i32,
    pub offset: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The broker did not acknowledge within the delivery timeout: the write may or may not
    /// have happened, so callers must treat it as *not* accepted (and may retry: consumers
    /// are idempotent).
    #[error("broker did not acknowledge the write to {topic} within {timeout:?}: {source}")]
    NotAcknowledged { topic: String, timeout: Duration, source: KafkaError },
    #[error("could not create the Kafka producer: {0}")]
    Setup(#[source] KafkaError),
}

/// Publishes with `acks=all` and `enable.idempotence=true`: a success means every in-sync
/// replica has the record, and the producer's own retries cannot duplicate or reorder it.
#[derive(Clone)]
pub struct DurableProducer {
    inner: FutureProducer,
    delivery_timeout: Duration,
}

impl DurableProducer {
    /// `delivery_timeout` bounds how long a send may wait for the acknowledgement, retries
    /// included (librdkafka's `message.timeout.ms`). After it the send fails: callers answer
    /// "not accepted" instead of waiting forever.
    pub fn new(settings: &KafkaSettings, delivery_timeout: Duration) -> Result<Self, PublishError> {
        Self::with_overrides(settings, delivery_timeout, &[])
    }

    /// Like [`DurableProducer::new`], with extra librdkafka properties (e.g. `linger.ms`).
    /// The durability settings cannot be overridden.
    pub fn with_overrides(
        settings: &KafkaSettings,
        delivery_timeout: Duration,
        overrides: &[(&str, &str)],
    ) -> Result<Self, PublishError> {
        let mut config = settings.client_config();
        // Small linger: under load several requests share one produce request (and one
        // replication round-trip); idle, a request waits at most this long.
        config.set("linger.ms", "2").set("compression.type", "lz4");
        // The operator's KAFKA_* properties win over these defaults (e.g. zstd compression).
        settings.apply_properties(&mut config);
        for (k, v) in overrides {
            config.set(*k, *v);
        }
        config
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("message.timeout.ms", delivery_timeout.as_millis().max(1).to_string());
        if unsafe_leader_only_acks()? {
            // Negative-control tests only: the leader acknowledges alone, so a leader that dies
            // before its followers copied a record takes an acknowledged record with it.
            // (librdkafka refuses idempotence without acks=all.)
            tracing::warn!("PRODUCER_ACKS=unsafe-1: acknowledged records can be lost when a leader fails; never use this outside a negative-control test");
            config.set("acks", "1").set("enable.idempotence", "false");
        }
        let inner: FutureProducer = config.create().map_err(PublishError::Setup)?;
        Ok(Self { inner, delivery_timeout })
    }

    pub fn delivery_timeout(&self) -> Duration {
        self.delivery_timeout
    }

    /// Publishes `record` and waits for the broker's acknowledgement.
    pub async fn send(&self, record: &OutboundRecord) -> Result<Stored, PublishError> {
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
        for h in &record.headers {
            headers = headers.insert(KafkaHeader { key: &h.key, value: h.value.as_deref() });
        }
        let mut future_record = FutureRecord::<[u8], [u8]>::to(&record.topic).headers(headers);
        if let Some(key) = &record.key {
            future_record = future_record.key(key.as_slice());
        }
        if let Some(payload) = &record.payload {
            future_record = future_record.payload(payload.as_slice());
        }
        // The queue timeout only covers a full local queue; the acknowledgement itself is
        // bounded by message.timeout.ms, which librdkafka enforces.
        match self.inner.send(future_record, Timeout::After(self.delivery_timeout)).await {
            Ok(delivery) => Ok(Stored { partition: delivery.partition, offset: delivery.offset }),
            Err((source, _message)) => Err(PublishError::NotAcknowledged {
                topic: record.topic.clone(),
                timeout: self.delivery_timeout,
                source,
            }),
        }
    }

    /// Waits for outstanding sends; called on shutdown.
    pub fn flush(&self, timeout: Duration) {
        let _ = self.inner.flush(Timeout::After(timeout));
    }

    /// Whether the broker answers a metadata request within `timeout` (readiness probes).
    pub fn broker_reachable(&self, timeout: Duration) -> bool {
        self.inner.client().fetch_metadata(None, Timeout::After(timeout)).is_ok()
    }
}

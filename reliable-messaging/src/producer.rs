//! A producer that reports success only once the broker has the record durably.

use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::message::{Header as KafkaHeader, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::Timeout;

use tracing::Instrument;

use crate::kafka::trace_context;
use crate::kafka::{KafkaSettings, ProducerAcks};
use crate::message::Header;

/// How long librdkafka keeps a record it could not deliver yet (`message.timeout.ms`), however
/// short the caller's wait: longer than any leader failover (a dead leader is fenced after
/// `broker.session.timeout.ms`, 9 s; requests to a cut-off one time out after
/// `request.timeout.ms`, 30 s). The idempotent producer deduplicates its retries only while no
/// record times out: a record that expires in flight makes librdkafka bump the producer epoch
/// and renumber the records behind it, and those it had already stored are written a second
/// time (librdkafka #4953). With the wait equal to this timeout, the replicated chaos suite saw
/// records written twice for one request after a leader kill.
const IN_FLIGHT_PATIENCE: Duration = Duration::from_secs(120);

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
    /// included. After it the send fails: callers answer "not accepted" instead of waiting
    /// forever; the record may still be stored later (librdkafka keeps it in flight for at
    /// least two minutes, longer than any leader failover).
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
        // No linger: a lone record is sent at once, so a sign-up's 202 does not wait 2 ms for
        // company (the gateway's publish stage was 3.3 ms, 2 of them lingering). Under load,
        // records that queue while a produce request is in flight still share the next one.
        // `KAFKA_LINGER_MS` sets it for a service that prefers bigger batches.
        config.set("linger.ms", "0").set("compression.type", "lz4");
        // The operator's KAFKA_* properties win over these defaults (e.g. zstd compression).
        settings.apply_properties(&mut config);
        for (k, v) in overrides {
            config.set(*k, *v);
        }
        config
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("message.timeout.ms", delivery_timeout.max(IN_FLIGHT_PATIENCE).as_millis().to_string())
            // A leader cut off by a network partition never answers: a produce request to it
            // times out after the lesser of this and the remaining message.timeout.ms, then the
            // connection is dropped (socket.max.fails = 1) and the record retried at the new
            // leader (same sequence: deduplicated). librdkafka's 60 s default, now that
            // message.timeout.ms is long, kept 1/3 of sign-ups refused 55 s after a partition.
            .set(
                "socket.timeout.ms",
                delivery_timeout.clamp(Duration::from_secs(1), Duration::from_secs(60)).as_millis().to_string(),
            );
        if settings.producer_acks == ProducerAcks::UnsafeLeaderOnly {
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
    ///
    /// With tracing on, the send is a `producer` span of the current trace, and the record
    /// carries that span's `traceparent`/`tracestate` (replacing those it had); with tracing
    /// off the record's headers are sent as they are.
    pub async fn send(&self, record: &OutboundRecord) -> Result<Stored, PublishError> {
        if !trace_context::enabled() {
            return self.send_with_headers(record, &record.headers).await;
        }
        let span = tracing::info_span!(
            "publish",
            otel.name = %format!("{} publish", record.topic),
            otel.kind = "producer",
            messaging.system = "kafka",
            messaging.operation.type = "publish",
            messaging.destination.name = %record.topic,
            messaging.destination.partition.id = tracing::field::Empty,
            messaging.kafka.offset = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        let mut headers = record.headers.clone();
        trace_context::inject(&span, &mut headers);
        let result = self.send_with_headers(record, &headers).instrument(span.clone()).await;
        match &result {
            Ok(stored) => {
                span.record("messaging.destination.partition.id", stored.partition);
                span.record("messaging.kafka.offset", stored.offset);
            }
            Err(_) => {
                span.record("otel.status_code", "ERROR");
            }
        }
        result
    }

    async fn send_with_headers(
        &self,
        record: &OutboundRecord,
        record_headers: &[Header],
    ) -> Result<Stored, PublishError> {
        let mut headers = OwnedHeaders::new_with_capacity(record_headers.len());
        for h in record_headers {
            headers = headers.insert(KafkaHeader { key: &h.key, value: h.value.as_deref() });
        }
        let mut future_record = FutureRecord::<[u8], [u8]>::to(&record.topic).headers(headers);
        if let Some(key) = &record.key {
            future_record = future_record.key(key.as_slice());
        }
        if let Some(payload) = &record.payload {
            future_record = future_record.payload(payload.as_slice());
        }
        // The queue timeout only covers a full local queue; the caller's wait for the
        // acknowledgement is bounded here, while librdkafka keeps retrying the record for
        // IN_FLIGHT_PATIENCE (it may still land: callers treat "not acknowledged" as such).
        let sent = self.inner.send(future_record, Timeout::After(self.delivery_timeout));
        match tokio::time::timeout(self.delivery_timeout, sent).await {
            Ok(Ok(delivery)) => Ok(Stored { partition: delivery.partition, offset: delivery.offset }),
            Ok(Err((source, _message))) => Err(PublishError::NotAcknowledged {
                topic: record.topic.clone(),
                timeout: self.delivery_timeout,
                source,
            }),
            Err(_elapsed) => Err(PublishError::NotAcknowledged {
                topic: record.topic.clone(),
                timeout: self.delivery_timeout,
                source: KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut),
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

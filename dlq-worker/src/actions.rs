//! The two things that can happen to a dead-lettered message: it is re-sent to its original
//! topic, or it is parked. Each runs as its own task and reports whether its offset may now be
//! committed.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use chrono::Utc;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use reliable_messaging::dead_letter::Backoff;
use reliable_messaging::kafka::trace_context;
use reliable_messaging::message::retry_metadata::{self, MetadataFormat};
use reliable_messaging::message::REQUEST_ID_HEADER;
use reliable_messaging::parking::{NewParkedMessage, ParkReason, ParkingError, ParkingLot};
use reliable_messaging::producer::DurableProducer;
use reliable_messaging::producer::{OutboundRecord, PublishError};
use reliable_messaging::request_status::{self, Status, Transition};
use reliable_messaging::Delivery;
use sqlx::MySqlPool;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::dead_letter_log;
use crate::metrics::Metrics;
use crate::topics::TopicCatalog;

/// A message waiting to be re-sent.
#[derive(Debug, Clone)]
pub struct Scheduled {
    pub delivery: Delivery,
    pub target_topic: String,
    /// Failed re-send attempts so far (broker unreachable), for the retry delay.
    pub failed_sends: u32,
}

/// How a task ended.
#[derive(Debug)]
pub enum Finished {
    /// Durably re-sent or parked: the offset may be committed.
    Settled,
    /// The re-send failed (broker unreachable, topic lookup failed); try again after the delay.
    RetryLater(Box<Scheduled>, Duration),
    /// Shutdown interrupted it before anything durable happened; the record will be redelivered.
    Abandoned,
}

/// Everything a re-send or a parking needs.
#[derive(Clone)]
pub struct Actions {
    pub producer: DurableProducer,
    pub format: MetadataFormat,
    pub topics: TopicCatalog,
    pub parking: ParkingLot,
    pub pool: MySqlPool,
    pub metrics: Arc<Metrics>,
}

/// Delays between attempts of an action that failed for infrastructure reasons.
fn infrastructure_backoff() -> Backoff {
    Backoff::exponential(Duration::from_millis(250), 2.0, Duration::from_secs(10)).with_jitter(0.2)
}

impl Actions {
    /// Re-sends `entry` to its original topic with the retry count incremented, or parks it if
    /// that topic does not exist.
    pub async fn resend(&self, entry: Scheduled, shutdown: CancellationToken) -> Finished {
        // The trace of the message shows how long it waited in the DLQ (from the dead letter's
        // write until now) and then this re-send, whose span the re-sent record carries.
        if let (0, Some(written_ms)) = (entry.failed_sends, entry.delivery.timestamp_ms) {
            let written = UNIX_EPOCH + Duration::from_millis(u64::try_from(written_ms).unwrap_or(0));
            let retry_count = i64::from(entry.delivery.retry_count());
            trace_context::record_elapsed(&entry.delivery, "dlq wait", written, &[("retry_count", retry_count)]);
        }
        let span = trace_context::continue_span(&entry.delivery, || {
            tracing::info_span!(
                "re-send",
                otel.name = %format!("{} re-send", entry.target_topic),
                from = %entry.delivery.position(),
                retry_count = entry.delivery.retry_count() + 1,
            )
        });
        self.resend_traced(entry, shutdown).instrument(span).await
    }

    async fn resend_traced(&self, entry: Scheduled, shutdown: CancellationToken) -> Finished {
        // Logged before the send, so a failure here re-sends nothing twice; re-sends wait while
        // the database is down anyway (see `worker::probe_database`).
        if let Err(e) = dead_letter_log::record(&self.pool, &entry.delivery).await {
            tracing::warn!(error = %e, position = %entry.delivery.position(), "could not log the dead letter; will retry");
            return self.retry_later(entry);
        }
        match self.topics.exists(&entry.target_topic).await {
            Ok(true) => {}
            Ok(false) => return self.park_missing_topic(&entry, shutdown).await,
            Err(e) => {
                tracing::warn!(error = %e, position = %entry.delivery.position(), "topic lookup failed; will retry");
                return self.retry_later(entry);
            }
        }
        let current = entry.delivery.retry.clone().unwrap_or_else(|| first_hop_metadata(&entry));
        let mut next = current.next_attempt();
        next.original_topic.get_or_insert_with(|| entry.target_topic.clone());
        let (payload, headers) =
            retry_metadata::encode(&entry.delivery.headers, entry.delivery.payload.as_deref(), &next, self.format);
        let record =
            OutboundRecord { topic: entry.target_topic.clone(), key: entry.delivery.key.clone(), payload, headers };
        match self.producer.send(&record).await {
            Ok(stored) => {
                self.metrics.redriven.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    from = %entry.delivery.position(),
                    to_topic = %record.topic,
                    to_partition = stored.partition,
                    to_offset = stored.offset,
                    retry_count = next.retry_count,
                    "re-sent to the original topic"
                );
                self.record_retrying(&entry.delivery, next.retry_count, next.error_message.clone());
                Finished::Settled
            }
            Err(PublishError::NotAcknowledged { source, .. }) if is_unknown_topic(&source) => {
                self.park_missing_topic(&entry, shutdown).await
            }
            Err(e) => {
                tracing::warn!(error = %e, position = %entry.delivery.position(), "re-send failed; will retry");
                self.retry_later(entry)
            }
        }
    }

    fn retry_later(&self, mut entry: Scheduled) -> Finished {
        self.metrics.resend_failures.fetch_add(1, Ordering::Relaxed);
        let delay = infrastructure_backoff().delay(entry.failed_sends);
        entry.failed_sends = entry.failed_sends.saturating_add(1);
        Finished::RetryLater(Box::new(entry), delay)
    }

    async fn park_missing_topic(&self, entry: &Scheduled, shutdown: CancellationToken) -> Finished {
        let explanation = format!("target topic {} does not exist", entry.target_topic);
        self.park(&entry.delivery, &entry.target_topic, ParkReason::MissingTopic, &explanation, shutdown).await
    }

    /// Parks `delivery`. A database outage is retried until it ends (or shutdown): the offset
    /// is not committed before the message is in the parking lot.
    pub async fn park(
        &self,
        delivery: &Delivery,
        source_topic: &str,
        reason: ParkReason,
        explanation: &str,
        shutdown: CancellationToken,
    ) -> Finished {
        // The end of the message's trace when it is not retried any more.
        let span = trace_context::continue_span(
            delivery,
            || tracing::info_span!("park", otel.name = "parking lot park", park.reason = %reason, from = %delivery.position()),
        );
        self.park_traced(delivery, source_topic, reason, explanation, shutdown).instrument(span).await
    }

    async fn park_traced(
        &self,
        delivery: &Delivery,
        source_topic: &str,
        reason: ParkReason,
        explanation: &str,
        shutdown: CancellationToken,
    ) -> Finished {
        let message = NewParkedMessage::from_dead_letter(delivery, source_topic, reason, explanation);
        let mut attempt = 0;
        loop {
            let parked = match dead_letter_log::record(&self.pool, delivery).await {
                Ok(()) => self.parking.park(&message).await,
                Err(e) => Err(ParkingError::from(e)),
            };
            match parked {
                Ok(parked) => {
                    if parked.newly_parked {
                        self.metrics.record_parked(reason);
                    }
                    return Finished::Settled;
                }
                Err(e) => {
                    self.metrics.parking_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, position = %delivery.position(), attempt, "parking failed; will retry");
                }
            }
            let delay = infrastructure_backoff().delay(attempt);
            attempt = attempt.saturating_add(1);
            tokio::select! {
                _ = shutdown.cancelled() => return Finished::Abandoned,
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }

    /// Best effort: the caller's status page shows `retrying`. A database outage must not hold
    /// up re-sends, so this runs detached and only logs a failure.
    fn record_retrying(&self, delivery: &Delivery, retry_count: u32, reason: Option<String>) {
        let Some(request_id) = delivery.header_str(REQUEST_ID_HEADER).and_then(|s| Uuid::parse_str(s.trim()).ok())
        else {
            return;
        };
        let pool = self.pool.clone();
        let transition = Transition { request_id, status: Status::Retrying, retry_count, reason, at: Utc::now() };
        tokio::spawn(async move {
            if let Err(e) = request_status::record(&pool, &[transition]).await {
                tracing::warn!(error = %e, %request_id, "could not record the retrying status");
            }
        });
    }
}

/// Metadata for a record that reached the DLQ without any (a foreign producer wrote it): this
/// is its first re-send, from the DLQ topic's origin.
///
/// The record's timestamp is only an estimate of when the message first failed (Kafka Connect
/// copies the original record's timestamp), so it is kept for operators as the first failure
/// and never used as the last one, nor for scheduling (see `triage::due_ms`).
fn first_hop_metadata(entry: &Scheduled) -> retry_metadata::RetryMetadata {
    let first_seen = entry.delivery.timestamp_ms.and_then(chrono::DateTime::from_timestamp_millis);
    retry_metadata::RetryMetadata {
        retry_count: 0,
        original_topic: Some(entry.target_topic.clone()),
        original_partition: None,
        original_offset: None,
        first_failure_at: first_seen,
        last_failure_at: None,
        error_kind: None,
        error_message: None,
        not_before_ms: None,
        source: retry_metadata::MetadataSource::Headers,
    }
}

fn is_unknown_topic(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic)
    )
}

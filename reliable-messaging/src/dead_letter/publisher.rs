//! Hands failed messages to their dead-letter topic, `<topic>-dlq`, with retry metadata.

use chrono::Utc;
use tracing::Instrument;

use crate::dead_letter::Backoff;
use crate::kafka::trace_context;
use crate::message::retry_metadata::{self, MetadataFormat, RetryMetadata};
use crate::message::Delivery;
use crate::message::Failure;
use crate::producer::{DurableProducer, OutboundRecord, PublishError, Stored};

/// Suffix that turns a topic into its dead-letter topic; the DLQ worker strips it again.
pub const DEAD_LETTER_SUFFIX: &str = "-dlq";

/// The header naming the build that dead-lettered the record (`<service>/<version>`), so an
/// operator grouping parked messages sees which deploy failed them. Replaced at every hop.
pub const FAILED_BY_HEADER: &str = "x-failed-by";

/// The dead-letter topic of `topic`.
pub fn dead_letter_topic(topic: &str) -> String {
    format!("{topic}{DEAD_LETTER_SUFFIX}")
}

/// Publishes failed deliveries to the dead-letter topic of the topic they came from.
///
/// The record keeps its key (so per-key ordering in the DLQ matches the source), payload and
/// foreign headers, and gets fresh retry metadata whose `x-not-before` follows `schedule`.
#[derive(Clone)]
pub struct DeadLetterPublisher {
    producer: DurableProducer,
    format: MetadataFormat,
    schedule: Backoff,
    /// `<service>/<version>` for [`FAILED_BY_HEADER`]; none: the header is left out.
    writer: Option<String>,
}

impl DeadLetterPublisher {
    pub fn new(producer: DurableProducer, format: MetadataFormat, schedule: Backoff) -> Self {
        Self { producer, format, schedule, writer: None }
    }

    /// Stamps every dead letter with `writer` (`<service>/<version>`) in [`FAILED_BY_HEADER`].
    pub fn with_writer(mut self, writer: impl Into<String>) -> Self {
        self.writer = Some(writer.into());
        self
    }

    /// Publishes and waits for `acks=all`. Only after this returns `Ok` may the source offset
    /// be committed.
    pub async fn publish(&self, delivery: &Delivery, failure: &Failure) -> Result<Stored, PublishError> {
        let now = Utc::now();
        let delay = self.schedule.delay(delivery.retry_count());
        let not_before = now + chrono::Duration::from_std(delay).unwrap_or_else(|_| chrono::Duration::zero());
        let origin = (delivery.topic.as_str(), delivery.partition, delivery.offset);
        let metadata = RetryMetadata::after_failure(delivery.retry.as_ref(), origin, failure, now, not_before);
        let source_topic = metadata.original_topic.clone().unwrap_or_else(|| delivery.topic.clone());
        let (payload, mut headers) =
            retry_metadata::encode(&delivery.headers, delivery.payload.as_deref(), &metadata, self.format);
        if let Some(writer) = &self.writer {
            // The last writer counts: an earlier hop's header would name a build that no
            // longer ran this message.
            headers.retain(|h| h.key != FAILED_BY_HEADER);
            headers.push(crate::message::Header {
                key: FAILED_BY_HEADER.to_owned(),
                value: Some(writer.clone().into_bytes()),
            });
        }
        let record =
            OutboundRecord { topic: dead_letter_topic(&source_topic), key: delivery.key.clone(), payload, headers };
        // The DLQ hop continues the message's own trace (not the batch's): the producer then
        // writes this span as the dead letter's `traceparent`.
        let span = trace_context::continue_span(delivery, || {
            tracing::info_span!(
                "dead-letter",
                otel.name = %format!("{} dead-letter", record.topic),
                error.type = %failure.kind,
                error.message = %failure.message,
                retry_count = delivery.retry_count(),
            )
        });
        self.producer.send(&record).instrument(span).await
    }
}

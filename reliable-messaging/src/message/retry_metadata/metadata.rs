//! What the retry metadata says, independent of how it travels: [`RetryMetadata`], where it
//! was found ([`MetadataSource`]), how it is written ([`MetadataFormat`]), and why it could not
//! be read ([`MetadataError`]).

use chrono::{DateTime, Utc};

use super::text::{truncate, MAX_ERROR_MESSAGE_BYTES};
use crate::message::{Failure, FailureKind};

/// Which format a writer uses. Readers always understand both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MetadataFormat {
    #[default]
    Headers,
    Wrapper,
}

/// Where the metadata of a record was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataSource {
    Headers,
    Wrapper,
    ArticleHeaders,
    SpringDeadLetter,
    KafkaConnect,
}

/// How a message failed so far.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryMetadata {
    /// How many times the message has been re-sent to its original topic.
    pub retry_count: u32,
    pub original_topic: Option<String>,
    pub original_partition: Option<i32>,
    pub original_offset: Option<i64>,
    pub first_failure_at: Option<DateTime<Utc>>,
    pub last_failure_at: Option<DateTime<Utc>>,
    pub error_kind: Option<FailureKind>,
    pub error_message: Option<String>,
    /// Epoch milliseconds before which the message must not be re-sent.
    pub not_before_ms: Option<i64>,
    pub source: MetadataSource,
}

/// Metadata that is present but unreadable: the record is poison and must be parked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unreadable retry metadata: {0}")]
pub struct MetadataError(pub String);

/// Decoded metadata, and the payload to hand the handler instead of the record's when the
/// metadata came in a wrapper (`Some(payload)`, itself `None` for a null message).
pub(crate) type Decoded = (RetryMetadata, Option<Option<Vec<u8>>>);

impl RetryMetadata {
    /// The metadata to write when the record consumed at `topic`/`partition`/`offset`, which
    /// carried `previous` (none on its first failure), has just failed with `failure`: the retry
    /// count and origin carry over from earlier hops, the failure fields describe this one.
    pub fn after_failure(
        previous: Option<&RetryMetadata>,
        (topic, partition, offset): (&str, i32, i64),
        failure: &Failure,
        now: DateTime<Utc>,
        not_before: DateTime<Utc>,
    ) -> Self {
        RetryMetadata {
            retry_count: previous.map_or(0, |p| p.retry_count),
            original_topic: Some(previous.and_then(|p| p.original_topic.clone()).unwrap_or_else(|| topic.to_owned())),
            original_partition: Some(previous.and_then(|p| p.original_partition).unwrap_or(partition)),
            original_offset: Some(previous.and_then(|p| p.original_offset).unwrap_or(offset)),
            first_failure_at: Some(previous.and_then(|p| p.first_failure_at).unwrap_or(now)),
            last_failure_at: Some(now),
            error_kind: Some(failure.kind),
            error_message: Some(truncate(&failure.message, MAX_ERROR_MESSAGE_BYTES)),
            not_before_ms: Some(not_before.timestamp_millis()),
            source: MetadataSource::Headers,
        }
    }

    /// The metadata of the next attempt, as the DLQ worker sends it back to the original topic.
    pub fn next_attempt(&self) -> Self {
        RetryMetadata { retry_count: self.retry_count.saturating_add(1), not_before_ms: None, ..self.clone() }
    }
}

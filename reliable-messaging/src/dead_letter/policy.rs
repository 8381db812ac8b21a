//! The dead-letter policy: everything about what happens to a message the handler could not
//! finish, as one value a consumer is built with.
//!
//! Kept together because the parts only make sense together: the format the dlq-worker reads,
//! the schedule it re-sends by, the limit past which dead-lettering stops (a bad deploy must
//! not park a whole topic), and how long one DLQ write may wait for the broker.

use std::time::Duration;

use crate::dead_letter::{Backoff, DeadLetterLimit};
use crate::message::retry_metadata::MetadataFormat;

/// How failed messages are dead-lettered; see the module docs.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetterPolicy {
    /// How the retry metadata is written (headers, or the JSON wrapper).
    pub format: MetadataFormat,
    /// The delayed-retry schedule: sets `x-not-before` of each dead-lettered message.
    pub schedule: Backoff,
    /// The thresholds (permanent failures in a row, share of a window) at which the consumer
    /// halts instead of dead-lettering more. Replaces `ConsumerSettings::dead_letter_limit`.
    pub limit: DeadLetterLimit,
    /// How long a DLQ write may wait for `acks=all`.
    pub publish_timeout: Duration,
}

impl Default for DeadLetterPolicy {
    /// Headers, exponential 1 s ×2 capped at 60 s, 100 in a row or half of 1,000, 10 s.
    fn default() -> Self {
        Self {
            format: MetadataFormat::Headers,
            schedule: Backoff::default(),
            limit: DeadLetterLimit::default(),
            publish_timeout: Duration::from_secs(10),
        }
    }
}

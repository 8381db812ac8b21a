//! Where a failed message goes: its dead-letter topic, `<topic>-dlq`, carrying the retry metadata
//! ([`crate::message::retry_metadata`]) that tells the dlq-worker how often and when to try it again.
//!
//! One concept per file:
//!
//! * [`DeadLetterPublisher`] and the topic naming ([`dead_letter_topic`],
//!   [`DEAD_LETTER_SUFFIX`]): `publisher.rs`;
//! * [`Backoff`]: the retry schedule, in place and from the DLQ (`backoff.rs`);
//! * [`DeadLetterLimit`] and [`FloodGuard`]: the flood limit that halts a consumer instead of
//!   dead-lettering a whole topic (`limit.rs`).
//!
//! The service kit bundles format, schedule, threshold and limit as one value,
//! [`DeadLetterPolicy`](crate::service::DeadLetterPolicy).

mod backoff;
mod limit;
mod publisher;

pub use backoff::{Backoff, BackoffShape};
pub use limit::{DeadLetterLimit, FloodGuard, HaltReason};
pub use publisher::{dead_letter_topic, DeadLetterPublisher, DEAD_LETTER_SUFFIX, FAILED_BY_HEADER};

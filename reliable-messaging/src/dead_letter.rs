//! Where a failed message goes: its dead-letter topic, `<topic>-dlq`, carrying the retry metadata
//! ([`crate::message::retry_metadata`]) that tells the dlq-worker how often and when to try it again.
//!
//! A consumer gets all of it as one [`DeadLetterPolicy`]: the metadata format, the [`Backoff`]
//! schedule, and the [`DeadLetterLimit`] past which it halts instead of dead-lettering a whole
//! topic (a bad deploy must not park everything).

mod backoff;
mod limit;
mod policy;
mod publisher;

pub use backoff::{Backoff, BackoffShape};
pub use limit::{DeadLetterLimit, FloodGuard, HaltReason};
pub use policy::DeadLetterPolicy;
pub use publisher::{dead_letter_topic, DeadLetterPublisher, DEAD_LETTER_SUFFIX, FAILED_BY_HEADER};

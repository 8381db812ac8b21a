//! At-least-once consumption: poll a batch, let the handler decide each message's outcome,
//! make every outcome durable, and only then commit the offsets.
//!
//! ```text
//!   poll batch ──▶ handler ──▶ Done / Rejected ─────────────────────────────┐
//!                     │                                                      ▼
//!                     ├─▶ Transient ─▶ in-place retry ─▶ still failing ─▶ <topic>-dlq ─▶ commit
//!                     └─▶ Permanent ─────────────────────────────────────▶ <topic>-dlq (parked by the DLQ worker)
//! ```
//!
//! A crash anywhere before the commit redelivers the batch; handlers are idempotent, so
//! that duplicates work, never data.
//!
//! Two states stop the flow without losing anything:
//! * **paused** while a dependency is down (`Outcome::DependencyDown`): the partitions are
//!   paused, the group membership kept (the consumer keeps polling), the failed messages are
//!   re-tried with backoff as the probe, and consumption resumes from the uncommitted position
//!   when they go through. Nothing is dead-lettered for an outage, however long.
//! * **halted** when the dead-letter flood limit trips ([`crate::dead_letter::DeadLetterLimit`]): the
//!   messages from the tripping one on stay uncommitted, the consumer stops consuming and
//!   reports why until it is restarted.
//!
//! Where each part lives (one concept per file, so a reader can find and change one without
//! reading the rest):
//!
//! * [`ReliableConsumer`] and its construction: this file; its run loop: `run.rs`;
//! * [`Handler`], the trait a service implements (`handler.rs`);
//! * [`ConsumerSettings`], [`CommitPolicy`], [`OutagePolicy`] and the rdkafka configuration
//!   they imply (`settings.rs`);
//! * [`ConsumerStats`] and [`Outage`], rendered for `/metrics` (`stats.rs`), and the consumer
//!   lag refreshed in the background (`lag.rs`);
//! * polling a batch while the previous one is handled, and letting the handler prepare it
//!   then (`poll.rs`), the batch and what it may commit (`batch.rs`);
//! * handling with in-place retries of transient failures (`in_place_retry.rs`);
//! * settling: counting, dead-lettering, the flood guard (`dead_letter_routing.rs`);
//! * riding out an outage and halting, both without leaving the group (`outage.rs`);
//! * who owns which partition across rebalances (`AssignmentTracker`, `assignment.rs`) and
//!   committing only what this member owns (`commit.rs`).
//!
//! And the types a handler meets, each in its own file: [`Delivery`], the record it is handed
//! (`delivery.rs`); [`Outcome`] and [`FailureKind`], what it answers (`outcome.rs`);
//! [`sql_failures`], which database errors are worth retrying (`sql_failures.rs`, `mysql`
//! feature); [`StageTimings`], where its time goes (`stage_timings.rs`). A consumer that
//! finishes messages out of order (the dlq-worker) tracks what it may commit with
//! [`OffsetTracker`] (`offset_tracker.rs`); splitting a batch by partition is
//! `partition_chunks.rs`.
//!
//! Dependencies point one way: this file uses only the parts the consumer is built from
//! (settings, stats, assignment, handler); the files that add behaviour to
//! [`ReliableConsumer`] use this file, never the reverse.

mod assignment;
mod batch;
mod commit;
mod dead_letter_routing;
pub(crate) mod delivery;
mod handler;
mod in_place_retry;
mod lag;
pub(crate) mod offset_tracker;
mod outage;
pub(crate) mod outcome;
pub(crate) mod partition_chunks;
mod poll;
mod run;
mod settings;
#[cfg(feature = "mysql")]
pub mod sql_failures;
pub(crate) mod stage_timings;
mod stats;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use rdkafka::consumer::{Consumer as _, StreamConsumer};

use assignment::AssignmentTracker;
pub use delivery::Delivery;
pub use handler::{Handler, Prepared};
pub use offset_tracker::{CommitPosition, OffsetTracker, TopicPartition};
pub use outcome::{Failure, FailureKind, Outcome};
pub use settings::{group_member_config, CommitPolicy, ConsumerSettings, OutagePolicy};
pub use stage_timings::{Stage, StageTimings};
pub use stats::{ConsumerStats, Outage, LAG_REFRESH};

use assignment::Ownership;

use crate::dead_letter::DeadLetterPublisher;
use crate::dead_letter::FloodGuard;
use crate::kafka::KafkaSettings;

/// Why a consumer could not start, or stopped with an error rather than a shutdown.
#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    #[error("could not set up the Kafka consumer: {0}")]
    Setup(#[source] rdkafka::error::KafkaError),
    #[error("handler returned {got} outcomes for a batch of {expected}")]
    HandlerContract { expected: usize, got: usize },
}

/// Runs a [`Handler`] over a topic with at-least-once delivery; see the module docs.
pub struct ReliableConsumer<H: Handler> {
    consumer: Arc<StreamConsumer<AssignmentTracker>>,
    ownership: Arc<Mutex<Ownership>>,
    /// Shared with the blocking thread that prepares the next batch (see `poll.rs`).
    handler: Arc<H>,
    dead_letters: DeadLetterPublisher,
    settings: ConsumerSettings,
    stats: Arc<ConsumerStats>,
    /// Shared with the rebalance callbacks: keep new partitions paused.
    hold: Arc<AtomicBool>,
    flood_guard: Mutex<FloodGuard>,
}

impl<H: Handler> ReliableConsumer<H> {
    pub fn new(
        kafka: &KafkaSettings,
        settings: ConsumerSettings,
        handler: H,
        dead_letters: DeadLetterPublisher,
    ) -> Result<Self, ConsumerError> {
        Self::with_stats(kafka, settings, handler, dead_letters, Arc::default())
    }

    /// Like [`ReliableConsumer::new`], counting into `stats`, which the caller may already
    /// serve on `/metrics` and `/readyz` before the consumer exists.
    pub fn with_stats(
        kafka: &KafkaSettings,
        settings: ConsumerSettings,
        handler: H,
        dead_letters: DeadLetterPublisher,
        stats: Arc<ConsumerStats>,
    ) -> Result<Self, ConsumerError> {
        let config = settings.client_config(kafka);
        let ownership = Arc::new(Mutex::new(Ownership::default()));
        let hold = Arc::new(AtomicBool::new(false));
        let context = AssignmentTracker {
            stats: stats.clone(),
            ownership: ownership.clone(),
            manual_commits: settings.commit_policy == CommitPolicy::AfterDurableOutcome,
            hold: hold.clone(),
        };
        let consumer: StreamConsumer<AssignmentTracker> =
            config.create_with_context(context).map_err(ConsumerError::Setup)?;
        let topics: Vec<&str> = settings.topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics).map_err(ConsumerError::Setup)?;
        let flood_guard = Mutex::new(FloodGuard::new(settings.dead_letter_limit));
        Ok(Self {
            consumer: Arc::new(consumer),
            ownership,
            handler: Arc::new(handler),
            dead_letters,
            settings,
            stats,
            hold,
            flood_guard,
        })
    }

    /// Counters shared with the running consumer.
    pub fn stats(&self) -> Arc<ConsumerStats> {
        self.stats.clone()
    }
}

//! At-least-once consumption: poll a batch, let the handler decide each message's outcome,
//! make every outcome durable, and only then commit the offsets.
//!
//! ```text
//!   poll ──▶ handle ──▶ Done / Rejected ───────────────────────────────────┐
//!              │                                                          ▼
//!              ├─▶ Transient ─▶ in-place retry ─▶ still failing ─▶ settle: <topic>-dlq ─▶ commit
//!              ├─▶ Permanent ───────────────────────────────────▶ settle: <topic>-dlq (parked by the DLQ worker)
//!              ├─▶ DependencyDown ─▶ ride out: pause, probe, resume ─▶ handled again
//!              └─▶ NewerThanConsumer ─▶ its partition waits there (paused, uncommitted) for a newer consumer
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
//! [`ReliableConsumer::run`] below is the whole loop; each step is a stage of its own in
//! `stages/`, named after it. Around them: the [`Handler`] a service implements, the
//! [`ConsumerSettings`] it is run with, the [`ConsumerStats`] it counts into, the batch
//! (`batch.rs`), the consumer as a group member (`member.rs`, with the shared plumbing in
//! [`crate::kafka::group`]) and the pause both an outage and a halt use (`standstill.rs`).
//! Helpers for handlers: [`sql_failures`] (which database errors are worth retrying, `mysql`
//! feature) and [`StageTimings`] (where a handler's time goes).

mod batch;
mod handler;
mod lag;
mod member;
pub(crate) mod partition_chunks;
mod settings;
#[cfg(feature = "mysql")]
pub mod sql_failures;
pub(crate) mod stage_timings;
mod stages;
mod standstill;
mod stats;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rdkafka::consumer::Consumer as _;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use crate::kafka::group::PartitionLag;
pub use handler::{Handler, Prepared};
pub use settings::{CommitPolicy, ConsumerSettings, OutagePolicy};
pub use stage_timings::{Stage, StageTimings};
pub use stats::{ConsumerStats, Outage, WaitingForNewer, LAG_REFRESH};

use batch::Batch;
use lag::monitor_lag;
use member::{Member, OwnedPartitions};
use stages::{Commit, Halt, Handle, HandlerState, Poll, RideOut, Settle, Settled, WaitForNewer};
use standstill::Standstill;

use crate::dead_letter::{DeadLetterPublisher, FloodGuard};
use crate::kafka::group::{GroupContext, Ownership};
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
    member: Arc<Member>,
    topics: Vec<String>,
    group_id: String,
    stats: Arc<ConsumerStats>,
    poll: Poll<H>,
    handle: Handle<H>,
    settle: Settle,
    commit: Commit,
    halt: Halt,
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
        let manual_commits = settings.commit_policy == CommitPolicy::AfterDurableOutcome;
        let book =
            OwnedPartitions { ownership: ownership.clone(), manual_commits, hold: hold.clone(), stats: stats.clone() };
        let context = GroupContext { book, gauges: stats.group.clone() };
        let member: Member = config.create_with_context(context).map_err(ConsumerError::Setup)?;
        let topics: Vec<&str> = settings.topics.iter().map(String::as_str).collect();
        member.subscribe(&topics).map_err(ConsumerError::Setup)?;
        let member = Arc::new(member);
        let handler = Arc::new(handler);
        let standstill = Arc::new(Standstill { member: member.clone(), hold });
        Ok(Self {
            poll: Poll {
                member: member.clone(),
                ownership: ownership.clone(),
                handler: handler.clone(),
                max_batch_size: settings.max_batch_size,
                max_batch_wait: settings.max_batch_wait,
                partition_concurrency: settings.partition_concurrency,
                stats: stats.clone(),
            },
            handle: Handle {
                handler,
                in_place_retries: settings.in_place_retries,
                in_place_backoff: settings.in_place_backoff,
                outage_policy: settings.outage_policy,
                partition_concurrency: settings.partition_concurrency,
                ride_out: RideOut {
                    standstill: standstill.clone(),
                    probe_backoff: settings.outage_probe_backoff,
                    stats: stats.clone(),
                },
                wait_for_newer: WaitForNewer { member: member.clone(), stats: stats.clone() },
                stats: stats.clone(),
            },
            settle: Settle {
                dead_letters,
                flood_guard: Mutex::new(FloodGuard::new(settings.dead_letter_limit)),
                stats: stats.clone(),
            },
            commit: Commit { member: member.clone(), ownership, manual: manual_commits, stats: stats.clone() },
            halt: Halt { standstill, stats: stats.clone() },
            member,
            topics: settings.topics,
            group_id: settings.group_id,
            stats,
        })
    }

    /// Counters shared with the running consumer.
    pub fn stats(&self) -> Arc<ConsumerStats> {
        self.stats.clone()
    }

    /// Consumes until `shutdown` is cancelled. The batch in progress is finished, made durable
    /// and committed before this returns; nothing is left uncommitted-but-stored.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), ConsumerError> {
        tracing::info!(topics = ?self.topics, group = %self.group_id, "consumer started");
        let lag_monitor = tokio::spawn(monitor_lag(self.member.clone(), self.stats.clone(), shutdown.clone()));
        let mut prefetched: Option<Batch> = None;
        // When the handler last finished a batch: the time until it starts the next is the
        // `idle` stage, the serial gap a drain wants near zero.
        let mut handler_free_since: Option<std::time::Instant> = None;
        loop {
            let mut batch = match prefetched.take() {
                Some(batch) => batch,
                None => match self.poll.next_batch(&shutdown, None).await {
                    Some(batch) => batch,
                    None => break,
                },
            };
            if batch.deliveries.is_empty() {
                continue;
            }
            self.stats.consumed.fetch_add(batch.deliveries.len() as u64, Ordering::Relaxed);
            // The next batch is polled while this one is handled, so the poll's round trips
            // and copying overlap the handler's database work. This batch's offsets are
            // committed as soon as its outcomes are durable, whatever the poll is doing. The
            // next batch keeps filling while this one is handled (`busy`), and closes when the
            // handler is free and librdkafka has nothing more ready.
            let prepared = std::mem::take(&mut batch.prepared);
            let busy = AtomicBool::new(true);
            let idle = Notify::new();
            if let Some(free_since) = handler_free_since.take() {
                self.stats.stages.record("idle", free_since.elapsed());
            }
            let handling = std::pin::pin!(async {
                // Handling and dead-lettering continue the messages' trace (a batch
                // mixing traces links to each of them).
                let span = crate::kafka::trace_context::batch_span(&batch.deliveries);
                let settled = tracing::Instrument::instrument(
                    async {
                        Ok::<_, ConsumerError>(
                            match self.handle.outcomes(&batch.deliveries, prepared, &shutdown).await? {
                                Some(mut outcomes) => {
                                    let held = self.handle.hold_for_newer(&batch.deliveries, &mut outcomes);
                                    (self.settle.settle(&batch.deliveries, &outcomes, &shutdown).await, held)
                                }
                                // Shutdown during an outage: nothing of the batch is durable.
                                None => (Settled::Interrupted, Vec::new()),
                            },
                        )
                    },
                    span,
                )
                .await
                .inspect(|(settled, held)| self.commit.settled(&batch, settled, held))
                .map(|(settled, _)| settled);
                // Also on an error: the poll must not wait for a handler that is gone.
                busy.store(false, Ordering::Release);
                idle.notify_one();
                handler_free_since = Some(std::time::Instant::now());
                settled
            });
            let polling =
                std::pin::pin!(self.poll.next_batch(&shutdown, Some(HandlerState { busy: &busy, idle: &idle })));
            // Both run at once. A halted batch must halt now: the next poll returns only when a
            // message arrives, which on a topic gone quiet after the flood may be never.
            let (settled, polled) = match futures::future::select(handling, polling).await {
                futures::future::Either::Left((settled, polling)) => (settled, Err(polling)),
                futures::future::Either::Right((next, handling)) => (handling.await, Ok(next)),
            };
            match settled? {
                Settled::Durable => {}
                // Shutdown arrived while a failed message could not reach the DLQ, or while a
                // dependency was still down: leave the offsets uncommitted so the messages are
                // redelivered, never dropped.
                Settled::Interrupted => break,
                Settled::Halted { reason, .. } => {
                    // The batch polled meanwhile is dropped uncommitted: after a restart it
                    // is consumed again, from the message that tripped the limit.
                    self.halt.until_shutdown(reason, &shutdown).await;
                    break;
                }
            }
            let next = match polled {
                Ok(next) => next,
                Err(polling) => polling.await,
            };
            match next {
                Some(batch) => prefetched = Some(batch),
                None => break,
            }
        }
        lag_monitor.abort();
        // Commits are sent asynchronously; make the last position durable before leaving.
        self.commit.before_exit().await;
        tracing::info!("consumer stopped");
        Ok(())
    }
}

//! What the worker keeps per partition, and what happens to it when partitions move.
//!
//! On revocation the finished prefix of each revoked partition is committed *before* the
//! partitions go (the callback runs before librdkafka gives them up), then its waiting messages
//! are dropped: the new owner reads them again from the committed position. Dropping is safe
//! because nothing past the finished prefix was committed.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaResult;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use reliable_messaging::consumer::{CommitPosition, OffsetTracker, TopicPartition};

use crate::actions::Scheduled;
use crate::metrics::Metrics;
use crate::schedule::Schedule;

/// Received offsets and waiting messages of the assigned partitions.
#[derive(Default)]
pub struct PartitionState {
    pub offsets: OffsetTracker,
    pub waiting: Schedule<Scheduled>,
    /// Whether the partitions are paused because too many messages wait.
    pub paused: bool,
}

/// Shared between the worker loop and the rebalance callbacks. The callbacks run inside the
/// loop's `recv()`, so the lock is never contended for long.
pub type SharedState = Arc<Mutex<PartitionState>>;

pub fn lock(state: &SharedState) -> MutexGuard<'_, PartitionState> {
    // A panic while holding the lock leaves consistent data (every update is a single call).
    state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub struct WorkerContext {
    pub state: SharedState,
    pub metrics: Arc<Metrics>,
}

impl ClientContext for WorkerContext {}

impl ConsumerContext for WorkerContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            self.on_revoke(consumer, tpl);
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let assigned = consumer.assignment().map(|a| a.count()).unwrap_or(0);
        self.metrics.assigned_partitions.store(assigned, Ordering::Relaxed);
        match rebalance {
            Rebalance::Assign(tpl) => {
                tracing::info!(partitions = tpl.count(), assigned, "partitions assigned");
                // Newly assigned partitions start unpaused; keep the back-pressure promise.
                if lock(&self.state).paused {
                    if let Err(e) = consumer.pause(tpl) {
                        tracing::warn!(error = %e, "could not pause newly assigned partitions");
                    }
                }
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
    }
}

impl WorkerContext {
    fn on_revoke(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) {
        let revoked: Vec<TopicPartition> =
            tpl.elements().iter().map(|e| TopicPartition::new(e.topic(), e.partition())).collect();
        let mut state = lock(&self.state);
        let positions = state.offsets.to_commit_for(&revoked);
        if !positions.is_empty() {
            match commit_list(&positions).and_then(|list| consumer.commit(&list, CommitMode::Sync)) {
                Ok(()) => {
                    state.offsets.mark_committed(&positions);
                    self.metrics.commits.fetch_add(1, Ordering::Relaxed);
                }
                // The new owner re-sends what this commit would have covered: duplicates only.
                Err(e) => tracing::warn!(error = %e, "commit before revocation failed"),
            }
        }
        let mut dropped = 0;
        for partition in &revoked {
            state.offsets.forget(partition);
            dropped += state.waiting.drop_partition(partition);
        }
        self.metrics.scheduled.store(state.waiting.len(), Ordering::Relaxed);
        tracing::info!(partitions = revoked.len(), dropped_waiting = dropped, "partitions revoked");
    }
}

/// The commit request for `positions`.
pub fn commit_list(positions: &[CommitPosition]) -> KafkaResult<TopicPartitionList> {
    let mut list = TopicPartitionList::with_capacity(positions.len());
    for p in positions {
        list.add_partition_offset(&p.partition.topic, p.partition.partition, Offset::Offset(p.next_offset))?;
    }
    Ok(list)
}

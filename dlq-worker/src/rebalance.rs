//! What the worker keeps per partition, and what happens to it when partitions move.
//!
//! On revocation the finished prefix of each revoked partition is committed *before* the
//! partitions go (the callback runs before librdkafka gives them up), then its waiting messages
//! are dropped: the new owner reads them again from the committed position. Dropping is safe
//! because nothing past the finished prefix was committed.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

use reliable_messaging::kafka::group::{CommitPosition, GroupContext, OffsetTracker, PartitionBook, TopicPartition};

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

/// The rdkafka context of the worker's consumer: the shared group callbacks over this book.
pub type WorkerContext = GroupContext<WorkerBook>;

/// The worker's [`PartitionBook`]: its offsets and schedule, told about revocations.
pub struct WorkerBook {
    pub state: SharedState,
    pub metrics: Arc<Metrics>,
}

impl PartitionBook for WorkerBook {
    fn revoking(&self, revoked: &[TopicPartition], commit: &mut dyn FnMut(&[CommitPosition]) -> bool) {
        let mut state = lock(&self.state);
        let positions = state.offsets.to_commit_for(revoked);
        if !positions.is_empty() && commit(&positions) {
            state.offsets.mark_committed(&positions);
        }
        let mut dropped = 0;
        for partition in revoked {
            state.offsets.forget(partition);
            dropped += state.waiting.drop_partition(partition);
        }
        self.metrics.scheduled.store(state.waiting.len(), Ordering::Relaxed);
        tracing::info!(
            partitions = revoked.len(),
            dropped_waiting = dropped,
            "waiting re-sends of revoked partitions dropped"
        );
    }

    /// Newly assigned partitions start unpaused; keep the back-pressure promise.
    fn holding(&self) -> bool {
        lock(&self.state).paused
    }
}

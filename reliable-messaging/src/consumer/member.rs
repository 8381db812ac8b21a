//! The consumer as a consumer-group member: the rdkafka client it runs on, and the book its
//! rebalance callbacks keep ([`OwnedPartitions`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rdkafka::consumer::StreamConsumer;

use crate::kafka::group::{lock_ownership, CommitPosition, GroupContext, Ownership, PartitionBook, TopicPartition};

/// The consumer's Kafka client.
pub(crate) type Member = StreamConsumer<GroupContext<OwnedPartitions>>;

/// What the consumer owns, told about rebalances: which partitions (for commits), and whether
/// it is holding (paused for an outage or halted), so that partitions assigned meanwhile start
/// paused too.
pub(crate) struct OwnedPartitions {
    pub(crate) ownership: Arc<Mutex<Ownership>>,
    /// `false` under [`CommitPolicy::UnsafeAutoCommit`](super::CommitPolicy): then librdkafka
    /// commits, not us.
    pub(crate) manual_commits: bool,
    pub(crate) hold: Arc<AtomicBool>,
    /// Its waits for a newer consumer: a revoked partition's wait is over here (its new
    /// owner, perhaps newer, reads it from the committed offset).
    pub(crate) stats: Arc<super::ConsumerStats>,
}

impl PartitionBook for OwnedPartitions {
    fn assigned(&self, partitions: &[TopicPartition]) {
        lock_ownership(&self.ownership).assign(partitions);
    }

    fn revoking(&self, partitions: &[TopicPartition], commit: &mut dyn FnMut(&[CommitPosition]) -> bool) {
        // Held across the synchronous commit so that no batch commit for these partitions can
        // be queued in between (the run loop is parked in this very poll anyway).
        let mut ownership = lock_ownership(&self.ownership);
        let positions = ownership.revoke(partitions);
        let mut waiting = self.stats.waiting_for_newer.lock().expect("waiting lock");
        for partition in partitions {
            waiting.remove(partition);
        }
        drop(waiting);
        if self.manual_commits {
            commit(&positions);
        }
    }

    fn holding(&self) -> bool {
        self.hold.load(Ordering::SeqCst)
    }
}

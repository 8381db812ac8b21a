//! The rebalance callbacks every consumer-group member in the workspace shares.
//!
//! librdkafka calls them inside the member's poll. What differs between members is only their
//! bookkeeping (the consumer's in-order [`Ownership`](super::Ownership), the dlq-worker's
//! out-of-order [`OffsetTracker`](super::OffsetTracker) and schedule), so that is a trait,
//! [`PartitionBook`]; committing before a revocation, keeping new partitions paused while the
//! member holds, and counting are done here once.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaResult;
use rdkafka::{ClientContext, TopicPartitionList};

use super::partition::{commit_list, CommitPosition, TopicPartition};

/// What a member keeps per partition, told about rebalances.
pub trait PartitionBook: Send + Sync + 'static {
    /// Partitions were assigned, before any of their messages is fetched.
    fn assigned(&self, _partitions: &[TopicPartition]) {}

    /// Partitions are being revoked; runs before librdkafka gives them up. The book commits
    /// what is durable of them with `commit` (synchronous, `true` when it went through) while
    /// they are still this member's, then forgets them: a member that committed after this
    /// could move the new owner's position backwards.
    fn revoking(&self, partitions: &[TopicPartition], commit: &mut dyn FnMut(&[CommitPosition]) -> bool);

    /// Whether partitions assigned now must start paused (the member is paused or halted), so
    /// no message arrives that could not be handled now.
    fn holding(&self) -> bool;
}

/// Counters every member serves on `/metrics`.
#[derive(Debug, Default)]
pub struct GroupGauges {
    pub assigned_partitions: AtomicUsize,
    /// Commits that went through: the asynchronous ones after each batch and the synchronous
    /// ones before a revocation.
    pub commits: AtomicU64,
}

/// The rdkafka context of a group member: its [`PartitionBook`] and its [`GroupGauges`].
pub struct GroupContext<B> {
    pub book: B,
    pub gauges: Arc<GroupGauges>,
}

impl<B: PartitionBook> ClientContext for GroupContext<B> {}

impl<B: PartitionBook> ConsumerContext for GroupContext<B> {
    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        match result {
            Ok(()) => {
                self.gauges.commits.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => tracing::warn!(error = %e, "offset commit failed; the batch may be redelivered"),
        }
    }

    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => self.book.assigned(&TopicPartition::all_of(tpl)),
            Rebalance::Revoke(tpl) => {
                let mut commit = |positions: &[CommitPosition]| self.commit_before_revocation(consumer, positions);
                self.book.revoking(&TopicPartition::all_of(tpl), &mut commit);
            }
            Rebalance::Error(_) => {}
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            if self.book.holding() {
                if let Err(e) = consumer.pause(tpl) {
                    tracing::warn!(error = %e, "could not pause newly assigned partitions");
                }
            }
        }
        let owned = consumer.assignment().map(|a| a.count()).unwrap_or(0);
        self.gauges.assigned_partitions.store(owned, Ordering::Relaxed);
        match rebalance {
            Rebalance::Assign(tpl) => tracing::info!(partitions = tpl.count(), owned, "partitions assigned"),
            Rebalance::Revoke(tpl) => tracing::info!(partitions = tpl.count(), owned, "partitions revoked"),
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
    }
}

impl<B: PartitionBook> GroupContext<B> {
    fn commit_before_revocation(&self, consumer: &BaseConsumer<Self>, positions: &[CommitPosition]) -> bool {
        if positions.is_empty() {
            return true;
        }
        match commit_list(positions).and_then(|list| consumer.commit(&list, CommitMode::Sync)) {
            Ok(()) => {
                self.gauges.commits.fetch_add(1, Ordering::Relaxed);
                true
            }
            // The new owner redelivers what this commit would have covered: duplicates only.
            Err(e) => {
                tracing::warn!(error = %e, "commit before revocation failed; the new owner may redeliver");
                false
            }
        }
    }
}

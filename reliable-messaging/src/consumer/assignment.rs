//! Who owns which partition, and how far each one's outcomes are durable: the rebalance
//! callbacks ([`AssignmentTracker`]) and the bookkeeping they share with the run loop
//! ([`Ownership`]).
//!
//! This is what keeps a member from committing a partition it no longer owns: every commit is
//! computed from [`Ownership`], which only ever holds the current assignment.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaResult;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::stats::ConsumerStats;

/// Tracks the assignment (what this member owns, for commits and readiness), commits the
/// durable position of partitions before they are revoked, and logs rebalances.
pub struct AssignmentTracker {
    pub(super) stats: Arc<ConsumerStats>,
    pub(super) ownership: Arc<Mutex<Ownership>>,
    /// `false` under [`CommitPolicy::UnsafeAutoCommit`]: then librdkafka commits, not us.
    pub(super) manual_commits: bool,
    /// Set while paused or halted: partitions assigned meanwhile are paused at once, so no
    /// message arrives that could not be handled now.
    pub(super) hold: Arc<AtomicBool>,
}

impl ClientContext for AssignmentTracker {}

impl ConsumerContext for AssignmentTracker {
    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        match result {
            Ok(()) => {
                self.stats.commits.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => tracing::warn!(error = %e, "offset commit failed; the batch may be redelivered"),
        }
    }

    /// Runs inside the poll (`recv`) of the run loop, before librdkafka applies the change.
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => lock_ownership(&self.ownership).assign(tpl),
            Rebalance::Revoke(tpl) => self.on_revoke(consumer, tpl),
            Rebalance::Error(_) => {}
        }
    }

    fn post_rebalance(&self, base: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            if self.hold.load(Ordering::SeqCst) {
                if let Err(e) = base.pause(tpl) {
                    tracing::warn!(error = %e, "could not pause newly assigned partitions");
                }
            }
        }
        let owned = lock_ownership(&self.ownership).partitions.len();
        self.stats.assigned_partitions.store(owned, Ordering::Relaxed);
        match rebalance {
            Rebalance::Assign(tpl) => tracing::info!(partitions = tpl.count(), owned, "partitions assigned"),
            Rebalance::Revoke(tpl) => tracing::info!(partitions = tpl.count(), owned, "partitions revoked"),
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
    }
}

impl AssignmentTracker {
    /// Commits what is durable of the revoked partitions while they are still ours, then forgets
    /// them: from now on this member commits nothing for them (neither a batch that was in
    /// flight during the revocation nor the final commit at exit), so it can never write its
    /// stale position over the newer one of the member that takes them over.
    fn on_revoke(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) {
        // Held across the synchronous commit so no batch commit for these partitions can slip
        // in between (the run loop is parked in this very poll anyway).
        let mut ownership = lock_ownership(&self.ownership);
        let positions = ownership.revoke(tpl);
        if !self.manual_commits || positions.is_empty() {
            return;
        }
        match offset_list(&positions).and_then(|list| consumer.commit(&list, CommitMode::Sync)) {
            Ok(()) => {
                self.stats.commits.fetch_add(1, Ordering::Relaxed);
            }
            // The new owner redelivers what this commit would have covered: duplicates only.
            Err(e) => tracing::warn!(error = %e, "commit before revocation failed; the new owner may redeliver"),
        }
    }
}

/// A partition: topic and partition number.
pub(super) type PartitionKey = (String, i32);

/// The partitions this member owns right now, and how far each one's outcomes are durable.
///
/// Shared by the run loop and the rebalance callbacks, and the only source of what is
/// committed: a partition is added when assigned and removed when revoked, so this member
/// never commits a partition another member owns. Each assignment of a partition gets a fresh
/// token; a batch remembers the token its messages were polled under and commits nothing for a
/// partition whose token changed meanwhile (revoked, perhaps moved on by another member, and
/// assigned back).
#[derive(Debug, Default)]
pub(super) struct Ownership {
    last_token: u64,
    partitions: HashMap<PartitionKey, Owned>,
}

#[derive(Debug)]
struct Owned {
    token: u64,
    /// The offset after the last message this member made durable: what may be committed.
    durable: Option<i64>,
    /// What a synchronous commit confirmed, so it is not committed again.
    confirmed: Option<i64>,
}

pub(super) fn lock_ownership(ownership: &Mutex<Ownership>) -> MutexGuard<'_, Ownership> {
    // Every update is a single call that leaves consistent data, even if a panic interrupted it.
    ownership.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Ownership {
    pub(super) fn assign(&mut self, tpl: &TopicPartitionList) {
        for e in tpl.elements() {
            self.last_token += 1;
            let owned = Owned { token: self.last_token, durable: None, confirmed: None };
            self.partitions.insert((e.topic().to_owned(), e.partition()), owned);
        }
    }

    /// Forgets the revoked partitions; returns their durable positions not yet confirmed.
    pub(super) fn revoke(&mut self, tpl: &TopicPartitionList) -> Vec<(PartitionKey, i64)> {
        tpl.elements()
            .iter()
            .filter_map(|e| {
                let key = (e.topic().to_owned(), e.partition());
                let owned = self.partitions.remove(&key)?;
                owned.unconfirmed().map(|next| (key, next))
            })
            .collect()
    }

    /// The token of the partition's current assignment; `None` when this member does not own it.
    pub(super) fn token(&self, topic: &str, partition: i32) -> Option<u64> {
        self.partitions.get(&(topic.to_owned(), partition)).map(|o| o.token)
    }

    /// Records a durable batch and returns the positions to commit for it: only partitions
    /// still owned under the assignment the batch was polled under, never moving backwards.
    pub(super) fn advance(&mut self, batch: &BTreeMap<PartitionKey, (u64, i64)>) -> Vec<(PartitionKey, i64)> {
        let mut positions = Vec::with_capacity(batch.len());
        for (key, &(token, next)) in batch {
            match self.partitions.get_mut(key) {
                Some(owned) if owned.token == token => {
                    let durable = owned.durable.map_or(next, |d| d.max(next));
                    owned.durable = Some(durable);
                    positions.push((key.clone(), durable));
                }
                _ => tracing::info!(
                    topic = %key.0,
                    partition = key.1,
                    "partition revoked while its batch was handled; not committing it, its owner redelivers"
                ),
            }
        }
        positions
    }

    /// Durable positions of every owned partition not yet confirmed by a synchronous commit.
    pub(super) fn unconfirmed(&self) -> Vec<(PartitionKey, i64)> {
        self.partitions.iter().filter_map(|(key, owned)| owned.unconfirmed().map(|next| (key.clone(), next))).collect()
    }

    pub(super) fn confirm(&mut self, positions: &[(PartitionKey, i64)]) {
        for (key, next) in positions {
            if let Some(owned) = self.partitions.get_mut(key) {
                owned.confirmed = Some(owned.confirmed.map_or(*next, |c| c.max(*next)));
            }
        }
    }
}

impl Owned {
    fn unconfirmed(&self) -> Option<i64> {
        self.durable.filter(|d| self.confirmed.is_none_or(|c| *d > c))
    }
}

pub(super) fn offset_list(positions: &[(PartitionKey, i64)]) -> KafkaResult<TopicPartitionList> {
    let mut tpl = TopicPartitionList::with_capacity(positions.len());
    for ((topic, partition), next) in positions {
        tpl.add_partition_offset(topic, *partition, Offset::Offset(*next))?;
    }
    Ok(tpl)
}

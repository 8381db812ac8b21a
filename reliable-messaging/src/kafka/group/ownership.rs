//! The partitions a member owns right now, and how far each one's outcomes are durable, for a
//! member that finishes each partition's messages in order (the consumer's batches).
//!
//! This is what keeps a member from committing a partition it no longer owns: every commit is
//! computed from [`Ownership`], which only ever holds the current assignment. A member that
//! finishes messages out of order uses [`OffsetTracker`](super::OffsetTracker) instead.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use super::partition::{CommitPosition, TopicPartition};

/// Shared by the run loop and the rebalance callbacks, and the only source of what is
/// committed: a partition is added when assigned and removed when revoked. Each assignment of a
/// partition gets a fresh token; a batch remembers the token its messages were polled under and
/// commits nothing for a partition whose token changed meanwhile (revoked, perhaps moved on by
/// another member, and assigned back).
#[derive(Debug, Default)]
pub struct Ownership {
    last_token: u64,
    partitions: HashMap<TopicPartition, Owned>,
}

#[derive(Debug)]
struct Owned {
    token: u64,
    /// The offset after the last message this member made durable: what may be committed.
    durable: Option<i64>,
    /// What a synchronous commit confirmed, so it is not committed again.
    confirmed: Option<i64>,
}

/// Every update is a single call that leaves consistent data, so a lock poisoned by a panic
/// elsewhere is still safe to use.
pub fn lock_ownership(ownership: &Mutex<Ownership>) -> MutexGuard<'_, Ownership> {
    ownership.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Ownership {
    pub fn assign(&mut self, partitions: &[TopicPartition]) {
        for partition in partitions {
            self.last_token += 1;
            let owned = Owned { token: self.last_token, durable: None, confirmed: None };
            self.partitions.insert(partition.clone(), owned);
        }
    }

    /// Forgets the revoked partitions; returns their durable positions not yet confirmed.
    pub fn revoke(&mut self, partitions: &[TopicPartition]) -> Vec<CommitPosition> {
        partitions
            .iter()
            .filter_map(|partition| {
                let owned = self.partitions.remove(partition)?;
                owned.unconfirmed().map(|next_offset| CommitPosition { partition: partition.clone(), next_offset })
            })
            .collect()
    }

    /// The token of the partition's current assignment; `None` when this member does not own it.
    pub fn token(&self, topic: &str, partition: i32) -> Option<u64> {
        // Looked up once per polled message: a borrowed key would need a second map type.
        self.partitions.iter().find(|(tp, _)| tp.partition == partition && tp.topic == topic).map(|(_, o)| o.token)
    }

    /// Records a durable batch (per partition: the token it was polled under, the offset after
    /// its last message) and returns the positions to commit for it: only partitions still
    /// owned under that assignment, never moving backwards.
    pub fn advance(&mut self, batch: &BTreeMap<TopicPartition, (u64, i64)>) -> Vec<CommitPosition> {
        let mut positions = Vec::with_capacity(batch.len());
        for (partition, &(token, next)) in batch {
            match self.partitions.get_mut(partition) {
                Some(owned) if owned.token == token => {
                    let durable = owned.durable.map_or(next, |d| d.max(next));
                    owned.durable = Some(durable);
                    positions.push(CommitPosition { partition: partition.clone(), next_offset: durable });
                }
                _ => tracing::info!(
                    %partition,
                    "partition revoked while its batch was handled; not committing it, its owner redelivers"
                ),
            }
        }
        positions
    }

    /// Durable positions of every owned partition not yet confirmed by a synchronous commit.
    pub fn unconfirmed(&self) -> Vec<CommitPosition> {
        self.partitions
            .iter()
            .filter_map(|(partition, owned)| {
                owned.unconfirmed().map(|next_offset| CommitPosition { partition: partition.clone(), next_offset })
            })
            .collect()
    }

    pub fn confirm(&mut self, positions: &[CommitPosition]) {
        for position in positions {
            if let Some(owned) = self.partitions.get_mut(&position.partition) {
                owned.confirmed = Some(owned.confirmed.map_or(position.next_offset, |c| c.max(position.next_offset)));
            }
        }
    }
}

impl Owned {
    fn unconfirmed(&self) -> Option<i64> {
        self.durable.filter(|d| self.confirmed.is_none_or(|c| *d > c))
    }
}

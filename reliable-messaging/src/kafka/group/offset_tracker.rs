//! Which offsets may be committed when messages finish out of order.
//!
//! A consumer that works on several messages of one partition at once (the DLQ worker sends a
//! message due in 1 s while one due in 30 s still waits) finishes them out of order. Kafka keeps
//! one committed offset per partition, meaning "everything before this is done", so only the
//! *contiguous prefix* of finished offsets may be committed: committing past a message that is
//! still waiting would lose it on a crash. This tracker records what was received and what is
//! finished, and says how far each partition may be committed.
//!
//! Offsets are tracked as received, not as integers: a partition may skip offsets (transaction
//! markers, compaction), and a skipped offset is never "outstanding".

use std::collections::{BTreeMap, HashMap};

use super::partition::{CommitPosition, TopicPartition};

#[derive(Debug, Default)]
struct PartitionProgress {
    /// Received offsets not yet part of the finished prefix, and whether each is finished.
    outstanding: BTreeMap<i64, bool>,
    /// One past the end of the finished prefix: what may be committed.
    committable: Option<i64>,
    /// What was last committed successfully.
    committed: Option<i64>,
}

impl PartitionProgress {
    /// Moves the finished prefix forward as far as it goes.
    fn advance(&mut self) {
        while let Some(entry) = self.outstanding.first_entry() {
            if !*entry.get() {
                break;
            }
            let offset = *entry.key();
            entry.remove();
            // Never move backwards: a rewound redelivery of an old offset finishing late must not
            // undo a commit position that is already further on.
            self.committable = Some(self.committable.map_or(offset + 1, |c| c.max(offset + 1)));
        }
    }
}

/// Received and finished offsets of every partition this consumer works on.
#[derive(Debug, Default)]
pub struct OffsetTracker {
    partitions: HashMap<TopicPartition, PartitionProgress>,
}

impl OffsetTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// A record was received and work on it starts. Tracking an offset twice is harmless.
    pub fn track(&mut self, partition: &TopicPartition, offset: i64) {
        self.partitions.entry(partition.clone()).or_default().outstanding.entry(offset).or_insert(false);
    }

    /// The work on a record is durable (re-sent, parked). Returns `false` when the offset is not
    /// tracked, e.g. because its partition was revoked in the meantime.
    pub fn complete(&mut self, partition: &TopicPartition, offset: i64) -> bool {
        let Some(progress) = self.partitions.get_mut(partition) else { return false };
        match progress.outstanding.get_mut(&offset) {
            Some(done) => {
                *done = true;
                progress.advance();
                true
            }
            None => false,
        }
    }

    /// Whether `offset` is received and not finished yet.
    pub fn is_outstanding(&self, partition: &TopicPartition, offset: i64) -> bool {
        self.partitions.get(partition).and_then(|p| p.outstanding.get(&offset)).is_some_and(|done| !done)
    }

    /// Received records whose offsets cannot be committed yet (unfinished, or finished behind an
    /// unfinished one).
    pub fn outstanding(&self) -> usize {
        self.partitions.values().map(|p| p.outstanding.len()).sum()
    }

    /// Positions that moved since they were last committed, for every partition.
    pub fn to_commit(&self) -> Vec<CommitPosition> {
        self.positions(|_| true)
    }

    /// Like [`OffsetTracker::to_commit`], for the given partitions only (before a revocation).
    pub fn to_commit_for(&self, partitions: &[TopicPartition]) -> Vec<CommitPosition> {
        self.positions(|tp| partitions.contains(tp))
    }

    fn positions(&self, include: impl Fn(&TopicPartition) -> bool) -> Vec<CommitPosition> {
        let mut positions: Vec<CommitPosition> = self
            .partitions
            .iter()
            .filter(|(tp, _)| include(tp))
            .filter_map(|(tp, p)| match (p.committable, p.committed) {
                (Some(next), Some(done)) if next <= done => None,
                (Some(next), _) => Some(CommitPosition { partition: tp.clone(), next_offset: next }),
                (None, _) => None,
            })
            .collect();
        positions.sort_by(|a, b| a.partition.cmp(&b.partition));
        positions
    }

    /// Records that `positions` were committed, so they are not committed again.
    pub fn mark_committed(&mut self, positions: &[CommitPosition]) {
        for position in positions {
            if let Some(p) = self.partitions.get_mut(&position.partition) {
                p.committed = Some(p.committed.map_or(position.next_offset, |c| c.max(position.next_offset)));
            }
        }
    }

    /// Forgets a partition (revoked in a rebalance): its unfinished records will be redelivered
    /// to the new owner from the committed position.
    pub fn forget(&mut self, partition: &TopicPartition) {
        self.partitions.remove(partition);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: i32) -> TopicPartition {
        TopicPartition::new("orders-dlq", p)
    }

    fn next_offsets(t: &OffsetTracker) -> Vec<(i32, i64)> {
        t.to_commit().into_iter().map(|c| (c.partition.partition, c.next_offset)).collect()
    }

    #[test]
    fn nothing_is_committable_before_anything_finished() {
        let mut t = OffsetTracker::new();
        t.track(&tp(0), 0);
        t.track(&tp(0), 1);
        assert!(t.to_commit().is_empty());
        assert_eq!(t.outstanding(), 2);
    }

    #[test]
    fn in_order_completion_commits_past_the_last_finished_offset() {
        let mut t = OffsetTracker::new();
        for o in 0..3 {
            t.track(&tp(0), o);
        }
        assert!(t.complete(&tp(0), 0));
        assert!(t.complete(&tp(0), 1));
        assert_eq!(next_offsets(&t), vec![(0, 2)]);
        assert_eq!(t.outstanding(), 1);
    }

    #[test]
    fn out_of_order_completion_waits_for_the_gap_to_close() {
        let mut t = OffsetTracker::new();
        for o in 10..14 {
            t.track(&tp(0), o);
        }
        // 11 and 13 finish first: 10 still waits, so nothing may be committed.
        t.complete(&tp(0), 11);
        t.complete(&tp(0), 13);
        assert!(t.to_commit().is_empty(), "committing past 10 would lose it on a crash");
        assert!(t.is_outstanding(&tp(0), 10));
        assert!(!t.is_outstanding(&tp(0), 11));
        // 10 finishes: the prefix runs up to 11 (12 still waits).
        t.complete(&tp(0), 10);
        assert_eq!(next_offsets(&t), vec![(0, 12)]);
        // 12 finishes: everything is done, through 13.
        t.complete(&tp(0), 12);
        assert_eq!(next_offsets(&t), vec![(0, 14)]);
        assert_eq!(t.outstanding(), 0);
    }

    #[test]
    fn skipped_offsets_do_not_block_the_prefix() {
        let mut t = OffsetTracker::new();
        // 5 and 6 were transaction markers: never delivered, never outstanding.
        t.track(&tp(0), 4);
        t.track(&tp(0), 7);
        t.complete(&tp(0), 4);
        t.complete(&tp(0), 7);
        assert_eq!(next_offsets(&t), vec![(0, 8)]);
    }

    #[test]
    fn partitions_are_independent() {
        let mut t = OffsetTracker::new();
        t.track(&tp(0), 0);
        t.track(&tp(1), 0);
        t.track(&tp(1), 1);
        t.complete(&tp(1), 1);
        t.complete(&tp(1), 0);
        assert_eq!(next_offsets(&t), vec![(1, 2)], "partition 0 still waits, partition 1 is done");
    }

    #[test]
    fn committed_positions_are_not_committed_again() {
        let mut t = OffsetTracker::new();
        t.track(&tp(0), 0);
        t.complete(&tp(0), 0);
        let positions = t.to_commit();
        t.mark_committed(&positions);
        assert!(t.to_commit().is_empty());
        t.track(&tp(0), 1);
        t.complete(&tp(0), 1);
        assert_eq!(next_offsets(&t), vec![(0, 2)]);
    }

    #[test]
    fn forgotten_partitions_ignore_late_completions() {
        let mut t = OffsetTracker::new();
        t.track(&tp(0), 0);
        t.track(&tp(1), 0);
        assert_eq!(t.to_commit_for(&[tp(0)]), vec![]);
        t.forget(&tp(0));
        assert!(!t.complete(&tp(0), 0), "a send that finishes after the revocation changes nothing");
        assert!(t.to_commit().is_empty());
        assert_eq!(t.outstanding(), 1);
    }

    #[test]
    fn commits_for_selected_partitions_only() {
        let mut t = OffsetTracker::new();
        for p in 0..3 {
            t.track(&tp(p), 0);
            t.complete(&tp(p), 0);
        }
        let revoked = t.to_commit_for(&[tp(2)]);
        assert_eq!(revoked, vec![CommitPosition { partition: tp(2), next_offset: 1 }]);
    }

    #[test]
    fn a_rewound_redelivery_never_moves_the_position_backwards() {
        let mut t = OffsetTracker::new();
        t.track(&tp(0), 5);
        t.complete(&tp(0), 5);
        t.track(&tp(0), 3);
        t.complete(&tp(0), 3);
        assert_eq!(next_offsets(&t), vec![(0, 6)]);
    }

    #[test]
    fn completing_an_untracked_offset_is_ignored() {
        let mut t = OffsetTracker::new();
        t.track(&tp(0), 0);
        assert!(!t.complete(&tp(0), 9));
        assert!(t.to_commit().is_empty());
    }
}

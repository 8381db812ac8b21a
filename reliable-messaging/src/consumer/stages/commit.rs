//! The last stage, [`Commit`]: committing what is durable, after each batch (asynchronously)
//! and once more before exit (synchronously).
//!
//! Every position committed comes from [`Ownership`], so a partition lost in a rebalance is
//! never committed by this member again; the tests below check what is committed for batches
//! polled across rebalances.

use std::sync::{Arc, Mutex};

use rdkafka::consumer::{CommitMode, Consumer};

use super::settle::Settled;
use crate::consumer::batch::Batch;
use crate::consumer::member::Member;
use crate::consumer::ConsumerStats;
use crate::kafka::group::{commit_list, lock_ownership, Ownership};

pub(crate) struct Commit {
    pub(crate) member: Arc<Member>,
    pub(crate) ownership: Arc<Mutex<Ownership>>,
    /// `false` under [`CommitPolicy::UnsafeAutoCommit`](crate::consumer::CommitPolicy): then
    /// librdkafka commits, not us.
    pub(crate) manual: bool,
    pub(crate) stats: Arc<ConsumerStats>,
}

/// How many of a settled batch's `len` messages may be committed, counted from its start: all
/// of them, those before the message where the flood guard halted, or none.
pub(crate) fn committable(len: usize, settled: &Settled) -> usize {
    match settled {
        Settled::Durable => len,
        Settled::Halted { durable, .. } => *durable,
        Settled::Interrupted => 0,
    }
}

impl Commit {
    /// Commits what [`committable`] allows of a settled batch, except the `held` positions
    /// (messages waiting for a newer consumer, and so everything after them in their partition).
    pub(crate) fn settled(&self, batch: &Batch, settled: &Settled, held: &[usize]) {
        if !self.manual {
            return;
        }
        match committable(batch.deliveries.len(), settled) {
            0 => {}
            n if n == batch.deliveries.len() && held.is_empty() => self.commit(batch),
            n if held.is_empty() => self.commit(&batch.prefix(n)),
            n => self.commit(&batch.prefix_except(n, held)),
        }
    }

    /// Commits, for every partition in the batch this member still owns under the assignment
    /// the batch was polled under, the offset after the batch. Asynchronous: the request is
    /// queued and the loop moves on (the result arrives in the group context's commit
    /// callback); at-least-once holds because the outcomes are already durable. A partition
    /// revoked meanwhile is left to its new owner, which redelivers the batch's part of it:
    /// committing it here could move the new owner's committed offset backwards.
    ///
    /// A failed commit is logged, not fatal: the worst case is a redelivery that the
    /// idempotent handler absorbs.
    fn commit(&self, batch: &Batch) {
        let started = std::time::Instant::now();
        self.commit_owned(batch);
        self.stats.stages.record("commit", started.elapsed());
    }

    fn commit_owned(&self, batch: &Batch) {
        // Checked and queued under the lock, so a revocation cannot fall in between.
        let mut ownership = lock_ownership(&self.ownership);
        let positions = ownership.advance(&batch.positions);
        if positions.is_empty() {
            return;
        }
        match commit_list(&positions) {
            Ok(tpl) => {
                if let Err(e) = self.member.commit(&tpl, CommitMode::Async) {
                    tracing::warn!(error = %e, "offset commit failed; the batch may be redelivered");
                }
            }
            Err(e) => tracing::error!(error = %e, "could not build the commit list"),
        }
    }

    /// One synchronous commit of the durable position of every partition this member still
    /// owns, so a graceful stop leaves no stored-but-uncommitted batch behind. Partitions it
    /// owned once and lost in a rebalance are not among them: their committed offsets belong
    /// to their new owner.
    pub(crate) async fn before_exit(&self) {
        if !self.manual {
            return;
        }
        // The loop has stopped polling, so no rebalance callback runs until the commit is done.
        let positions = lock_ownership(&self.ownership).unconfirmed();
        if positions.is_empty() {
            return;
        }
        let tpl = match commit_list(&positions) {
            Ok(tpl) => tpl,
            Err(e) => return tracing::error!(error = %e, "could not build the final commit list"),
        };
        let consumer = self.member.clone();
        match tokio::task::spawn_blocking(move || consumer.commit(&tpl, CommitMode::Sync)).await {
            // Confirmed: the revocation when the consumer closes need not commit it again.
            Ok(Ok(())) => lock_ownership(&self.ownership).confirm(&positions),
            Ok(Err(e)) => tracing::warn!(error = %e, "final offset commit failed; the last batch may be redelivered"),
            Err(e) => tracing::warn!(error = %e, "final offset commit task failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dead_letter::HaltReason;
    use crate::kafka::group::{CommitPosition, TopicPartition};
    use crate::message::Delivery;

    fn partitions(ps: &[i32]) -> Vec<TopicPartition> {
        ps.iter().map(|p| TopicPartition::new("t", *p)).collect()
    }

    fn delivery(partition: i32, offset: i64) -> Delivery {
        Delivery::empty_at("t", partition, offset)
    }

    /// A batch of `(partition, offset)` polled under the current assignment.
    fn polled(ownership: &Ownership, messages: &[(i32, i64)]) -> Batch {
        let mut batch = Batch::default();
        for &(p, o) in messages {
            batch.push(delivery(p, o), ownership.token("t", p));
        }
        batch
    }

    fn at(p: i32, next_offset: i64) -> CommitPosition {
        CommitPosition { partition: TopicPartition::new("t", p), next_offset }
    }

    #[test]
    fn revoked_partitions_are_committed_on_revoke_and_never_again() {
        let mut ownership = Ownership::default();
        ownership.assign(&partitions(&[0, 1]));
        let batch = polled(&ownership, &[(0, 9), (1, 19)]);
        assert_eq!(ownership.advance(&batch.positions), vec![at(0, 10), at(1, 20)]);
        assert_eq!(ownership.revoke(&partitions(&[1])), vec![at(1, 20)], "committed before it goes");
        assert_eq!(ownership.unconfirmed(), vec![at(0, 10)], "the exit commit leaves partition 1 to its new owner");
    }

    #[test]
    fn a_batch_in_flight_across_a_revocation_commits_nothing_for_the_moved_partition() {
        let mut ownership = Ownership::default();
        ownership.assign(&partitions(&[0, 1]));
        let batch = polled(&ownership, &[(0, 50), (1, 50)]);
        // Partition 1 moves to another member (which commits far past 51) and comes back.
        ownership.revoke(&partitions(&[0, 1]));
        ownership.assign(&partitions(&[0]));
        assert!(ownership.advance(&batch.positions).is_empty(), "revoked under the batch: nothing to commit");
        ownership.assign(&partitions(&[1]));
        assert!(ownership.advance(&batch.positions).is_empty(), "assigned again: the old batch still commits nothing");
        assert!(ownership.unconfirmed().is_empty());
    }

    #[test]
    fn positions_never_move_backwards_and_confirmed_ones_are_not_repeated() {
        let mut ownership = Ownership::default();
        ownership.assign(&partitions(&[0]));
        let later = polled(&ownership, &[(0, 7), (0, 8)]);
        let earlier = polled(&ownership, &[(0, 3)]);
        assert_eq!(ownership.advance(&later.positions), vec![at(0, 9)]);
        assert_eq!(ownership.advance(&earlier.positions), vec![at(0, 9)]);
        ownership.confirm(&[at(0, 9)]);
        assert!(ownership.unconfirmed().is_empty());
        assert!(ownership.revoke(&partitions(&[0])).is_empty(), "nothing left to commit on revoke");
    }

    #[test]
    fn messages_of_partitions_not_owned_are_never_committed() {
        let mut ownership = Ownership::default();
        ownership.assign(&partitions(&[0]));
        let batch = polled(&ownership, &[(0, 1), (5, 1)]);
        assert_eq!(batch.deliveries.len(), 2, "handled all the same");
        assert_eq!(ownership.advance(&batch.positions), vec![at(0, 2)]);
    }

    #[test]
    fn a_halted_batch_commits_only_the_prefix_before_the_tripping_message() {
        let mut ownership = Ownership::default();
        ownership.assign(&partitions(&[0, 1]));
        let batch = polled(&ownership, &[(0, 10), (0, 11), (1, 20), (1, 21)]);
        let reason = HaltReason { summary: "3 consecutive".into(), first_failures: Vec::new() };
        let halted = batch.prefix(committable(4, &Settled::Halted { durable: 3, reason }));
        assert_eq!(ownership.advance(&halted.positions), vec![at(0, 12), at(1, 21)], "offset 21 stays uncommitted");
        assert_eq!(committable(4, &Settled::Interrupted), 0, "an interrupted batch commits nothing");
        assert_eq!(committable(4, &Settled::Durable), 4);
    }

    #[test]
    fn messages_waiting_for_a_newer_consumer_are_never_committed() {
        let mut ownership = Ownership::default();
        ownership.assign(&partitions(&[0, 1]));
        let batch = polled(&ownership, &[(0, 10), (0, 11), (0, 12), (1, 20)]);
        // Offset 11 is for a newer consumer, 12 waits behind it; partition 1 flows on.
        let part = batch.prefix_except(4, &[1, 2]);
        assert_eq!(ownership.advance(&part.positions), vec![at(0, 11), at(1, 21)], "partition 0 stops before 11");
        let part = batch.prefix_except(4, &[0, 1, 2]);
        assert_eq!(ownership.advance(&part.positions), vec![at(1, 21)], "nothing for partition 0, all of it waits");
    }
}

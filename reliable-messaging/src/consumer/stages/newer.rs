//! Between the handle and the settle stage, [`WaitForNewer`]: a message written for a newer
//! version of this consumer (`Outcome::NewerThanConsumer`) stops its partition, not the
//! consumer. The partition is paused and rewound to that message, nothing from it on is
//! settled or committed, the other partitions flow on, and `/readyz` says what is needed.
//! It resumes when a newer instance takes the partition (a rebalance revokes it here, which
//! forgets the wait) or this one restarts: then the message is read again from the committed
//! offset. Nothing is dead-lettered or parked: during a rolling deploy the old instances wait
//! for the new ones instead of parking their events.
//!
//! The decisions are pure functions, unit tested below: [`behind_newer`] (a message of a
//! partition already waiting gets the outcome without being handled) and [`hold_tail`] (every
//! later message of a waiting partition waits too: order within a partition is kept).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::consumer::member::Member;
use crate::consumer::{ConsumerStats, WaitingForNewer};
use crate::kafka::group::{hold_back, TopicPartition};
use crate::message::{Delivery, Outcome};

/// The outcome of a message of a partition that waits for a newer consumer from an offset at
/// or before it: it waits too, unhandled. `None` for a message to handle.
pub(crate) fn behind_newer(
    waiting: &BTreeMap<TopicPartition, WaitingForNewer>,
    delivery: &Delivery,
) -> Option<Outcome> {
    let wait = waiting.get(&TopicPartition::new(delivery.topic.clone(), delivery.partition))?;
    (delivery.offset >= wait.offset).then(|| Outcome::newer_than_consumer(wait.reason.clone()))
}

/// Gives every message behind a `NewerThanConsumer` one in its partition the same outcome,
/// and returns, in batch order, the positions that now wait, with the first per partition.
pub(crate) fn hold_tail(batch: &[Delivery], outcomes: &mut [Outcome]) -> (Vec<usize>, BTreeMap<TopicPartition, usize>) {
    let mut first: BTreeMap<TopicPartition, usize> = BTreeMap::new();
    let mut held = Vec::new();
    for (i, delivery) in batch.iter().enumerate() {
        let partition = TopicPartition::new(delivery.topic.clone(), delivery.partition);
        if let Some(&at) = first.get(&partition) {
            if !outcomes[i].is_newer_than_consumer() {
                let reason = match &outcomes[at] {
                    Outcome::NewerThanConsumer { reason } => reason.clone(),
                    _ => unreachable!("the first held message of a partition is newer than the consumer"),
                };
                outcomes[i] = Outcome::newer_than_consumer(reason);
            }
            held.push(i);
        } else if outcomes[i].is_newer_than_consumer() {
            first.insert(partition, i);
            held.push(i);
        }
    }
    (held, first)
}

pub(crate) struct WaitForNewer {
    pub(crate) member: Arc<Member>,
    pub(crate) stats: Arc<ConsumerStats>,
}

impl WaitForNewer {
    /// The outcome of a message that waits behind an earlier one of its partition.
    pub(crate) fn outcome_without_handling(&self, delivery: &Delivery) -> Option<Outcome> {
        behind_newer(&self.stats.waiting_for_newer.lock().expect("waiting lock"), delivery)
    }

    /// Applies [`hold_tail`] to a handled batch, pauses and rewinds each partition that now
    /// waits, and returns the positions that must be neither settled nor committed.
    pub(crate) fn hold(&self, batch: &[Delivery], outcomes: &mut [Outcome]) -> Vec<usize> {
        let (held, first) = hold_tail(batch, outcomes);
        if held.is_empty() {
            return held;
        }
        self.stats.held_for_newer.fetch_add(held.len() as u64, Ordering::Relaxed);
        let mut waiting = self.stats.waiting_for_newer.lock().expect("waiting lock");
        for (partition, at) in first {
            let delivery = &batch[at];
            let Outcome::NewerThanConsumer { reason } = &outcomes[at] else { continue };
            let entry = waiting
                .entry(partition)
                .or_insert_with(|| WaitingForNewer { offset: delivery.offset, reason: reason.clone() });
            if delivery.offset <= entry.offset {
                if !(delivery.offset == entry.offset && entry.reason == *reason) {
                    tracing::warn!(
                        position = %delivery.position(),
                        %reason,
                        "a message for a newer consumer: its partition waits here (nothing is dead-lettered); \
                         deploy the newer version or let a newer instance take the partition"
                    );
                }
                *entry = WaitingForNewer { offset: delivery.offset, reason: reason.clone() };
            }
            // Also when already waiting: a resume after an outage fetched the partition again.
            hold_back(&self.member, &delivery.topic, delivery.partition, entry.offset);
        }
        held
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(partition: i32, offset: i64) -> Delivery {
        Delivery::empty_at("t", partition, offset)
    }

    #[test]
    fn everything_behind_a_newer_message_of_its_partition_waits_and_other_partitions_flow() {
        let batch = vec![delivery(0, 1), delivery(0, 2), delivery(0, 3), delivery(1, 7), delivery(1, 8)];
        let mut outcomes = vec![
            Outcome::Done,
            Outcome::newer_than_consumer("needs v2"),
            Outcome::transient("lock wait"),
            Outcome::Done,
            Outcome::permanent("poison"),
        ];
        let (held, first) = hold_tail(&batch, &mut outcomes);
        assert_eq!(held, vec![1, 2], "the newer one and the failure behind it; partition 1 is untouched");
        assert_eq!(first.get(&TopicPartition::new("t", 0)), Some(&1));
        assert_eq!(outcomes[2], Outcome::newer_than_consumer("needs v2"), "not dead-lettered ahead of it");
        assert_eq!(outcomes[4], Outcome::permanent("poison"));
        assert_eq!(outcomes[0], Outcome::Done);
    }

    #[test]
    fn a_waiting_partition_holds_later_messages_unhandled_and_earlier_ones_not() {
        let mut waiting = BTreeMap::new();
        waiting.insert(TopicPartition::new("t", 0), WaitingForNewer { offset: 5, reason: "needs v2".into() });
        assert_eq!(behind_newer(&waiting, &delivery(0, 5)), Some(Outcome::newer_than_consumer("needs v2")));
        assert_eq!(behind_newer(&waiting, &delivery(0, 9)), Some(Outcome::newer_than_consumer("needs v2")));
        assert_eq!(behind_newer(&waiting, &delivery(0, 4)), None, "before the wait: handled");
        assert_eq!(behind_newer(&waiting, &delivery(1, 9)), None, "another partition: handled");
    }

    #[test]
    fn a_batch_without_newer_messages_holds_nothing() {
        let batch = vec![delivery(0, 1), delivery(1, 1)];
        let mut outcomes = vec![Outcome::Done, Outcome::rejected("taken")];
        assert!(hold_tail(&batch, &mut outcomes).0.is_empty());
    }
}

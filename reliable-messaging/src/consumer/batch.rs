//! A polled batch: its messages, the assignment each was polled under, and the position to
//! commit for each partition once the batch's outcomes are durable.
//!
//! Separate from polling so that what is committed for a batch (and for a prefix of it, when
//! the consumer halts part-way) can be tested without a broker.

use std::collections::BTreeMap;

use super::assignment::PartitionKey;
use crate::delivery::Delivery;

/// Polled messages, and for each partition among them the assignment token they were polled
/// under and the offset after the last one.
#[derive(Default)]
pub(super) struct Batch {
    pub(super) deliveries: Vec<Delivery>,
    /// The assignment token each delivery was polled under, in the same order.
    tokens: Vec<Option<u64>>,
    pub(super) positions: BTreeMap<PartitionKey, (u64, i64)>,
}

impl Batch {
    /// The first `n` deliveries as a batch of their own: what may be committed when the
    /// messages from `n` on must stay uncommitted.
    pub(super) fn prefix(&self, n: usize) -> Batch {
        let mut prefix = Batch::default();
        for (delivery, token) in self.deliveries.iter().zip(&self.tokens).take(n) {
            prefix.push(delivery.clone(), *token);
        }
        prefix
    }

    /// Orders the deliveries by topic and partition, keeping each partition's order, so that
    /// [`partition_chunks`](crate::partition_chunks::partition_chunks) can hand out plain slices. Order across partitions means nothing.
    pub(super) fn group_by_partition(&mut self) {
        let deliveries = std::mem::take(&mut self.deliveries);
        let mut pairs: Vec<(Delivery, Option<u64>)> = deliveries.into_iter().zip(self.tokens.drain(..)).collect();
        // Stable: within a partition the polled order (the offset order) is kept.
        pairs.sort_by(|(a, _), (b, _)| (a.topic.as_str(), a.partition).cmp(&(b.topic.as_str(), b.partition)));
        (self.deliveries, self.tokens) = pairs.into_iter().unzip();
    }

    /// `token` is `None` for a message of a partition not (or no longer) owned: it is handled
    /// but never committed by this member.
    pub(super) fn push(&mut self, delivery: Delivery, token: Option<u64>) {
        if let Some(token) = token {
            let next = delivery.offset + 1;
            let entry = self.positions.entry((delivery.topic.clone(), delivery.partition)).or_insert((token, next));
            // A later assignment replaces an earlier one; within one, the position only grows.
            if token > entry.0 {
                *entry = (token, next);
            } else if token == entry.0 {
                entry.1 = entry.1.max(next);
            }
        }
        self.deliveries.push(delivery);
        self.tokens.push(token);
    }
}

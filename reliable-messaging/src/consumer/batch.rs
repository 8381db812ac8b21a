//! A polled batch: its messages, the assignment each was polled under, and the position to
//! commit for each partition once the batch's outcomes are durable.
//!
//! Separate from polling so that what is committed for a batch (and for a prefix of it, when
//! the consumer halts part-way) can be tested without a broker.

use std::collections::BTreeMap;
use std::ops::Range;

use super::handler::{Handler, Prepared};
use crate::consumer::partition_chunks::partition_chunks;
use crate::kafka::group::TopicPartition;
use crate::message::Delivery;

/// The chunks of a batch handled at the same time (contiguous, whole partitions), each with
/// what the handler prepared for it.
pub(crate) type PreparedChunks = Vec<(Range<usize>, Prepared)>;

/// Polled messages, and for each partition among them the assignment token they were polled
/// under and the offset after the last one.
#[derive(Default)]
pub(crate) struct Batch {
    pub(crate) deliveries: Vec<Delivery>,
    /// The assignment token each delivery was polled under, in the same order.
    tokens: Vec<Option<u64>>,
    pub(crate) positions: BTreeMap<TopicPartition, (u64, i64)>,
    /// Filled by [`Batch::prepare`] once the batch is complete; taken by the first attempt
    /// at handling it.
    pub(crate) prepared: PreparedChunks,
}

impl Batch {
    /// The first `n` deliveries as a batch of their own: what may be committed when the
    /// messages from `n` on must stay uncommitted.
    pub(crate) fn prefix(&self, n: usize) -> Batch {
        let mut prefix = Batch::default();
        for (delivery, token) in self.deliveries.iter().zip(&self.tokens).take(n) {
            prefix.push(delivery.clone(), *token);
        }
        prefix
    }

    /// The first `n` deliveries but those at the `held` positions (ascending), as a batch of
    /// their own: what may be committed when some messages wait for a newer consumer.
    pub(crate) fn prefix_except(&self, n: usize, held: &[usize]) -> Batch {
        let mut part = Batch::default();
        let mut held = held.iter().peekable();
        for (i, (delivery, token)) in self.deliveries.iter().zip(&self.tokens).take(n).enumerate() {
            if held.next_if(|&&h| h == i).is_some() {
                continue;
            }
            part.push(delivery.clone(), *token);
        }
        part
    }

    /// Orders the deliveries by topic and partition, keeping each partition's order, so that
    /// [`partition_chunks`](crate::consumer::partition_chunks::partition_chunks) can hand out plain slices. Order across partitions means nothing.
    pub(crate) fn group_by_partition(&mut self) {
        let deliveries = std::mem::take(&mut self.deliveries);
        let mut pairs: Vec<(Delivery, Option<u64>)> = deliveries.into_iter().zip(self.tokens.drain(..)).collect();
        // Stable: within a partition the polled order (the offset order) is kept.
        pairs.sort_by(|(a, _), (b, _)| (a.topic.as_str(), a.partition).cmp(&(b.topic.as_str(), b.partition)));
        (self.deliveries, self.tokens) = pairs.into_iter().unzip();
    }

    /// Splits the complete batch into the chunks that will be handled at once (at most
    /// `max_chunks`) and lets `handler` prepare each, so the preparation runs now, while the
    /// previous batch is still being written, rather than when this batch's turn comes.
    pub(crate) fn prepare<H: Handler>(&mut self, handler: &H, max_chunks: usize) {
        let partitions: Vec<(&str, i32)> = self.deliveries.iter().map(|d| (d.topic.as_str(), d.partition)).collect();
        self.prepared = partition_chunks(&partitions, max_chunks)
            .into_iter()
            .map(|chunk| {
                let prepared = handler.prepare(&self.deliveries[chunk.clone()]);
                (chunk, prepared)
            })
            .collect();
    }

    /// `token` is `None` for a message of a partition not (or no longer) owned: it is handled
    /// but never committed by this member.
    pub(crate) fn push(&mut self, delivery: Delivery, token: Option<u64>) {
        if let Some(token) = token {
            let next = delivery.offset + 1;
            let entry = self
                .positions
                .entry(TopicPartition::new(delivery.topic.clone(), delivery.partition))
                .or_insert((token, next));
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

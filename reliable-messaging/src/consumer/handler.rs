//! The one trait an application implements: what to do with a message.
//!
//! Everything else in [`crate::consumer`] exists so that this is all a service has to write;
//! it lives on its own so a reader looking for "what do I implement" finds only that.

use std::future::Future;

use crate::delivery::Delivery;
use crate::outcome::Outcome;

/// Application logic for one topic. Implement [`Handler::handle`]; override
/// [`Handler::handle_batch`] when the work batches well (one multi-row upsert per batch).
///
/// Handlers must be idempotent: after a crash the same message arrives again. They may be
/// called concurrently, for different partitions of one batch
/// ([`ConsumerSettings::partition_concurrency`](super::ConsumerSettings::partition_concurrency));
/// one partition's messages are never handled by two calls at once, and always in their order.
pub trait Handler: Send + Sync + 'static {
    /// Decides the outcome of one message, making `Done` / `Rejected` durable before returning.
    fn handle(&self, delivery: &Delivery) -> impl Future<Output = Outcome> + Send;

    /// Decides the outcomes of a batch: one per delivery, in the same order.
    fn handle_batch(&self, batch: &[Delivery]) -> impl Future<Output = Vec<Outcome>> + Send {
        async move {
            let mut outcomes = Vec::with_capacity(batch.len());
            for delivery in batch {
                outcomes.push(self.handle(delivery).await);
            }
            outcomes
        }
    }
}

//! The one trait an application implements: what to do with a message.
//!
//! Everything else in [`crate::consumer`] exists so that this is all a service has to write;
//! it lives on its own so a reader looking for "what do I implement" finds only that.

use std::any::Any;
use std::future::Future;

use crate::message::Delivery;
use crate::message::Outcome;

/// Application logic for one topic. Implement [`Handler::handle`]; override
/// [`Handler::handle_batch`] when the work batches well (one multi-row upsert per batch), and
/// [`Handler::prepare`] with [`Handler::handle_prepared`] when a batch needs CPU work before
/// its I/O (parsing, building a statement) that can run while the previous batch is written.
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

    /// CPU-only work on a batch that does not depend on earlier batches' outcomes: no I/O, no
    /// side effects. The consumer calls it as soon as the batch is polled, which in a steady
    /// stream is while the previous batch's writes are still running, so this work overlaps
    /// them instead of keeping the database waiting. It runs on a blocking thread of the
    /// runtime, so it may take milliseconds without delaying the handler of the previous
    /// batch. Nothing by default.
    fn prepare(&self, _batch: &[Delivery]) -> Prepared {
        Prepared::nothing()
    }

    /// [`Handler::handle_batch`] for a batch that went through [`Handler::prepare`], with what
    /// it made. Called at most once per prepared batch, for exactly the batch prepared; a
    /// retry of part of a batch goes through `handle_batch` again.
    fn handle_prepared(&self, batch: &[Delivery], _prepared: Prepared) -> impl Future<Output = Vec<Outcome>> + Send {
        self.handle_batch(batch)
    }
}

/// What [`Handler::prepare`] made of a batch, handed back to [`Handler::handle_prepared`].
/// Type-erased so that a handler without a preparation step declares nothing.
#[derive(Default)]
pub struct Prepared(Option<Box<dyn Any + Send + Sync>>);

impl Prepared {
    /// No preparation: the handler works from the deliveries alone.
    pub fn nothing() -> Self {
        Self(None)
    }

    pub fn new<T: Any + Send + Sync>(value: T) -> Self {
        Self(Some(Box::new(value)))
    }

    /// The prepared value, if this holds one of type `T`.
    pub fn take<T: Any>(self) -> Option<T> {
        self.0?.downcast::<T>().ok().map(|b| *b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prepared_value_comes_back_only_as_its_own_type() {
        assert_eq!(Prepared::new(vec![1_u8, 2]).take::<Vec<u8>>(), Some(vec![1, 2]));
        assert_eq!(Prepared::new(7_u32).take::<u64>(), None);
        assert_eq!(Prepared::nothing().take::<u32>(), None);
    }
}

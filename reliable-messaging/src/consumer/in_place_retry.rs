//! Handling a batch, with a few quick in-place retries of transient failures.
//!
//! Short on purpose: a consumer retrying in place holds up its partitions; what still fails
//! goes to the DLQ, whose retries wait without blocking anyone.

use std::sync::atomic::Ordering;

use futures::future::join_all;
use tokio_util::sync::CancellationToken;

use super::handler::Handler;
use super::settings::OutagePolicy;
use super::{ConsumerError, ReliableConsumer};
use crate::delivery::Delivery;
use crate::outcome::Outcome;
use crate::partition_chunks::partition_chunks;

impl<H: Handler> ReliableConsumer<H> {
    /// Calls the handler; transient failures are retried in place a few times with backoff.
    pub(super) async fn handle_with_in_place_retries(
        &self,
        batch: &[Delivery],
        shutdown: &CancellationToken,
    ) -> Result<Vec<Outcome>, ConsumerError> {
        let mut outcomes: Vec<Option<Outcome>> =
            batch.iter().map(|d| d.retry_metadata_error.as_ref().map(|e| Outcome::permanent(e.to_string()))).collect();
        let mut pending: Vec<usize> = (0..batch.len()).filter(|&i| outcomes[i].is_none()).collect();
        let mut attempt = 0;
        while !pending.is_empty() {
            let started = std::time::Instant::now();
            let results = if pending.len() == batch.len() {
                self.handle_by_partition(batch).await?
            } else {
                let subset: Vec<Delivery> = pending.iter().map(|&i| batch[i].clone()).collect();
                self.handle_by_partition(&subset).await?
            };
            self.stats.stages.record("handle", started.elapsed());
            let results = results.into_iter().map(|o| self.apply_outage_policy(o));
            let retry_again = attempt < self.settings.in_place_retries && !shutdown.is_cancelled();
            let mut still_failing = Vec::new();
            for (&i, outcome) in pending.iter().zip(results) {
                if retry_again && outcome.is_transient() {
                    still_failing.push(i);
                }
                outcomes[i] = Some(outcome);
            }
            if still_failing.is_empty() {
                break;
            }
            let delay = self.settings.in_place_backoff.delay(attempt);
            tracing::debug!(count = still_failing.len(), attempt, ?delay, "transient failures, retrying in place");
            self.stats.in_place_retries.fetch_add(still_failing.len() as u64, Ordering::Relaxed);
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(delay) => {}
            }
            attempt += 1;
            pending = still_failing;
        }
        Ok(outcomes.into_iter().map(|o| o.expect("every message has an outcome")).collect())
    }

    /// Hands `batch` (grouped by partition) to the handler in at most
    /// `partition_concurrency` concurrent calls, one contiguous chunk of partitions each, and
    /// returns the outcomes in the batch's order.
    async fn handle_by_partition(&self, batch: &[Delivery]) -> Result<Vec<Outcome>, ConsumerError> {
        let partitions: Vec<(&str, i32)> = batch.iter().map(|d| (d.topic.as_str(), d.partition)).collect();
        let chunks = partition_chunks(&partitions, self.settings.partition_concurrency);
        let results = join_all(chunks.iter().map(|chunk| self.handler.handle_batch(&batch[chunk.clone()]))).await;
        let mut outcomes = Vec::with_capacity(batch.len());
        for (chunk, result) in chunks.iter().zip(results) {
            if result.len() != chunk.len() {
                return Err(ConsumerError::HandlerContract { expected: chunk.len(), got: result.len() });
            }
            outcomes.extend(result);
        }
        Ok(outcomes)
    }

    /// Under [`OutagePolicy::DeadLetter`], an outage is an ordinary transient failure.
    fn apply_outage_policy(&self, outcome: Outcome) -> Outcome {
        match (self.settings.outage_policy, outcome) {
            (OutagePolicy::DeadLetter, Outcome::DependencyDown { dependency, message }) => {
                Outcome::transient(format!("{dependency} down: {message}"))
            }
            (_, outcome) => outcome,
        }
    }
}

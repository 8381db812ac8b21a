//! The second stage, [`Handle`]: the handler decides each message's outcome, with a few quick
//! in-place retries of transient failures, and an outage is ridden out ([`RideOut`]) until every
//! message has an outcome that is not "dependency down".
//!
//! The decisions (which message gets an outcome without being handled, which are handled
//! again, what an outage becomes under [`OutagePolicy::DeadLetter`]) are pure functions, unit
//! tested below; the async methods only call the handler, sleep and count.

use std::sync::atomic::Ordering;

use futures::future::join_all;
use tokio_util::sync::CancellationToken;

use std::sync::Arc;

use super::newer::WaitForNewer;
use super::outage::RideOut;
use crate::consumer::batch::PreparedChunks;
use crate::consumer::partition_chunks::partition_chunks;
use crate::consumer::{ConsumerError, ConsumerStats, Handler, OutagePolicy};
use crate::dead_letter::Backoff;
use crate::message::{Delivery, Outcome};

/// The outcome a message gets without being handled: a permanent failure when its retry
/// metadata is unreadable (poison, parked by the DLQ worker); `None` for a message to handle.
pub(crate) fn outcome_without_handling(delivery: &Delivery) -> Option<Outcome> {
    delivery.retry_metadata_error.as_ref().map(|e| Outcome::permanent(e.to_string()))
}

/// Which of the messages just handled (`outcomes`, this attempt's, in order) are handled again
/// in place: the transient failures, while `attempt` (0 for the first call) is below
/// `max_retries` and no shutdown is requested. Positions are indices into `outcomes`.
///
/// Short on purpose: a consumer retrying in place holds up its partitions; what still fails
/// goes to the DLQ, whose retries wait without blocking anyone.
pub(crate) fn to_retry_in_place(
    outcomes: &[Outcome],
    attempt: u32,
    max_retries: u32,
    shutting_down: bool,
) -> Vec<usize> {
    if attempt >= max_retries || shutting_down {
        return Vec::new();
    }
    outcomes.iter().enumerate().filter(|(_, o)| o.is_transient()).map(|(i, _)| i).collect()
}

/// Under [`OutagePolicy::DeadLetter`], an outage is an ordinary transient failure; under
/// [`OutagePolicy::Pause`] it stays an outage, to be ridden out.
pub(crate) fn apply_outage_policy(policy: OutagePolicy, outcome: Outcome) -> Outcome {
    match (policy, outcome) {
        (OutagePolicy::DeadLetter, Outcome::DependencyDown { dependency, message }) => {
            Outcome::transient(format!("{dependency} down: {message}"))
        }
        (_, outcome) => outcome,
    }
}

pub(crate) struct Handle<H> {
    pub(crate) handler: Arc<H>,
    pub(crate) in_place_retries: u32,
    pub(crate) in_place_backoff: Backoff,
    pub(crate) outage_policy: OutagePolicy,
    pub(crate) partition_concurrency: usize,
    pub(crate) ride_out: RideOut,
    pub(crate) wait_for_newer: WaitForNewer,
    pub(crate) stats: Arc<ConsumerStats>,
}

impl<H: Handler> Handle<H> {
    /// Every message's outcome, in batch order, none of them "dependency down"; `None` when
    /// shutdown came during an outage (nothing of the batch may then be committed).
    pub(crate) async fn outcomes(
        &self,
        batch: &[Delivery],
        prepared: PreparedChunks,
        shutdown: &CancellationToken,
    ) -> Result<Option<Vec<Outcome>>, ConsumerError> {
        let mut outcomes = self.with_in_place_retries(batch, prepared, shutdown).await?;
        if outcomes.iter().any(Outcome::is_dependency_down) {
            // The probe is the messages that met the outage, handled again.
            let probe =
                |subset: Vec<Delivery>| async move { self.with_in_place_retries(&subset, Vec::new(), shutdown).await };
            if !self.ride_out.ride_out(batch, &mut outcomes, shutdown, probe).await? {
                return Ok(None);
            }
        }
        Ok(Some(outcomes))
    }

    /// Stops each partition before its first message for a newer consumer; returns the
    /// positions that wait (see `newer.rs`): the settle and commit stages leave them alone.
    pub(crate) fn hold_for_newer(&self, batch: &[Delivery], outcomes: &mut [Outcome]) -> Vec<usize> {
        self.wait_for_newer.hold(batch, outcomes)
    }

    /// Calls the handler; transient failures are retried in place a few times with backoff.
    /// `prepared` (empty when the batch was not prepared) serves the first call, if that call
    /// is for the whole batch.
    async fn with_in_place_retries(
        &self,
        batch: &[Delivery],
        mut prepared: PreparedChunks,
        shutdown: &CancellationToken,
    ) -> Result<Vec<Outcome>, ConsumerError> {
        let mut outcomes: Vec<Option<Outcome>> = batch
            .iter()
            .map(|d| self.wait_for_newer.outcome_without_handling(d).or_else(|| outcome_without_handling(d)))
            .collect();
        let mut pending: Vec<usize> = (0..batch.len()).filter(|&i| outcomes[i].is_none()).collect();
        let mut attempt = 0;
        while !pending.is_empty() {
            let started = std::time::Instant::now();
            let results = if pending.len() == batch.len() {
                self.handle_by_partition(batch, std::mem::take(&mut prepared)).await?
            } else {
                let subset: Vec<Delivery> = pending.iter().map(|&i| batch[i].clone()).collect();
                self.handle_by_partition(&subset, Vec::new()).await?
            };
            self.stats.stages.record("handle", started.elapsed());
            let results: Vec<Outcome> =
                results.into_iter().map(|o| apply_outage_policy(self.outage_policy, o)).collect();
            let again = to_retry_in_place(&results, attempt, self.in_place_retries, shutdown.is_cancelled());
            let still_failing: Vec<usize> = again.iter().map(|&j| pending[j]).collect();
            for (&i, outcome) in pending.iter().zip(results) {
                outcomes[i] = Some(outcome);
            }
            if still_failing.is_empty() {
                break;
            }
            let delay = self.in_place_backoff.delay(attempt);
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
    /// returns the outcomes in the batch's order. Chunks that were `prepared` for exactly this
    /// batch go to [`Handler::handle_prepared`] with what was prepared.
    async fn handle_by_partition(
        &self,
        batch: &[Delivery],
        prepared: PreparedChunks,
    ) -> Result<Vec<Outcome>, ConsumerError> {
        let (chunks, results) = if prepared.last().is_some_and(|(chunk, _)| chunk.end == batch.len()) {
            let chunks: Vec<_> = prepared.iter().map(|(chunk, _)| chunk.clone()).collect();
            let calls =
                prepared.into_iter().map(|(chunk, prepared)| self.handler.handle_prepared(&batch[chunk], prepared));
            (chunks, join_all(calls).await)
        } else {
            let partitions: Vec<(&str, i32)> = batch.iter().map(|d| (d.topic.as_str(), d.partition)).collect();
            let chunks = partition_chunks(&partitions, self.partition_concurrency);
            let results = join_all(chunks.iter().map(|chunk| self.handler.handle_batch(&batch[chunk.clone()]))).await;
            (chunks, results)
        };
        let mut outcomes = Vec::with_capacity(batch.len());
        for (chunk, result) in chunks.iter().zip(results) {
            if result.len() != chunk.len() {
                return Err(ConsumerError::HandlerContract { expected: chunk.len(), got: result.len() });
            }
            outcomes.extend(result);
        }
        Ok(outcomes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::retry_metadata::MetadataError;

    fn delivery(retry_metadata_error: Option<MetadataError>) -> Delivery {
        Delivery {
            topic: "t".into(),
            partition: 0,
            offset: 0,
            key: None,
            payload: None,
            headers: Vec::new(),
            timestamp_ms: None,
            retry: None,
            retry_metadata_error,
        }
    }

    #[test]
    fn poison_is_a_permanent_failure_without_being_handled() {
        assert_eq!(outcome_without_handling(&delivery(None)), None, "a readable message is handled");
        let poison = delivery(Some(MetadataError("negative retry count -1".into())));
        assert_eq!(
            outcome_without_handling(&poison),
            Some(Outcome::permanent("unreadable retry metadata: negative retry count -1"))
        );
    }

    fn mixed() -> Vec<Outcome> {
        vec![
            Outcome::Done,
            Outcome::transient("timeout"),
            Outcome::rejected("duplicate e-mail"),
            Outcome::permanent("bad payload"),
            Outcome::transient("deadlock"),
            Outcome::dependency_down("mariadb", "connection refused"),
        ]
    }

    #[test]
    fn only_transient_failures_are_retried_in_place() {
        assert_eq!(to_retry_in_place(&mixed(), 0, 3, false), vec![1, 4], "not done, rejected, permanent or an outage");
    }

    #[test]
    fn in_place_retries_stop_after_the_last_one_allowed() {
        assert_eq!(to_retry_in_place(&mixed(), 2, 3, false), vec![1, 4], "the third retry is still made");
        assert!(to_retry_in_place(&mixed(), 3, 3, false).is_empty(), "after 3 retries, to the DLQ");
        assert!(to_retry_in_place(&mixed(), 0, 0, false).is_empty(), "0 disables in-place retries");
    }

    #[test]
    fn shutdown_stops_in_place_retries() {
        assert!(to_retry_in_place(&mixed(), 0, 3, true).is_empty(), "a stopping consumer hands failures on");
    }

    #[test]
    fn an_outage_becomes_a_transient_failure_only_under_the_dead_letter_policy() {
        let down = || Outcome::dependency_down("mariadb", "connection refused");
        assert_eq!(apply_outage_policy(OutagePolicy::Pause, down()), down());
        assert_eq!(
            apply_outage_policy(OutagePolicy::DeadLetter, down()),
            Outcome::transient("mariadb down: connection refused")
        );
        assert_eq!(apply_outage_policy(OutagePolicy::DeadLetter, Outcome::Done), Outcome::Done);
        let dead_lettered = apply_outage_policy(OutagePolicy::DeadLetter, down());
        assert_eq!(to_retry_in_place(&[dead_lettered], 0, 3, false), vec![0], "and is retried in place as such");
    }
}

//! Settling a batch: counting what is done or rejected, handing failures to their dead-letter
//! topic, and stopping where the dead-letter flood guard says so.

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::future::join_all;
use tokio_util::sync::CancellationToken;

use super::handler::Handler;
use super::{ConsumerError, ReliableConsumer};
use crate::backoff::Backoff;
use crate::dead_letter_limit::HaltReason;
use crate::delivery::Delivery;
use crate::outcome::{Failure, FailureKind, Outcome};

/// What became of a batch.
pub(super) enum Settled {
    /// Every message has a durable outcome: commit the batch.
    Durable,
    /// Shutdown came first (a DLQ hand-off or an outage not over): commit nothing of it.
    Interrupted,
    /// The dead-letter flood limit tripped at message `durable`: the messages before it have
    /// durable outcomes, the rest must stay uncommitted.
    Halted { durable: usize, reason: HaltReason },
}

impl<H: Handler> ReliableConsumer<H> {
    /// Gives every message of the batch a durable outcome, or says why it could not.
    pub(super) async fn settle(
        &self,
        batch: &[Delivery],
        shutdown: &CancellationToken,
    ) -> Result<Settled, ConsumerError> {
        let mut outcomes = self.handle_with_in_place_retries(batch, shutdown).await?;
        if outcomes.iter().any(Outcome::is_dependency_down)
            && !self.ride_out_outage(batch, &mut outcomes, shutdown).await?
        {
            return Ok(Settled::Interrupted);
        }
        let mut failures = Vec::new();
        let mut halted = None;
        {
            let mut guard = self.flood_guard.lock().unwrap_or_else(|p| p.into_inner());
            for (i, (delivery, outcome)) in batch.iter().zip(&outcomes).enumerate() {
                let permanent = match outcome {
                    Outcome::Failed(f) if f.kind == FailureKind::Permanent => Some(f.message.as_str()),
                    _ => None,
                };
                if let Some(reason) = guard.observe(permanent) {
                    halted = Some((i, reason));
                    break;
                }
                match outcome {
                    Outcome::Done => {
                        self.stats.done.fetch_add(1, Ordering::Relaxed);
                    }
                    Outcome::Rejected { reason } => {
                        self.stats.rejected.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(position = %delivery.position(), %reason, "rejected");
                    }
                    Outcome::Failed(failure) => failures.push((delivery, failure.clone())),
                    Outcome::DependencyDown { .. } => {
                        unreachable!("outages are ridden out before outcomes are settled")
                    }
                }
            }
        }
        let routed = match failures.is_empty() {
            true => true,
            false => self.stats.stages.time("dead_letter", self.route_to_dead_letter_topic(failures, shutdown)).await,
        };
        if !routed {
            return Ok(Settled::Interrupted);
        }
        Ok(match halted {
            Some((durable, reason)) => Settled::Halted { durable, reason },
            None => Settled::Durable,
        })
    }

    /// Publishes every failure to its DLQ and waits for `acks=all`. A DLQ write that fails
    /// (broker down) is retried until it succeeds: the offset cannot be committed before.
    async fn route_to_dead_letter_topic(
        &self,
        mut failures: Vec<(&Delivery, Failure)>,
        shutdown: &CancellationToken,
    ) -> bool {
        let mut attempt = 0;
        while !failures.is_empty() {
            let results = join_all(failures.iter().map(|(d, f)| self.dead_letters.publish(d, f))).await;
            let mut unsent = Vec::new();
            for ((delivery, failure), result) in failures.into_iter().zip(results) {
                match result {
                    Ok(stored) => {
                        let counter = match failure.kind {
                            FailureKind::Transient => &self.stats.dead_lettered_transient,
                            FailureKind::Permanent => &self.stats.dead_lettered_permanent,
                        };
                        counter.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(
                            position = %delivery.position(),
                            kind = %failure.kind,
                            error = %failure.message,
                            retry_count = delivery.retry_count(),
                            dlq_partition = stored.partition,
                            dlq_offset = stored.offset,
                            "handed to the dead-letter topic"
                        );
                    }
                    Err(e) => {
                        tracing::error!(position = %delivery.position(), error = %e, "dead-letter write failed; will retry");
                        unsent.push((delivery, failure));
                    }
                }
            }
            if unsent.is_empty() {
                break;
            }
            if shutdown.is_cancelled() {
                return false;
            }
            let delay = Backoff::exponential(Duration::from_millis(250), 2.0, Duration::from_secs(5)).delay(attempt);
            tokio::select! {
                _ = shutdown.cancelled() => return false,
                _ = tokio::time::sleep(delay) => {}
            }
            attempt += 1;
            failures = unsent;
        }
        true
    }
}

//! The third stage, [`Settle`]: counting what is done or rejected, handing failures to their
//! dead-letter topic, and stopping where the dead-letter flood guard says so. What it returns,
//! [`Settled`], says what the commit stage may commit.
//!
//! The decisions are pure functions, unit tested below: [`route`] (which outcome is counted
//! how, which go to the DLQ, where the flood guard halts) and [`settled`] (what became of the
//! batch, and so what may be committed). The async methods only write and count.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::join_all;
use tokio_util::sync::CancellationToken;

use crate::consumer::ConsumerStats;
use crate::dead_letter::{Backoff, DeadLetterPublisher, FloodGuard, HaltReason};
use crate::message::{Delivery, Failure, FailureKind, Outcome};

/// What became of a batch.
#[derive(Debug, PartialEq)]
pub(crate) enum Settled {
    /// Every message has a durable outcome: commit the batch.
    Durable,
    /// Shutdown came first (a DLQ hand-off or an outage not over): commit nothing of it.
    Interrupted,
    /// The dead-letter flood limit tripped at message `durable`: the messages before it have
    /// durable outcomes, the rest must stay uncommitted.
    Halted { durable: usize, reason: HaltReason },
}

/// Where each outcome of a batch goes, decided before anything is written. Positions are
/// indices into the batch.
#[derive(Debug, PartialEq)]
pub(crate) struct Routing<'a> {
    /// Messages handled successfully: counted as done.
    pub(crate) done: u64,
    /// Messages rejected for a business reason (the handler recorded it): counted and logged.
    pub(crate) rejected: Vec<(usize, &'a str)>,
    /// Failures, transient or permanent, to hand to the dead-letter topic, in batch order.
    pub(crate) dead_letters: Vec<(usize, &'a Failure)>,
    /// The message at which the flood guard halted, and why: it and every later message are
    /// left alone (uncommitted), so a restart after the fix starts there.
    pub(crate) halt: Option<(usize, HaltReason)>,
}

/// Routes `outcomes` (in batch order, outages already ridden out) through the flood `guard`,
/// which remembers the permanent failures of earlier batches.
///
/// # Panics
/// On a `DependencyDown` outcome: outages are ridden out before outcomes are settled.
pub(crate) fn route<'a>(outcomes: &'a [Outcome], guard: &mut FloodGuard) -> Routing<'a> {
    let mut routing = Routing { done: 0, rejected: Vec::new(), dead_letters: Vec::new(), halt: None };
    for (i, outcome) in outcomes.iter().enumerate() {
        // Neither settled nor a failure: it waits for a newer consumer (`newer.rs`).
        if outcome.is_newer_than_consumer() {
            continue;
        }
        let permanent = match outcome {
            Outcome::Failed(f) if f.kind == FailureKind::Permanent => Some(f.message.as_str()),
            _ => None,
        };
        if let Some(reason) = guard.observe(permanent) {
            routing.halt = Some((i, reason));
            break;
        }
        match outcome {
            Outcome::Done => routing.done += 1,
            Outcome::Rejected { reason } => routing.rejected.push((i, reason.as_str())),
            Outcome::Failed(failure) => routing.dead_letters.push((i, failure)),
            Outcome::DependencyDown { .. } => unreachable!("outages are ridden out before outcomes are settled"),
            Outcome::NewerThanConsumer { .. } => unreachable!("skipped above"),
        }
    }
    routing
}

/// What became of a batch once its dead letters were handed over (`routed`) or not (shutdown
/// came first), given where the flood guard halted, if it did.
pub(crate) fn settled(routed: bool, halt: Option<(usize, HaltReason)>) -> Settled {
    match (routed, halt) {
        (false, _) => Settled::Interrupted,
        (true, Some((durable, reason))) => Settled::Halted { durable, reason },
        (true, None) => Settled::Durable,
    }
}

/// The counter a dead letter of `kind` counts in once the DLQ has it.
pub(crate) fn dead_lettered_counter(stats: &ConsumerStats, kind: FailureKind) -> &AtomicU64 {
    match kind {
        FailureKind::Transient => &stats.dead_lettered_transient,
        FailureKind::Permanent => &stats.dead_lettered_permanent,
    }
}

pub(crate) struct Settle {
    pub(crate) dead_letters: DeadLetterPublisher,
    /// Remembers the permanent failures of earlier batches.
    pub(crate) flood_guard: Mutex<FloodGuard>,
    pub(crate) stats: Arc<ConsumerStats>,
}

impl Settle {
    /// Gives every message of the batch a durable outcome from its handling's `outcomes` (in
    /// batch order, outages already ridden out), or says why it could not.
    pub(crate) async fn settle(
        &self,
        batch: &[Delivery],
        outcomes: &[Outcome],
        shutdown: &CancellationToken,
    ) -> Settled {
        let Routing { done, rejected, dead_letters, halt } = {
            let mut guard = self.flood_guard.lock().unwrap_or_else(|p| p.into_inner());
            route(outcomes, &mut guard)
        };
        self.stats.done.fetch_add(done, Ordering::Relaxed);
        for (i, reason) in rejected {
            self.stats.rejected.fetch_add(1, Ordering::Relaxed);
            tracing::info!(position = %batch[i].position(), %reason, "rejected");
        }
        let failures: Vec<(&Delivery, Failure)> =
            dead_letters.into_iter().map(|(i, f)| (&batch[i], f.clone())).collect();
        let routed = match failures.is_empty() {
            true => true,
            false => self.stats.stages.time("dead_letter", self.route_to_dead_letter_topic(failures, shutdown)).await,
        };
        settled(routed, halt)
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
                        dead_lettered_counter(&self.stats, failure.kind).fetch_add(1, Ordering::Relaxed);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dead_letter::DeadLetterLimit;

    fn no_limit() -> FloodGuard {
        FloodGuard::new(DeadLetterLimit::disabled())
    }

    fn at_most_in_a_row(max_consecutive: u32) -> FloodGuard {
        FloodGuard::new(DeadLetterLimit { max_consecutive, window: 0, max_share: 1.0 })
    }

    #[test]
    fn each_outcome_is_counted_once_and_failures_go_to_the_dead_letter_topic() {
        let outcomes = vec![
            Outcome::Done,
            Outcome::rejected("e-mail taken"),
            Outcome::transient("timeout"),
            Outcome::Done,
            Outcome::permanent("not JSON"),
        ];
        let routing = route(&outcomes, &mut no_limit());
        assert_eq!(routing.done, 2);
        assert_eq!(routing.rejected, vec![(1, "e-mail taken")]);
        let to_dlq: Vec<(usize, FailureKind)> = routing.dead_letters.iter().map(|(i, f)| (*i, f.kind)).collect();
        assert_eq!(to_dlq, vec![(2, FailureKind::Transient), (4, FailureKind::Permanent)], "transient and permanent");
        assert_eq!(routing.halt, None);
    }

    #[test]
    fn the_flood_guard_halts_at_the_tripping_message_and_settles_nothing_after_it() {
        let outcomes = vec![
            Outcome::Done,
            Outcome::permanent("bad 1"),
            Outcome::permanent("bad 2"),
            Outcome::permanent("bad 3"),
            Outcome::Done,
        ];
        let routing = route(&outcomes, &mut at_most_in_a_row(2));
        let (at, reason) = routing.halt.expect("the third permanent failure in a row trips a limit of 2");
        assert_eq!(at, 3);
        assert!(reason.summary.contains("2 consecutive"), "{reason}");
        assert_eq!(reason.first_failures, vec!["bad 1", "bad 2"]);
        let to_dlq: Vec<usize> = routing.dead_letters.iter().map(|(i, _)| *i).collect();
        assert_eq!(to_dlq, vec![1, 2], "the ones before it are dead-lettered");
        assert_eq!(routing.done, 1, "the message after it is not counted: it stays uncommitted");
    }

    #[test]
    fn the_flood_guard_counts_across_batches() {
        let mut guard = at_most_in_a_row(2);
        let first = vec![Outcome::permanent("bad 1"), Outcome::permanent("bad 2")];
        assert_eq!(route(&first, &mut guard).halt, None);
        let second = vec![Outcome::permanent("bad 3")];
        let routing = route(&second, &mut guard);
        assert_eq!(routing.halt.map(|(at, _)| at), Some(0), "the run goes on from the previous batch");
        assert!(routing.dead_letters.is_empty());
    }

    #[test]
    fn transient_failures_and_rejections_do_not_feed_the_flood_guard() {
        let outcomes: Vec<Outcome> = (0..10).map(|i| Outcome::transient(format!("timeout {i}"))).collect();
        assert_eq!(route(&outcomes, &mut at_most_in_a_row(1)).halt, None);
        let outcomes: Vec<Outcome> = (0..10).map(|_| Outcome::rejected("e-mail taken")).collect();
        assert_eq!(route(&outcomes, &mut at_most_in_a_row(1)).halt, None);
    }

    #[test]
    #[should_panic(expected = "outages are ridden out")]
    fn an_outage_is_never_settled() {
        route(&[Outcome::dependency_down("mariadb", "connection refused")], &mut no_limit());
    }

    #[test]
    fn a_batch_is_durable_only_once_its_dead_letters_are_handed_over() {
        let reason = HaltReason { summary: "3 consecutive".into(), first_failures: Vec::new() };
        assert_eq!(settled(true, None), Settled::Durable);
        assert_eq!(settled(false, None), Settled::Interrupted, "shutdown before the DLQ had them: commit nothing");
        assert_eq!(settled(true, Some((4, reason.clone()))), Settled::Halted { durable: 4, reason: reason.clone() });
        assert_eq!(settled(false, Some((4, reason))), Settled::Interrupted, "not even the prefix");
    }

    #[test]
    fn dead_letters_are_counted_by_kind() {
        let stats = ConsumerStats::default();
        dead_lettered_counter(&stats, FailureKind::Transient).fetch_add(1, Ordering::Relaxed);
        dead_lettered_counter(&stats, FailureKind::Permanent).fetch_add(2, Ordering::Relaxed);
        assert_eq!(stats.dead_lettered_transient.load(Ordering::Relaxed), 1);
        assert_eq!(stats.dead_lettered_permanent.load(Ordering::Relaxed), 2);
    }
}

//! Canary redrive: redrive the first few messages of a selection, wait for what became of them,
//! and go on with the rest only if they went through; stop by itself, saying why, when the
//! redriven messages fail again past a threshold.
//!
//! After a bad deploy is rolled back, redriving thousands of parked messages at once tells the
//! operator afterwards whether the fix worked; a canary tells them after the first few, and
//! leaves the others parked when it did not.
//!
//! What became of a redriven message is an [`OutcomeJudge`]'s call. The library's
//! [`StatusJudge`] sees failures (the message parked again, or its request's status moved to
//! `retrying`, `parked` or `rejected` after the redrive); success is the service's own record
//! (a user row, say), which only the application can see, so a judge that can say "succeeded"
//! wraps this one (the dlq-worker's asks the gateway's status URL).

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::Serialize;
use sqlx::MySqlPool;

use super::message::ParkedMessage;
use super::redrive::{Rate, RedriveOutcome, Redriver};
use super::store::{ParkingError, LOG_TARGET};
use crate::request_status;

/// What became of one redriven message, so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", content = "detail", rename_all = "snake_case")]
pub enum Outcome {
    Succeeded,
    Failed(String),
    /// Nothing decisive yet (still in flight, or nothing can tell).
    Pending,
}

/// Tells what became of a message redriven at `redriven_at`.
pub trait OutcomeJudge: Send + Sync {
    fn outcome<'a>(&'a self, message: &'a ParkedMessage, redriven_at: DateTime<Utc>) -> BoxFuture<'a, Outcome>;
}

/// Failures as the parking lot and `request_status` record them; never `Succeeded`.
#[derive(Clone, Debug)]
pub struct StatusJudge {
    pool: MySqlPool,
}

impl StatusJudge {
    pub fn new(pool: MySqlPool) -> Self {
        Self { pool }
    }

    /// `Failed` when the message failed again after `redriven_at`, else `Pending`. A database
    /// error is `Pending` too: it proves nothing either way, and the canary's wait is bounded.
    pub async fn failure(&self, message: &ParkedMessage, redriven_at: DateTime<Utc>) -> Outcome {
        let Some(request_id) = message.request_id else { return Outcome::Pending };
        // MySQL's DATETIME(6) keeps microseconds; a status written in the same microsecond as
        // the redrive is not a later failure, hence the strict comparison.
        let parked_again: Result<i64, _> = sqlx::query_scalar(
            "SELECT COUNT(*) FROM parked_messages WHERE request_id = ? AND id <> ? AND parked_at > ?",
        )
        .bind(request_id.as_bytes().to_vec())
        .bind(message.id)
        .bind(redriven_at.naive_utc())
        .fetch_one(&self.pool)
        .await;
        if matches!(parked_again, Ok(n) if n > 0) {
            return Outcome::Failed("parked again".to_owned());
        }
        match request_status::fetch(&self.pool, request_id).await {
            Ok(Some(s)) if s.updated_at.and_utc() > redriven_at => {
                Outcome::Failed(format!("{}: {}", s.status, s.reason.unwrap_or_default()))
            }
            _ => Outcome::Pending,
        }
    }
}

impl OutcomeJudge for StatusJudge {
    fn outcome<'a>(&'a self, message: &'a ParkedMessage, redriven_at: DateTime<Utc>) -> BoxFuture<'a, Outcome> {
        Box::pin(self.failure(message, redriven_at))
    }
}

/// How a canary redrive proceeds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CanaryPlan {
    /// Redriven first, and all of them must succeed before any other is.
    pub canary: usize,
    /// After the canary, the redrive stops once more than this many redriven messages failed.
    pub max_failures: usize,
    /// How long to wait for the canary's outcomes (and, at the end, for the rest's).
    pub wait: Duration,
    /// How often outcomes are looked at while waiting.
    pub poll: Duration,
}

impl Default for CanaryPlan {
    fn default() -> Self {
        CanaryPlan { canary: 5, max_failures: 0, wait: Duration::from_secs(60), poll: Duration::from_millis(500) }
    }
}

/// Why a canary redrive stopped before the end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "stop", rename_all = "snake_case")]
pub enum CanaryStop {
    /// A canary message failed again: the fix did not work (or not for all of them).
    CanaryFailed { failed: Vec<u64>, reasons: Vec<String> },
    /// No outcome for some canary messages within the wait: nothing proves the fix works.
    CanaryUndecided { pending: Vec<u64> },
    /// A canary message could not be redriven at all (publish failed, gone).
    CanaryNotRedriven { ids: Vec<u64> },
    /// After the canary, more redriven messages failed than the threshold allows.
    TooManyFailures { failed: Vec<u64>, threshold: usize },
}

impl fmt::Display for CanaryStop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CanaryStop::CanaryFailed { failed, reasons } => {
                write!(f, "canary failed again: {} of the canary messages ({})", failed.len(), reasons.join("; "))
            }
            CanaryStop::CanaryUndecided { pending } => {
                write!(f, "no outcome within the wait for {} canary messages: not going on unproven", pending.len())
            }
            CanaryStop::CanaryNotRedriven { ids } => write!(f, "{} canary messages could not be redriven", ids.len()),
            CanaryStop::TooManyFailures { failed, threshold } => {
                write!(f, "{} redriven messages failed again, more than the threshold of {threshold}", failed.len())
            }
        }
    }
}

/// What a canary redrive did, message by message.
#[derive(Debug)]
pub struct CanaryReport {
    pub canary_ids: Vec<u64>,
    pub results: Vec<(u64, Result<RedriveOutcome, ParkingError>)>,
    /// The last outcome seen of each redriven message.
    pub outcomes: Vec<(u64, Outcome)>,
    /// Left parked because the redrive stopped.
    pub not_attempted: Vec<u64>,
    pub stopped: Option<CanaryStop>,
}

/// A redriven message being watched.
struct Watched {
    message: ParkedMessage,
    at: DateTime<Utc>,
    outcome: Outcome,
}

impl Redriver {
    /// Redrives `ids` (duplicates ignored) at `rate`, the first `plan.canary` as a canary; see
    /// the module docs. Every redrive leaves its audit row; a stop leaves one on each canary
    /// message saying why.
    pub async fn redrive_canary(
        &self,
        ids: &[u64],
        actor: &str,
        reason: Option<&str>,
        rate: Rate,
        plan: CanaryPlan,
        judge: &dyn OutcomeJudge,
    ) -> Result<CanaryReport, ParkingError> {
        let mut seen = HashSet::new();
        let unique: Vec<u64> = ids.iter().copied().filter(|id| seen.insert(*id)).collect();
        let split = plan.canary.max(1).min(unique.len());
        let (canary_ids, rest) = unique.split_at(split);
        let mut report = CanaryReport {
            canary_ids: canary_ids.to_vec(),
            results: Vec::new(),
            outcomes: Vec::new(),
            not_attempted: Vec::new(),
            stopped: None,
        };
        let mut watched = Vec::new();
        self.redrive_watched(canary_ids, actor, reason, rate, &mut report, &mut watched).await?;
        let not_redriven: Vec<u64> = canary_ids.iter().copied().filter(|id| !is_redriven(&report, *id)).collect();
        let stop = if !not_redriven.is_empty() {
            Some(CanaryStop::CanaryNotRedriven { ids: not_redriven })
        } else {
            wait_for_outcomes(&mut watched, judge, plan).await;
            let failed = failed(&watched);
            let pending: Vec<u64> =
                watched.iter().filter(|w| w.outcome == Outcome::Pending).map(|w| w.message.id).collect();
            if !failed.is_empty() {
                let reasons = watched.iter().filter_map(|w| match &w.outcome {
                    Outcome::Failed(r) => Some(r.clone()),
                    _ => None,
                });
                let mut reasons: Vec<String> = reasons.collect();
                reasons.dedup();
                Some(CanaryStop::CanaryFailed { failed, reasons })
            } else if !pending.is_empty() {
                Some(CanaryStop::CanaryUndecided { pending })
            } else {
                None
            }
        };
        if let Some(stop) = stop {
            return self.stopped(report, watched, rest, stop, actor).await;
        }
        // The canary went through: the rest in steps of the canary's size, judging as it goes.
        let step = plan.canary.max(1);
        for (n, chunk) in rest.chunks(step).enumerate() {
            self.redrive_watched(chunk, actor, reason, rate, &mut report, &mut watched).await?;
            judge_pending(&mut watched, judge).await;
            let failed = failed(&watched);
            if failed.len() > plan.max_failures {
                let untouched = &rest[((n + 1) * step).min(rest.len())..];
                let stop = CanaryStop::TooManyFailures { failed, threshold: plan.max_failures };
                return self.stopped(report, watched, untouched, stop, actor).await;
            }
        }
        wait_for_outcomes(&mut watched, judge, plan).await;
        let failed = failed(&watched);
        if failed.len() > plan.max_failures {
            let stop = CanaryStop::TooManyFailures { failed, threshold: plan.max_failures };
            return self.stopped(report, watched, &[], stop, actor).await;
        }
        report.outcomes = watched.into_iter().map(|w| (w.message.id, w.outcome)).collect();
        Ok(report)
    }

    /// Redrives `ids` at `rate`, adding each redriven one to `watched`.
    async fn redrive_watched(
        &self,
        ids: &[u64],
        actor: &str,
        reason: Option<&str>,
        rate: Rate,
        report: &mut CanaryReport,
        watched: &mut Vec<Watched>,
    ) -> Result<(), ParkingError> {
        let start = tokio::time::Instant::now();
        for (i, id) in ids.iter().copied().enumerate() {
            tokio::time::sleep_until(start + rate.interval().mul_f64(i as f64)).await;
            let message = self.lot().get(id).await?;
            let at = Utc::now();
            let result = self.redrive(id, actor, reason).await;
            if let (Some(message), Ok(RedriveOutcome::Redriven { .. })) = (message, &result) {
                watched.push(Watched { message, at, outcome: Outcome::Pending });
            }
            report.results.push((id, result));
        }
        Ok(())
    }

    async fn stopped(
        &self,
        mut report: CanaryReport,
        watched: Vec<Watched>,
        untouched: &[u64],
        stop: CanaryStop,
        actor: &str,
    ) -> Result<CanaryReport, ParkingError> {
        let why = stop.to_string();
        tracing::warn!(target: LOG_TARGET, event = "canary_stopped", actor, reason = %why,
            left_parked = untouched.len(), "canary redrive stopped");
        for id in &report.canary_ids {
            self.lot().audit(*id, "canary-stop", actor, Some(&why)).await?;
        }
        report.not_attempted = untouched.to_vec();
        report.outcomes = watched.into_iter().map(|w| (w.message.id, w.outcome)).collect();
        report.stopped = Some(stop);
        Ok(report)
    }
}

fn is_redriven(report: &CanaryReport, id: u64) -> bool {
    report.results.iter().any(|(i, r)| *i == id && matches!(r, Ok(RedriveOutcome::Redriven { .. })))
}

fn failed(watched: &[Watched]) -> Vec<u64> {
    watched.iter().filter(|w| matches!(w.outcome, Outcome::Failed(_))).map(|w| w.message.id).collect()
}

/// Looks once at every message without a decisive outcome yet.
async fn judge_pending(watched: &mut [Watched], judge: &dyn OutcomeJudge) {
    for w in watched.iter_mut().filter(|w| w.outcome == Outcome::Pending) {
        w.outcome = judge.outcome(&w.message, w.at).await;
    }
}

/// Until every watched message has an outcome, or `plan.wait` is over.
async fn wait_for_outcomes(watched: &mut [Watched], judge: &dyn OutcomeJudge, plan: CanaryPlan) {
    let deadline = tokio::time::Instant::now() + plan.wait;
    loop {
        judge_pending(watched, judge).await;
        if watched.iter().all(|w| w.outcome != Outcome::Pending) || tokio::time::Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep(plan.poll).await;
    }
}

//! The operator's operations on the parking lot, one set for its three clients: the admin API
//! (`admin.rs`), the console (`console/`) and the CLI (`cli.rs`). They differ in how they
//! read a request and show a result, never in what an action does or records.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use reliable_messaging::parking::{
    AuditEntry, CanaryPlan, CanaryStop, DiscardOutcome, Outcome, OutcomeJudge, ParkedFilter, ParkedMessage,
    ParkedState, ParkingError, ParkingLot, Rate, RedriveOutcome, Redriver, SignatureGroup,
};
use serde::Serialize;

use crate::metrics::Metrics;

/// Most messages one filtered redrive touches.
pub const MAX_FILTERED_REDRIVE: u32 = 10_000;

/// What to redrive.
#[derive(Debug, Clone)]
pub enum Selection {
    Ids(Vec<u64>),
    /// The parked messages matching the filter (a signature group is a filter too).
    Matching(ParkedFilter),
}

/// A redrive as asked for.
#[derive(Debug, Clone)]
pub struct RedriveRequest {
    pub selection: Selection,
    pub actor: String,
    pub reason: Option<String>,
    pub rate: Rate,
    /// Redrive as a canary (see `reliable_messaging::parking::CanaryPlan`).
    pub canary: Option<CanaryPlan>,
}

/// The result of one redrive or discard.
#[derive(Debug, Clone, Serialize)]
pub struct ItemResult {
    pub id: u64,
    /// `redriven`, `not_parked`, `not_found`, `failed`, `discarded`, or `left_parked` (a canary
    /// stopped before it).
    pub outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
    /// What became of it after a canary redrive: `succeeded`, `failed`, `pending`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<Outcome>,
}

impl ItemResult {
    pub fn plain(id: u64, outcome: &'static str, detail: Option<String>) -> Self {
        ItemResult { id, outcome, detail, topic: None, partition: None, offset: None, after: None }
    }

    fn failed(id: u64, e: ParkingError) -> Self {
        match e {
            ParkingError::NotFound(_) => ItemResult::plain(id, "not_found", None),
            other => ItemResult::plain(id, "failed", Some(other.to_string())),
        }
    }

    pub fn is_failure(&self) -> bool {
        matches!(self.outcome, "failed" | "not_found")
    }
}

/// What a redrive did.
#[derive(Debug, Clone, Serialize)]
pub struct RedriveReport {
    pub results: Vec<ItemResult>,
    /// The canary's ids, when it was one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub canary: Vec<u64>,
    /// Why a canary redrive stopped early, in words; none when it ran to the end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop: Option<CanaryStop>,
}

#[derive(Debug, thiserror::Error)]
pub enum OperationError {
    #[error(transparent)]
    Parking(#[from] ParkingError),
    #[error("{0}")]
    Invalid(String),
}

/// The parking lot's operations.
#[derive(Clone)]
pub struct Operator {
    pub parking: ParkingLot,
    pub redriver: Redriver,
    /// What became of redriven messages; none: canary redrives are refused.
    pub judge: Option<Arc<dyn OutcomeJudge>>,
    pub default_rate: Rate,
    pub metrics: Arc<Metrics>,
}

impl Operator {
    pub async fn groups(&self, filter: &ParkedFilter) -> Result<Vec<SignatureGroup>, OperationError> {
        Ok(self.parking.signature_groups(filter).await?)
    }

    /// One message and its audit trail; `None` when it does not exist.
    pub async fn show(&self, id: u64) -> Result<Option<(ParkedMessage, Vec<AuditEntry>)>, OperationError> {
        let Some(message) = self.parking.get(id).await? else { return Ok(None) };
        let audit = self.parking.audit_trail(id).await?;
        Ok(Some((message, audit)))
    }

    pub async fn redrive(&self, request: RedriveRequest) -> Result<RedriveReport, OperationError> {
        let ids = match &request.selection {
            Selection::Ids(ids) if ids.is_empty() => {
                return Err(OperationError::Invalid("give the ids to redrive".into()))
            }
            Selection::Ids(ids) => ids.clone(),
            Selection::Matching(filter) => {
                let filter = ParkedFilter {
                    state: Some(ParkedState::Parked),
                    limit: Some(filter.limit.unwrap_or(MAX_FILTERED_REDRIVE).min(MAX_FILTERED_REDRIVE)),
                    ..filter.clone()
                };
                self.parking.list(&filter).await?.into_iter().map(|s| s.id).collect()
            }
        };
        let reason = request.reason.as_deref();
        let Some(plan) = request.canary else {
            let results = self.redriver.redrive_many(&ids, &request.actor, reason, request.rate).await;
            let results = results.into_iter().map(|(id, r)| self.item(id, r)).collect();
            return Ok(RedriveReport { results, canary: Vec::new(), stopped: None, stop: None });
        };
        let judge = self.judge.as_deref().ok_or_else(|| {
            OperationError::Invalid("a canary redrive needs CANARY_STATUS_URL, to see what became of the canary".into())
        })?;
        let report = self.redriver.redrive_canary(&ids, &request.actor, reason, request.rate, plan, judge).await?;
        let mut results: Vec<ItemResult> = report.results.into_iter().map(|(id, r)| self.item(id, r)).collect();
        for item in &mut results {
            item.after = report.outcomes.iter().find(|(id, _)| *id == item.id).map(|(_, o)| o.clone());
        }
        let why = report.stopped.as_ref().map(|s| s.to_string());
        let left = || Some("not redriven: the canary stopped".to_owned());
        results.extend(report.not_attempted.iter().map(|id| ItemResult::plain(*id, "left_parked", left())));
        Ok(RedriveReport { results, canary: report.canary_ids, stopped: why, stop: report.stopped })
    }

    fn item(&self, id: u64, result: Result<RedriveOutcome, ParkingError>) -> ItemResult {
        match result {
            Ok(RedriveOutcome::Redriven { id, topic, partition, offset }) => {
                self.metrics.operator_redrives.fetch_add(1, Ordering::Relaxed);
                ItemResult {
                    id,
                    outcome: "redriven",
                    detail: None,
                    topic: Some(topic),
                    partition: Some(partition),
                    offset: Some(offset),
                    after: None,
                }
            }
            Ok(RedriveOutcome::NotParked { id, state }) => {
                ItemResult::plain(id, "not_parked", Some(format!("already {state}")))
            }
            Err(e) => ItemResult::failed(id, e),
        }
    }

    /// Discards each id once, with `reason` (required) in its audit row.
    pub async fn discard(&self, ids: &[u64], actor: &str, reason: &str) -> Result<Vec<ItemResult>, OperationError> {
        if reason.trim().is_empty() {
            return Err(OperationError::Invalid("a discard needs a reason".into()));
        }
        if ids.is_empty() {
            return Err(OperationError::Invalid("give the ids to discard".into()));
        }
        let mut items = Vec::with_capacity(ids.len());
        let mut seen = HashSet::new();
        for id in ids.iter().copied().filter(|id| seen.insert(*id)) {
            items.push(match self.parking.discard(id, actor, reason).await {
                Ok(DiscardOutcome::Discarded) => {
                    self.metrics.operator_discards.fetch_add(1, Ordering::Relaxed);
                    ItemResult::plain(id, "discarded", None)
                }
                Ok(DiscardOutcome::NotParked(s)) => ItemResult::plain(id, "not_parked", Some(format!("already {s}"))),
                Err(e) => ItemResult::failed(id, e),
            });
        }
        Ok(items)
    }
}

//! The parking-lot admin API, the HTTP twin of `dlq-worker parked ...`.
//!
//! | route | does |
//! |---|---|
//! | `GET /admin/parked?topic=&error_kind=&reason=&since=&state=&limit=` | list |
//! | `GET /admin/parked/{id}` | one message, whole, with its audit trail |
//! | `POST /admin/parked/redrive` `{"ids": [..]}` or `{"filter": {..}}`, `actor`, `reason`, `rate` | redrive |
//! | `POST /admin/parked/discard` `{"ids": [..], "reason": "..", "actor": ..}` | discard |
//!
//! Every route requires `Authorization: Bearer $ADMIN_TOKEN`; without a configured token the
//! routes are not mounted at all (404), so an unconfigured worker exposes no write access.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use reliable_messaging::parking::{
    DiscardOutcome, ParkedFilter, ParkedState, ParkingError, ParkingLot, Rate, RedriveOutcome, Redriver,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::metrics::Metrics;
use crate::problem::{self, Problem};

#[derive(Clone)]
pub struct AdminState {
    pub parking: ParkingLot,
    pub redriver: Redriver,
    pub default_rate: Rate,
    pub metrics: Arc<Metrics>,
}

/// The admin routes, behind the bearer-token check.
pub fn router(state: AdminState, token: String) -> Router {
    let token = Arc::new(token);
    Router::new()
        .route("/admin/parked", get(list))
        .route("/admin/parked/redrive", post(redrive))
        .route("/admin/parked/discard", post(discard))
        .route("/admin/parked/{id}", get(show))
        .route_layer(middleware::from_fn(move |request: Request, next: Next| {
            let token = token.clone();
            async move { require_bearer(&token, request, next).await }
        }))
        .with_state(state)
}

async fn require_bearer(token: &str, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(p) if constant_time_eq(p.as_bytes(), token.as_bytes()) => next.run(request).await,
        _ => problem::unauthorized().into_response(),
    }
}

/// Compares without returning early, so response time does not reveal how much of a guessed
/// token is right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn storage_problem(e: ParkingError) -> Problem {
    match e {
        ParkingError::NotFound(id) => problem::not_found(format!("parked message {id} does not exist")),
        other => {
            tracing::error!(error = %other, "admin request failed");
            problem::unavailable(other.to_string())
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilterParams {
    topic: Option<String>,
    error_kind: Option<String>,
    reason: Option<String>,
    since: Option<String>,
    state: Option<String>,
    limit: Option<u32>,
}

impl FilterParams {
    /// The problem is boxed: at ~170 bytes it would make every `Result` of this function that
    /// large (clippy::result_large_err); the handlers unbox it at the `?`.
    fn into_filter(self) -> Result<ParkedFilter, Box<Problem>> {
        let since = self
            .since
            .map(|s| DateTime::parse_from_rfc3339(&s).map(|t| t.with_timezone(&Utc)))
            .transpose()
            .map_err(|e| Box::new(problem::invalid(format!("since must be an RFC 3339 time: {e}"))))?;
        let state =
            self.state.map(|s| s.parse::<ParkedState>()).transpose().map_err(|e| Box::new(problem::invalid(e)))?;
        Ok(ParkedFilter {
            source_topic: self.topic,
            error_kind: self.error_kind,
            reason: self.reason,
            since,
            state,
            limit: self.limit,
        })
    }
}

async fn list(
    State(state): State<AdminState>,
    query: Result<Query<FilterParams>, QueryRejection>,
) -> Result<Json<serde_json::Value>, Problem> {
    let Query(params) = query.map_err(|e| problem::invalid(e.body_text()))?;
    let filter = params.into_filter().map_err(|p| *p)?;
    let items = state.parking.list(&filter).await.map_err(storage_problem)?;
    Ok(Json(json!({ "items": items })))
}

async fn show(
    State(state): State<AdminState>,
    id: Result<Path<u64>, PathRejection>,
) -> Result<Json<serde_json::Value>, Problem> {
    let Path(id) = id.map_err(|e| problem::invalid(e.body_text()))?;
    let message = state.parking.get(id).await.map_err(storage_problem)?;
    let message = message.ok_or_else(|| problem::not_found(format!("parked message {id} does not exist")))?;
    let audit = state.parking.audit_trail(id).await.map_err(storage_problem)?;
    let mut body = message.to_json();
    body["audit"] = serde_json::to_value(audit).expect("audit serialises");
    Ok(Json(body))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RedriveRequest {
    #[serde(default)]
    ids: Vec<u64>,
    filter: Option<FilterParams>,
    actor: Option<String>,
    reason: Option<String>,
    rate: Option<String>,
}

/// The result of one redrive or discard, as JSON.
#[derive(Debug, Serialize)]
struct ItemResult {
    id: u64,
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    topic: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    partition: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    offset: Option<i64>,
}

impl ItemResult {
    fn plain(id: u64, outcome: &'static str, detail: Option<String>) -> Self {
        ItemResult { id, outcome, detail, topic: None, partition: None, offset: None }
    }

    fn failed(id: u64, e: ParkingError) -> Self {
        match e {
            ParkingError::NotFound(_) => ItemResult::plain(id, "not_found", None),
            other => ItemResult::plain(id, "failed", Some(other.to_string())),
        }
    }
}

async fn redrive(
    State(state): State<AdminState>,
    body: Result<Json<RedriveRequest>, JsonRejection>,
) -> Result<Json<serde_json::Value>, Problem> {
    let Json(request) = body.map_err(|e| problem::invalid(e.body_text()))?;
    let rate = match request.rate.as_deref() {
        Some(r) => r.parse::<Rate>().map_err(problem::invalid)?,
        None => state.default_rate,
    };
    let actor = request.actor.unwrap_or_else(|| "admin-api".to_owned());
    let reason = request.reason.as_deref();
    let results = match (request.ids.is_empty(), request.filter) {
        (false, None) => state.redriver.redrive_many(&request.ids, &actor, reason, rate).await,
        (true, Some(filter)) => {
            let filter = filter.into_filter().map_err(|p| *p)?;
            state.redriver.redrive_matching(&filter, &actor, reason, rate).await.map_err(storage_problem)?
        }
        _ => return Err(problem::invalid("give either ids or a filter")),
    };
    let items: Vec<ItemResult> = results
        .into_iter()
        .map(|(id, result)| match result {
            Ok(RedriveOutcome::Redriven { id, topic, partition, offset }) => {
                state.metrics.operator_redrives.fetch_add(1, Ordering::Relaxed);
                ItemResult {
                    id,
                    outcome: "redriven",
                    detail: None,
                    topic: Some(topic),
                    partition: Some(partition),
                    offset: Some(offset),
                }
            }
            Ok(RedriveOutcome::NotParked { id, state }) => {
                ItemResult::plain(id, "not_parked", Some(format!("already {state}")))
            }
            Err(e) => ItemResult::failed(id, e),
        })
        .collect();
    Ok(Json(json!({ "results": items })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DiscardRequest {
    ids: Vec<u64>,
    reason: String,
    actor: Option<String>,
}

async fn discard(
    State(state): State<AdminState>,
    body: Result<Json<DiscardRequest>, JsonRejection>,
) -> Result<Json<serde_json::Value>, Problem> {
    let Json(request) = body.map_err(|e| problem::invalid(e.body_text()))?;
    if request.reason.trim().is_empty() {
        return Err(problem::invalid("a discard needs a reason"));
    }
    if request.ids.is_empty() {
        return Err(problem::invalid("give the ids to discard"));
    }
    let actor = request.actor.unwrap_or_else(|| "admin-api".to_owned());
    let mut items = Vec::with_capacity(request.ids.len());
    let mut seen = std::collections::HashSet::new();
    for id in request.ids.into_iter().filter(|id| seen.insert(*id)) {
        items.push(match state.parking.discard(id, &actor, &request.reason).await {
            Ok(DiscardOutcome::Discarded) => {
                state.metrics.operator_discards.fetch_add(1, Ordering::Relaxed);
                ItemResult::plain(id, "discarded", None)
            }
            Ok(DiscardOutcome::NotParked(s)) => ItemResult::plain(id, "not_parked", Some(format!("already {s}"))),
            Err(e) => ItemResult::failed(id, e),
        });
    }
    Ok(Json(json!({ "results": items })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret-longer"));
    }

    #[test]
    fn filter_params_are_validated() {
        let bad = FilterParams { since: Some("yesterday".into()), ..Default::default() };
        assert!(bad.into_filter().is_err());
        let bad_state = FilterParams { state: Some("gone".into()), ..Default::default() };
        assert!(bad_state.into_filter().is_err());
        let ok = FilterParams {
            since: Some("2026-11-26T10:00:00Z".into()),
            state: Some("parked".into()),
            ..Default::default()
        };
        let f = ok.into_filter().unwrap();
        assert_eq!(f.state, Some(ParkedState::Parked));
        assert!(f.since.is_some());
    }
}

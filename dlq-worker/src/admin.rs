//! The parking-lot admin API, the HTTP twin of `dlq-worker parked ...` and of the console; all
//! three call the same [`Operator`].
//!
//! | route | does |
//! |---|---|
//! | `GET /admin/parked?topic=&error_kind=&reason=&since=&until=&state=&request_id=&key=&signature=&limit=` | list |
//! | `GET /admin/parked/{id}` | one message, whole, with its audit trail |
//! | `GET /admin/signatures?` (the list's filters) | parked messages grouped by failure signature |
//! | `POST /admin/parked/redrive` `{"ids": [..]}` or `{"filter": {..}}`, `reason`, `rate`, `canary` | redrive |
//! | `POST /admin/parked/discard` `{"ids": [..], "reason": ".."}` | discard |
//! | `GET /admin/audit?limit=` | the latest operator actions |
//! | `POST /admin/erasures` `{"email": "..", "reason": ".."}` | erase an address's accounts (`erasure.rs`) |
//!
//! Every route requires `Authorization: Bearer <token>` of a configured admin token, whose name
//! is the actor of the audit rows; without any token the routes are not mounted at all (404), so
//! an unconfigured worker exposes no write access.

use std::time::Duration;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use chrono::{DateTime, Utc};
use reliable_messaging::parking::{CanaryPlan, ParkedFilter, ParkedState, ParkingError, Rate};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::admin_tokens::{AdminTokens, LEGACY_NAME};
use crate::operations::{OperationError, Operator, RedriveRequest as Redrive, Selection};
use crate::problem::{self, Problem};

/// Who is acting: the name of the admin token (or console session) the request came with.
#[derive(Clone, Debug)]
pub struct Actor(pub String);

/// The admin routes, behind the bearer-token check.
pub fn router(operator: Operator, tokens: AdminTokens) -> Router {
    Router::new()
        .route("/admin/parked", get(list))
        .route("/admin/parked/redrive", post(redrive))
        .route("/admin/parked/discard", post(discard))
        .route("/admin/parked/{id}", get(show))
        .route("/admin/signatures", get(signatures))
        .route("/admin/audit", get(audit))
        .route_layer(middleware::from_fn(move |request: Request, next: Next| {
            let tokens = tokens.clone();
            async move { require_bearer(&tokens, request, next).await }
        }))
        .with_state(operator)
}

pub(crate) async fn require_bearer(tokens: &AdminTokens, mut request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented.and_then(|p| tokens.authenticate(p)) {
        Some(name) => {
            request.extensions_mut().insert(Actor(name));
            next.run(request).await
        }
        None => problem::unauthorized().into_response(),
    }
}

/// The actor of an API action: the token's name. The `actor` field of a request is accepted
/// only with the unnamed `ADMIN_TOKEN` (which has no name of its own, as before) or when it
/// names the token's own holder; a named token cannot act as someone else.
/// The problem is boxed for the same reason as in [`FilterParams::into_filter`].
fn acting(token: &Actor, claimed: Option<String>) -> Result<String, Box<Problem>> {
    match claimed {
        None => Ok(token.0.clone()),
        Some(c) if token.0 == LEGACY_NAME || c == token.0 => Ok(c),
        Some(_) => {
            Err(Box::new(problem::invalid("actor is the admin token's name; a named token cannot act as another")))
        }
    }
}

pub(crate) fn operation_problem(e: OperationError) -> Problem {
    match e {
        OperationError::Invalid(detail) => problem::invalid(detail),
        OperationError::Parking(ParkingError::NotFound(id)) => {
            problem::not_found(format!("parked message {id} does not exist"))
        }
        OperationError::Parking(other) => {
            tracing::error!(error = %other, "admin request failed");
            problem::unavailable(other.to_string())
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FilterParams {
    pub(crate) topic: Option<String>,
    pub(crate) error_kind: Option<String>,
    pub(crate) reason: Option<String>,
    pub(crate) since: Option<String>,
    pub(crate) until: Option<String>,
    pub(crate) state: Option<String>,
    pub(crate) request_id: Option<String>,
    pub(crate) key: Option<String>,
    pub(crate) signature: Option<String>,
    pub(crate) limit: Option<u32>,
}

impl FilterParams {
    /// The problem is boxed: at ~170 bytes it would make every `Result` of this function that
    /// large (clippy::result_large_err); the handlers unbox it at the `?`.
    pub(crate) fn into_filter(self) -> Result<ParkedFilter, Box<Problem>> {
        let time = |name: &str, v: Option<String>| {
            v.filter(|s| !s.trim().is_empty())
                .map(|s| DateTime::parse_from_rfc3339(s.trim()).map(|t| t.with_timezone(&Utc)))
                .transpose()
                .map_err(|e| Box::new(problem::invalid(format!("{name} must be an RFC 3339 time: {e}"))))
        };
        let since = time("since", self.since)?;
        let until = time("until", self.until)?;
        let state = self
            .state
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.parse::<ParkedState>())
            .transpose()
            .map_err(|e| Box::new(problem::invalid(e)))?;
        let request_id = self
            .request_id
            .filter(|r| !r.trim().is_empty())
            .map(|r| Uuid::parse_str(r.trim()))
            .transpose()
            .map_err(|e| Box::new(problem::invalid(format!("request_id must be a UUID: {e}"))))?;
        let some = |v: Option<String>| v.filter(|v| !v.trim().is_empty());
        Ok(ParkedFilter {
            source_topic: some(self.topic),
            error_kind: some(self.error_kind),
            reason: some(self.reason),
            since,
            until,
            state,
            limit: self.limit,
            request_id,
            key: some(self.key),
            signature: some(self.signature),
        })
    }
}

async fn list(
    State(op): State<Operator>,
    query: Result<Query<FilterParams>, QueryRejection>,
) -> Result<Json<serde_json::Value>, Problem> {
    let Query(params) = query.map_err(|e| problem::invalid(e.body_text()))?;
    let filter = params.into_filter().map_err(|p| *p)?;
    let items = op.parking.list(&filter).await.map_err(|e| operation_problem(e.into()))?;
    Ok(Json(json!({ "items": items })))
}

async fn signatures(
    State(op): State<Operator>,
    query: Result<Query<FilterParams>, QueryRejection>,
) -> Result<Json<serde_json::Value>, Problem> {
    let Query(params) = query.map_err(|e| problem::invalid(e.body_text()))?;
    let filter = params.into_filter().map_err(|p| *p)?;
    let groups = op.groups(&filter).await.map_err(operation_problem)?;
    Ok(Json(json!({ "groups": groups })))
}

async fn show(
    State(op): State<Operator>,
    id: Result<Path<u64>, PathRejection>,
) -> Result<Json<serde_json::Value>, Problem> {
    let Path(id) = id.map_err(|e| problem::invalid(e.body_text()))?;
    let (message, audit) = op
        .show(id)
        .await
        .map_err(operation_problem)?
        .ok_or_else(|| problem::not_found(format!("parked message {id} does not exist")))?;
    let mut body = message.to_json();
    body["audit"] = serde_json::to_value(audit).expect("audit serialises");
    Ok(Json(body))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditParams {
    limit: Option<u32>,
}

async fn audit(
    State(op): State<Operator>,
    query: Result<Query<AuditParams>, QueryRejection>,
) -> Result<Json<serde_json::Value>, Problem> {
    let Query(params) = query.map_err(|e| problem::invalid(e.body_text()))?;
    let entries =
        op.parking.recent_audit(params.limit.unwrap_or(100)).await.map_err(|e| operation_problem(e.into()))?;
    Ok(Json(json!({ "audit": entries })))
}

/// The canary options of a redrive.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CanaryParams {
    /// How many to redrive first (default 5).
    pub size: Option<usize>,
    /// After the canary, stop once more than this many failed again (default 0).
    pub max_failures: Option<usize>,
    /// How long to wait for the canary's outcomes, seconds (default 60, at most 600).
    pub wait_seconds: Option<u64>,
}

impl CanaryParams {
    pub(crate) fn plan(&self) -> CanaryPlan {
        let default = CanaryPlan::default();
        CanaryPlan {
            canary: self.size.unwrap_or(default.canary).max(1),
            max_failures: self.max_failures.unwrap_or(default.max_failures),
            wait: self.wait_seconds.map_or(default.wait, |s| Duration::from_secs(s.clamp(1, 600))),
            poll: default.poll,
        }
    }
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
    canary: Option<CanaryParams>,
}

async fn redrive(
    State(op): State<Operator>,
    Extension(token): Extension<Actor>,
    body: Result<Json<RedriveRequest>, JsonRejection>,
) -> Result<Json<serde_json::Value>, Problem> {
    let Json(request) = body.map_err(|e| problem::invalid(e.body_text()))?;
    let rate = match request.rate.as_deref() {
        Some(r) => r.parse::<Rate>().map_err(problem::invalid)?,
        None => op.default_rate,
    };
    let selection = match (request.ids.is_empty(), request.filter) {
        (false, None) => Selection::Ids(request.ids),
        (true, Some(filter)) => Selection::Matching(filter.into_filter().map_err(|p| *p)?),
        _ => return Err(problem::invalid("give either ids or a filter")),
    };
    let redrive = Redrive {
        selection,
        actor: acting(&token, request.actor).map_err(|p| *p)?,
        reason: request.reason,
        rate,
        canary: request.canary.map(|c| c.plan()),
    };
    let report = op.redrive(redrive).await.map_err(operation_problem)?;
    Ok(Json(serde_json::to_value(report).expect("report serialises")))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DiscardRequest {
    ids: Vec<u64>,
    reason: String,
    actor: Option<String>,
}

async fn discard(
    State(op): State<Operator>,
    Extension(token): Extension<Actor>,
    body: Result<Json<DiscardRequest>, JsonRejection>,
) -> Result<Json<serde_json::Value>, Problem> {
    let Json(request) = body.map_err(|e| problem::invalid(e.body_text()))?;
    let actor = acting(&token, request.actor).map_err(|p| *p)?;
    let items = op.discard(&request.ids, &actor, &request.reason).await.map_err(operation_problem)?;
    Ok(Json(json!({ "results": items })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_token_cannot_act_as_another() {
        let alice = Actor("alice".into());
        assert_eq!(acting(&alice, None).unwrap(), "alice");
        assert_eq!(acting(&alice, Some("alice".into())).unwrap(), "alice");
        assert!(acting(&alice, Some("bob".into())).is_err());
        assert_eq!(acting(&Actor(LEGACY_NAME.into()), Some("carol".into())).unwrap(), "carol");
    }

    #[test]
    fn filter_params_are_validated() {
        let bad = FilterParams { since: Some("yesterday".into()), ..Default::default() };
        assert!(bad.into_filter().is_err());
        let bad_until = FilterParams { until: Some("tomorrow".into()), ..Default::default() };
        assert!(bad_until.into_filter().unwrap_err().detail.unwrap().starts_with("until must be"));
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

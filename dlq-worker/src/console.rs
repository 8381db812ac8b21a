//! The operator console at `/console`, on the worker's admin port: the pipeline at a glance
//! (readiness, consumer lag per partition, the DLQ, an hourly chart of dead letters and parkings),
//! parked messages grouped by failure signature, one message whole (secrets masked), and the
//! redrive (canary) and discard actions, all through the same [`Operator`] as the admin API
//! and the CLI.
//!
//! Login takes an admin token and yields a session cookie (`session.rs`); every POST carries the
//! session's CSRF token, and a missing or wrong one is refused (403) before anything is done.

mod lag;
mod mask;
mod pages;
pub mod session;

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::Markup;
use reliable_messaging::parking::{ParkedState, Rate};
use reliable_messaging::service::endpoints::health::Readiness;
use serde::Deserialize;

use crate::admin::{CanaryParams, FilterParams};
use crate::admin_tokens::AdminTokens;
use crate::dead_letter_log;
use crate::operations::{OperationError, Operator, RedriveRequest, Selection};
use session::{Session, Sessions};

/// Hours the overview's chart covers.
const CHART_HOURS: u32 = 12;

#[derive(Clone)]
pub struct ConsoleState {
    pub operator: Operator,
    pub tokens: AdminTokens,
    pub sessions: Sessions,
    /// This worker's own readiness, shown first.
    pub readiness: Readiness,
    /// `(name, url)` of the other services' `/readyz`.
    pub readyz_urls: Vec<(String, String)>,
    pub client: reqwest::Client,
}

pub fn router(state: ConsoleState) -> Router {
    Router::new()
        .route("/console", get(overview))
        .route("/console/login", get(login_page).post(login))
        .route("/console/logout", post(logout))
        .route("/console/groups", get(groups))
        .route("/console/messages", get(messages))
        .route("/console/messages/{id}", get(message))
        .route("/console/audit", get(audit))
        .route("/console/redrive", post(redrive))
        .route("/console/discard", post(discard))
        .with_state(state)
}

fn page(title: &str, session: &Session, body: Markup) -> Response {
    let markup = pages::layout(title, Some(&session.actor), Some(&session.csrf), body);
    // Pages show operator data: never cached, never framed by another site.
    (
        [(header::CACHE_CONTROL, "no-store"), (header::X_FRAME_OPTIONS, "DENY")],
        [(
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'",
        )],
        Html(markup.into_string()),
    )
        .into_response()
}

fn error_page(status: StatusCode, session: &Session, detail: &str) -> Response {
    let mut response = page("Error", session, pages::error(detail));
    *response.status_mut() = status;
    response
}

/// The session of the request, or the redirect to the login page (boxed: a `Response` would
/// make every `Result` of these helpers large, clippy::result_large_err).
fn session(state: &ConsoleState, headers: &HeaderMap) -> Result<Session, Box<Response>> {
    state
        .sessions
        .from_headers(headers)
        .map(|(_, s)| s)
        .ok_or_else(|| Box::new(Redirect::to("/console/login").into_response()))
}

/// The session of a POST whose CSRF token matches it; 403 otherwise, before anything is done.
fn posting(state: &ConsoleState, headers: &HeaderMap, csrf: &str) -> Result<Session, Box<Response>> {
    let session = session(state, headers)?;
    if session.csrf_ok(csrf) {
        Ok(session)
    } else {
        tracing::warn!(actor = %session.actor, "console POST without a valid CSRF token refused");
        Err(Box::new(error_page(
            StatusCode::FORBIDDEN,
            &session,
            "missing or wrong CSRF token: reload the page and try again",
        )))
    }
}

async fn login_page() -> Response {
    Html(pages::login(None).into_string()).into_response()
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(State(state): State<ConsoleState>, Form(form): Form<LoginForm>) -> Response {
    match state.tokens.authenticate(form.token.trim()) {
        Some(actor) => {
            tracing::info!(%actor, "console login");
            let id = state.sessions.start(actor);
            ([(header::SET_COOKIE, session::set_cookie(&id))], Redirect::to("/console")).into_response()
        }
        None => {
            tracing::warn!("console login with an unknown token refused");
            (StatusCode::UNAUTHORIZED, Html(pages::login(Some("That is not an admin token.")).into_string()))
                .into_response()
        }
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn logout(State(state): State<ConsoleState>, headers: HeaderMap, Form(form): Form<CsrfForm>) -> Response {
    if let Err(r) = posting(&state, &headers, &form.csrf) {
        return *r;
    }
    if let Some((id, _)) = state.sessions.from_headers(&headers) {
        state.sessions.end(&id);
    }
    ([(header::SET_COOKIE, session::clear_cookie())], Redirect::to("/console/login")).into_response()
}

/// A service's `/readyz` answer: `{"status": .., "checks": {name: "ok" | reason}}`.
async fn remote_readiness(client: &reqwest::Client, name: &str, url: &str) -> pages::ServiceReadiness {
    let answer = async { client.get(url).send().await?.json::<serde_json::Value>().await };
    match tokio::time::timeout(Duration::from_secs(4), answer).await {
        Ok(Ok(body)) => {
            let checks = body["checks"]
                .as_object()
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or("?").to_owned())).collect())
                .unwrap_or_default();
            pages::ServiceReadiness { name: name.to_owned(), ready: body["status"] == "ready", checks }
        }
        Ok(Err(e)) => unreachable_service(name, &e.to_string()),
        Err(_) => unreachable_service(name, "no answer within 4 s"),
    }
}

fn unreachable_service(name: &str, why: &str) -> pages::ServiceReadiness {
    pages::ServiceReadiness { name: name.to_owned(), ready: false, checks: vec![("reachable".into(), why.to_owned())] }
}

async fn overview(State(state): State<ConsoleState>, headers: HeaderMap) -> Response {
    let session = match session(&state, &headers) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let own = state.readiness.evaluate().await;
    let mut services = vec![pages::ServiceReadiness {
        name: "dlq-worker".into(),
        ready: own.iter().all(|(_, r)| r.is_ok()),
        checks: own.into_iter().map(|(n, r)| (n.to_owned(), r.err().unwrap_or_else(|| "ok".into()))).collect(),
    }];
    let own_lag = match state.operator.metrics.partition_lag.lock().expect("partition lag lock").clone() {
        p if p.is_empty() => lag::ServiceLag::NoneExported,
        p => {
            let mut partitions: Vec<_> = p.into_iter().map(|p| (p.topic, p.partition, p.lag)).collect();
            partitions.sort();
            lag::ServiceLag::Partitions(partitions)
        }
    };
    let remote = state.readyz_urls.iter().map(|(name, url)| remote_readiness(&state.client, name, url));
    let lags =
        state.readyz_urls.iter().map(|(name, url)| async { (name.clone(), lag::fetch(&state.client, url).await) });
    let (remote, lags) =
        futures::future::join(futures::future::join_all(remote), futures::future::join_all(lags)).await;
    services.extend(remote);
    let lags: Vec<_> = std::iter::once(("dlq-worker".to_owned(), own_lag)).chain(lags).collect();
    let metrics = &state.operator.metrics;
    let load = std::sync::atomic::Ordering::Relaxed;
    let next_due = match metrics.next_due_unix_ms.load(load) {
        0 => None,
        ms => chrono::DateTime::from_timestamp_millis(i64::try_from(ms).unwrap_or(0)),
    };
    let parked = reliable_messaging::parking::ParkedFilter { state: Some(ParkedState::Parked), ..Default::default() };
    let first_hour = dead_letter_log::first_hour(chrono::Utc::now(), CHART_HOURS);
    let (counts, groups, dead_lettered) = match (
        state.operator.parking.counts(first_hour, CHART_HOURS).await,
        state.operator.groups(&parked).await,
        dead_letter_log::per_hour(state.operator.parking.pool(), first_hour, CHART_HOURS).await,
    ) {
        (Ok(c), Ok(g), Ok(d)) => (c, g.len(), d),
        (Err(e), _, _) => return error_page(StatusCode::SERVICE_UNAVAILABLE, &session, &e.to_string()),
        (_, Err(e), _) => return error_page(StatusCode::SERVICE_UNAVAILABLE, &session, &e.to_string()),
        (_, _, Err(e)) => return error_page(StatusCode::SERVICE_UNAVAILABLE, &session, &e.to_string()),
    };
    let chart = pages::HourlyChart { first_hour, dead_lettered, parked: counts.parked_per_hour.clone() };
    let o = pages::Overview {
        services,
        lags,
        waiting: metrics.scheduled.load(load),
        next_due,
        in_flight: metrics.in_flight.load(load),
        counts,
        groups,
        chart,
    };
    page("Overview", &session, pages::overview(&o))
}

/// The filters of the groups and messages pages, as typed (empty fields mean "any").
#[derive(Debug, Default, Clone, Deserialize)]
pub struct FilterForm {
    pub topic: Option<String>,
    pub state: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub request_id: Option<String>,
    pub key: Option<String>,
    pub signature: Option<String>,
}

impl FilterForm {
    fn params(&self, limit: u32) -> FilterParams {
        FilterParams {
            topic: self.topic.clone(),
            // Parked by default: what an operator acts on.
            state: Some(self.state.clone().unwrap_or_else(|| "parked".into())),
            since: self.since.clone(),
            until: self.until.clone(),
            request_id: self.request_id.clone(),
            key: self.key.clone(),
            signature: self.signature.clone(),
            limit: Some(limit),
            ..Default::default()
        }
    }
}

fn invalid(session: &Session, e: OperationError) -> Response {
    let status = match e {
        OperationError::Invalid(_) => StatusCode::BAD_REQUEST,
        OperationError::Parking(reliable_messaging::parking::ParkingError::NotFound(_)) => StatusCode::NOT_FOUND,
        OperationError::Parking(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    error_page(status, session, &e.to_string())
}

async fn groups(State(state): State<ConsoleState>, headers: HeaderMap, Query(form): Query<FilterForm>) -> Response {
    let session = match session(&state, &headers) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let filter = match form.params(reliable_messaging::parking::MAX_LIST_LIMIT).into_filter() {
        Ok(f) => f,
        Err(p) => return error_page(StatusCode::BAD_REQUEST, &session, p.detail.as_deref().unwrap_or(&p.title)),
    };
    match state.operator.groups(&filter).await {
        Ok(groups) => page("Signature groups", &session, pages::groups(&groups, &form, &session.csrf)),
        Err(e) => invalid(&session, e),
    }
}

async fn messages(State(state): State<ConsoleState>, headers: HeaderMap, Query(form): Query<FilterForm>) -> Response {
    let session = match session(&state, &headers) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let filter = match form.params(500).into_filter() {
        Ok(f) => f,
        Err(p) => return error_page(StatusCode::BAD_REQUEST, &session, p.detail.as_deref().unwrap_or(&p.title)),
    };
    match state.operator.parking.list(&filter).await {
        Ok(items) => page("Messages", &session, pages::messages(&items, &form)),
        Err(e) => invalid(&session, e.into()),
    }
}

async fn message(State(state): State<ConsoleState>, headers: HeaderMap, Path(id): Path<u64>) -> Response {
    let session = match session(&state, &headers) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    match state.operator.show(id).await {
        Ok(Some((m, audit))) => {
            page(&format!("Parked message {id}"), &session, pages::message(&m, &audit, &session.csrf))
        }
        Ok(None) => error_page(StatusCode::NOT_FOUND, &session, &format!("parked message {id} does not exist")),
        Err(e) => invalid(&session, e),
    }
}

async fn audit(State(state): State<ConsoleState>, headers: HeaderMap) -> Response {
    let session = match session(&state, &headers) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    match state.operator.parking.recent_audit(200).await {
        Ok(entries) => page("Audit", &session, pages::audit_table(&entries)),
        Err(e) => invalid(&session, e.into()),
    }
}

#[derive(Deserialize)]
struct RedriveForm {
    csrf: String,
    signature: Option<String>,
    ids: Option<String>,
    rate: Option<String>,
    canary: Option<String>,
    canary_size: Option<usize>,
    max_failures: Option<usize>,
    wait_seconds: Option<u64>,
    reason: Option<String>,
}

async fn redrive(State(state): State<ConsoleState>, headers: HeaderMap, Form(form): Form<RedriveForm>) -> Response {
    let session = match posting(&state, &headers, &form.csrf) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let rate = match form.rate.as_deref().filter(|r| !r.trim().is_empty()).map(str::parse::<Rate>).transpose() {
        Ok(r) => r.unwrap_or(state.operator.default_rate),
        Err(e) => return error_page(StatusCode::BAD_REQUEST, &session, &e),
    };
    let selection = match (form.signature.filter(|s| !s.is_empty()), form.ids.as_deref()) {
        (Some(signature), None) => Selection::Matching(reliable_messaging::parking::ParkedFilter {
            signature: Some(signature),
            ..Default::default()
        }),
        (None, Some(ids)) => match ids.split([',', ' ']).filter(|s| !s.is_empty()).map(str::parse).collect() {
            Ok(ids) => Selection::Ids(ids),
            Err(_) => return error_page(StatusCode::BAD_REQUEST, &session, "ids must be numbers"),
        },
        _ => return error_page(StatusCode::BAD_REQUEST, &session, "give a signature or ids"),
    };
    let canary = form.canary.is_some().then(|| {
        CanaryParams { size: form.canary_size, max_failures: form.max_failures, wait_seconds: form.wait_seconds }.plan()
    });
    let request = RedriveRequest {
        selection,
        actor: session.actor.clone(),
        reason: form.reason.filter(|r| !r.trim().is_empty()),
        rate,
        canary,
    };
    match state.operator.redrive(request).await {
        Ok(report) => page("Redrive", &session, pages::redrive_result(&report)),
        Err(e) => invalid(&session, e),
    }
}

#[derive(Deserialize)]
struct DiscardForm {
    csrf: String,
    id: u64,
    reason: String,
}

async fn discard(State(state): State<ConsoleState>, headers: HeaderMap, Form(form): Form<DiscardForm>) -> Response {
    let session = match posting(&state, &headers, &form.csrf) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    match state.operator.discard(&[form.id], &session.actor, &form.reason).await {
        Ok(_) => Redirect::to(&format!("/console/messages/{}", form.id)).into_response(),
        Err(e) => invalid(&session, e),
    }
}

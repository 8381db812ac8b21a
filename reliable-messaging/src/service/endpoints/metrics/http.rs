//! `GET /metrics` (`http` feature): one handler and one content type for every service.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::{MetricsRegistry, CONTENT_TYPE};

/// `/metrics` serving `registry`, to merge into a service's router.
pub fn router(registry: Arc<MetricsRegistry>) -> Router {
    Router::new().route("/metrics", get(scrape)).with_state(registry)
}

async fn scrape(State(registry): State<Arc<MetricsRegistry>>) -> Response {
    response(&registry)
}

/// The scrape answer, for a service whose router has its own state (the gateway's).
pub fn response(registry: &MetricsRegistry) -> Response {
    match registry.encode() {
        Ok(page) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], page).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "metrics scrape failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

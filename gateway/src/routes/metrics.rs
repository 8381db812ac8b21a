//! `GET /metrics`: the Prometheus scrape endpoint.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::app_state::AppState;

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics.render())
}

//! `GET /metrics`: the Prometheus scrape endpoint, in the content type every service serves.

use axum::extract::State;
use axum::response::Response;

use crate::app_state::AppState;

pub async fn metrics(State(state): State<AppState>) -> Response {
    reliable_messaging::service::endpoints::metrics::http::response(state.metrics.registry())
}

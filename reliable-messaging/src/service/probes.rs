//! The HTTP side of a service (`http` feature): `/healthz`, `/readyz` and `/metrics` on the
//! service's own address, stopped with the service.

use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::consumer::ConsumerStats;
use crate::health::{self, Readiness};

/// Serves until `stop` is cancelled; in-flight requests finish first.
pub(crate) async fn serve(
    listener: TcpListener,
    readiness: Readiness,
    stats: Arc<ConsumerStats>,
    metrics_prefix: String,
    stop: CancellationToken,
) {
    let metrics = get(move || async move { stats.render_prometheus(&metrics_prefix) });
    let app = Router::new().route("/metrics", metrics).merge(health::router(readiness));
    if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(async move { stop.cancelled().await }).await {
        tracing::error!(error = %e, "probe server failed");
    }
}

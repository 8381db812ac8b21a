//! The HTTP side of a service (`http` feature): `/healthz`, `/readyz` and `/metrics` on the
//! service's own address, stopped with the service.

use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::service::endpoints::health::{self, Readiness};
use crate::service::endpoints::metrics::MetricsRegistry;

/// Serves until `stop` is cancelled; in-flight requests finish first.
pub(crate) async fn serve(
    listener: TcpListener,
    readiness: Readiness,
    metrics: Arc<MetricsRegistry>,
    stop: CancellationToken,
) {
    let app =
        Router::new().merge(crate::service::endpoints::metrics::http::router(metrics)).merge(health::router(readiness));
    if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(async move { stop.cancelled().await }).await {
        tracing::error!(error = %e, "probe server failed");
    }
}

//! Liveness and readiness endpoints shared by every service.
//!
//! The checks themselves ([`ReadinessCheck`], [`Readiness`]) need no HTTP server; the
//! endpoints need the `http` feature and [`DatabaseCheck`] the `mysql` feature.
//!
//! `/healthz` answers while the process runs; `/readyz` answers 200 only while every
//! registered [`ReadinessCheck`] passes, and 503 with the failing checks otherwise, so an
//! orchestrator routes traffic only to instances that can do their work.

use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "http")]
use axum::extract::State;
#[cfg(feature = "http")]
use axum::http::StatusCode;
#[cfg(feature = "http")]
use axum::response::{IntoResponse, Response};
#[cfg(feature = "http")]
use axum::routing::get;
#[cfg(feature = "http")]
use axum::{Json, Router};
use futures::future::BoxFuture;
#[cfg(feature = "http")]
use serde_json::json;

/// One condition a service needs to do its work.
pub trait ReadinessCheck: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// `Ok` when ready, otherwise why not.
    fn check(&self) -> BoxFuture<'_, Result<(), String>>;
}

#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<Arc<dyn ReadinessCheck>>,
}

impl Readiness {
    pub fn with(mut self, check: impl ReadinessCheck) -> Self {
        self.checks.push(Arc::new(check));
        self
    }

    /// Adds a check that is already shared (the service kit keeps a service's own checks so).
    pub fn with_shared(mut self, check: Arc<dyn ReadinessCheck>) -> Self {
        self.checks.push(check);
        self
    }

    /// Runs every check, each bounded so one hung dependency cannot hang the probe.
    pub async fn evaluate(&self) -> Vec<(&'static str, Result<(), String>)> {
        let mut results = Vec::with_capacity(self.checks.len());
        for c in &self.checks {
            let r = match tokio::time::timeout(Duration::from_secs(3), c.check()).await {
                Ok(r) => r,
                Err(_) => Err("check timed out".to_owned()),
            };
            results.push((c.name(), r));
        }
        results
    }
}

#[cfg(feature = "http")]
/// `/healthz` and `/readyz`, to merge into a service's router.
pub fn router(readiness: Readiness) -> Router {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz)).with_state(readiness)
}

#[cfg(feature = "http")]
async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "alive"}))
}

#[cfg(feature = "http")]
async fn readyz(State(readiness): State<Readiness>) -> Response {
    let results = readiness.evaluate().await;
    let ready = results.iter().all(|(_, r)| r.is_ok());
    let checks: serde_json::Map<String, serde_json::Value> = results
        .into_iter()
        .map(|(name, r)| {
            (
                name.to_owned(),
                match r {
                    Ok(()) => json!("ok"),
                    Err(e) => json!(e),
                },
            )
        })
        .collect();
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(json!({"status": if ready { "ready" } else { "not ready" }, "checks": checks}))).into_response()
}

/// Ready while the broker answers a metadata request.
pub struct BrokerCheck(pub crate::producer::DurableProducer);

impl ReadinessCheck for BrokerCheck {
    fn name(&self) -> &'static str {
        "kafka"
    }
    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        let producer = self.0.clone();
        Box::pin(async move {
            // librdkafka's metadata call blocks its thread.
            let reachable = tokio::task::spawn_blocking(move || producer.broker_reachable(Duration::from_secs(2)))
                .await
                .unwrap_or(false);
            if reachable {
                Ok(())
            } else {
                Err("broker unreachable".to_owned())
            }
        })
    }
}

/// Ready while the database answers `SELECT 1`.
#[cfg(feature = "mysql")]
pub struct DatabaseCheck(pub sqlx::MySqlPool);

#[cfg(feature = "mysql")]
impl ReadinessCheck for DatabaseCheck {
    fn name(&self) -> &'static str {
        "database"
    }
    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            sqlx::query("SELECT 1").execute(&self.0).await.map(|_| ()).map_err(|e| format!("database unreachable: {e}"))
        })
    }
}

/// Ready while the consumer owns at least one partition (it is in the group and can work).
pub struct AssignmentCheck(pub Arc<crate::consumer::ConsumerStats>);

impl ReadinessCheck for AssignmentCheck {
    fn name(&self) -> &'static str {
        "partitions"
    }
    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        let assigned = self.0.group.assigned_partitions.load(std::sync::atomic::Ordering::Relaxed);
        Box::pin(async move {
            if assigned > 0 {
                Ok(())
            } else {
                Err("no partitions assigned".to_owned())
            }
        })
    }
}

/// Ready while the consumer consumes: not while it is paused for a dependency outage
/// ("paused: database down for 42 s") or halted by the dead-letter flood limit.
pub struct ConsumingCheck(pub Arc<crate::consumer::ConsumerStats>);

impl ReadinessCheck for ConsumingCheck {
    fn name(&self) -> &'static str {
        "consumer"
    }

    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        let state = self.0.consuming();
        Box::pin(async move { state })
    }
}

//! The worker's HTTP port: `/healthz`, `/readyz`, `/metrics`, and the admin API and the console
//! (`/console`) when an admin token is configured.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::{middleware, Router};
use futures::future::BoxFuture;
use reliable_messaging::service::endpoints::health::{self, Readiness, ReadinessCheck};
use reliable_messaging::service::endpoints::metrics::MetricsRegistry;

use crate::admin;
use crate::admin_tokens::AdminTokens;
use crate::console::{self, ConsoleState};
use crate::metrics::Metrics;
use crate::operations::Operator;
use crate::problem::{self, ensure_problem_body};

/// What the operator surfaces need: the operations, who may use them, and the console's state.
pub struct OperatorSurfaces {
    pub operator: Operator,
    pub tokens: AdminTokens,
    pub console: ConsoleState,
    pub erasures: crate::erasure::Erasures,
}

pub fn router(readiness: Readiness, metrics: Arc<Metrics>, admin: Option<OperatorSurfaces>) -> Router {
    // One registry per worker instance (tests run several in one process).
    let mut registry = MetricsRegistry::new("dlq", env!("CARGO_PKG_VERSION"));
    registry.service().register_collector(Box::new(metrics));
    let mut router = reliable_messaging::service::endpoints::metrics::http::router(Arc::new(registry))
        .merge(health::router(readiness));
    if let Some(surfaces) = admin {
        router = router
            .merge(crate::erasure::router(surfaces.erasures, surfaces.tokens.clone()))
            .merge(admin::router(surfaces.operator, surfaces.tokens))
            .merge(console::router(surfaces.console));
    }
    router.fallback(|| async { problem::not_found("no such route") }).layer(middleware::from_fn(ensure_problem_body))
}

/// The dead-letter subscription is in place (partitions may be none: no DLQ topic exists yet).
pub struct Subscribed(pub Arc<Metrics>);

impl ReadinessCheck for Subscribed {
    fn name(&self) -> &'static str {
        "subscription"
    }
    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        let ok =
            self.0.subscribed.load(Ordering::Relaxed) || self.0.group.assigned_partitions.load(Ordering::Relaxed) > 0;
        Box::pin(async move {
            if ok {
                Ok(())
            } else {
                Err("not subscribed".to_owned())
            }
        })
    }
}

/// Re-sending: not halted by the parking flood limit, not holding re-sends for an outage.
pub struct Resending(pub Arc<Metrics>);

impl ReadinessCheck for Resending {
    fn name(&self) -> &'static str {
        "worker"
    }
    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        let state = if let Some(reason) = self.0.halted.lock().expect("halt lock").as_ref() {
            Err(format!("halted: {reason}"))
        } else if self.0.database_down.load(Ordering::Relaxed) {
            Err("paused: database down, re-sends held".to_owned())
        } else {
            Ok(())
        };
        Box::pin(async move { state })
    }
}

//! The gateway's counters, the accept-path latency histogram and its stage timings, in the
//! per-instance registry it serves at `/metrics` (with the process and build-info metrics
//! every service has: `reliable_messaging::service::endpoints::metrics`).

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use reliable_messaging::consumer::StageTimings;
use reliable_messaging::service::endpoints::metrics::MetricsRegistry;

use crate::idempotency::ClaimSource;

/// Why a `POST /registrations` was not accepted (the `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    MalformedJson,
    UnsupportedMediaType,
    PayloadTooLarge,
    InvalidFields,
    InvalidIdempotencyKey,
    IdempotencyConflict,
    Overloaded,
    /// `429`: the client's budget is used up (`crate::client_budget`).
    RateLimited,
    HashingFailed,
    NotAcknowledged,
}

impl RejectReason {
    const ALL: [RejectReason; 10] = [
        RejectReason::MalformedJson,
        RejectReason::UnsupportedMediaType,
        RejectReason::PayloadTooLarge,
        RejectReason::InvalidFields,
        RejectReason::InvalidIdempotencyKey,
        RejectReason::IdempotencyConflict,
        RejectReason::Overloaded,
        RejectReason::RateLimited,
        RejectReason::HashingFailed,
        RejectReason::NotAcknowledged,
    ];

    pub fn label(self) -> &'static str {
        match self {
            RejectReason::MalformedJson => "malformed_json",
            RejectReason::UnsupportedMediaType => "unsupported_media_type",
            RejectReason::PayloadTooLarge => "payload_too_large",
            RejectReason::InvalidFields => "invalid_fields",
            RejectReason::InvalidIdempotencyKey => "invalid_idempotency_key",
            RejectReason::IdempotencyConflict => "idempotency_conflict",
            RejectReason::Overloaded => "overloaded",
            RejectReason::RateLimited => "rate_limited",
            RejectReason::HashingFailed => "hashing_failed",
            RejectReason::NotAcknowledged => "not_acknowledged",
        }
    }
}

/// Upper bounds (seconds) of the latency buckets: hashing dominates at tens of milliseconds,
/// a slow broker shows up in the upper buckets up to the publish timeout.
const BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// One label, such as `reason="invalid_fields"`.
type Label = [(&'static str, &'static str); 1];

#[derive(Debug)]
pub struct Metrics {
    accepted: Counter,
    rejected: Family<Label, Counter>,
    publish_failures: Counter,
    /// Requests past the overall time limit that were left to finish because their record was
    /// already with the producer.
    past_deadline: Counter,
    /// Idempotency-Key claims by who decided them: the shared table or this instance's fallback map.
    idempotency_claims: Family<Label, Counter>,
    /// Clients whose sign-up budget is not full, as of the last sweep.
    budget_clients: Gauge,
    accept_duration: Histogram,
    /// Time per stage of an accepted request: `idempotency`, `hash_queue` (waiting for a
    /// hashing slot), `hash` (argon2id itself), `publish` (until the broker's acknowledgement).
    pub stages: Arc<StageTimings>,
    registry: MetricsRegistry,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let metrics = Metrics {
            accepted: Counter::default(),
            rejected: Family::default(),
            publish_failures: Counter::default(),
            past_deadline: Counter::default(),
            idempotency_claims: Family::default(),
            budget_clients: Gauge::default(),
            accept_duration: Histogram::new(BUCKETS),
            stages: Arc::default(),
            registry: MetricsRegistry::new("gateway", env!("CARGO_PKG_VERSION")),
        };
        // Every series from the start, at 0: a rate over a series that appears with its first
        // event misses that event.
        for reason in RejectReason::ALL {
            let _ = metrics.rejected.get_or_create(&[("reason", reason.label())]);
        }
        for source in [ClaimSource::Shared, ClaimSource::LocalFallback] {
            let _ = metrics.idempotency_claims.get_or_create(&[("source", source_label(source))]);
        }
        metrics.registered()
    }

    fn registered(mut self) -> Self {
        let registry = self.registry.service();
        registry.register(
            "registrations_accepted",
            "Registrations acknowledged by the broker and answered 202",
            self.accepted.clone(),
        );
        registry.register("registrations_rejected", "Registrations not accepted, by reason", self.rejected.clone());
        registry.register(
            "publish_failures",
            "Records the broker did not acknowledge in time",
            self.publish_failures.clone(),
        );
        registry.register(
            "requests_past_deadline",
            "Requests that outlived REQUEST_TIMEOUT_MS because their record was already with the producer (the publish timeout bounds them)",
            self.past_deadline.clone(),
        );
        registry.register(
            "idempotency_claims",
            "Idempotency-Key claims, by where they were decided (local_fallback: the shared table did not answer in time)",
            self.idempotency_claims.clone(),
        );
        registry.register(
            "client_budget_clients",
            "Clients holding a partly used sign-up budget (bounded by CLIENT_RATE_MAX_CLIENTS), as of the last sweep",
            self.budget_clients.clone(),
        );
        registry.register(
            "registration_accept_duration_seconds",
            "Time from request to 202, hashing and broker acknowledgement included",
            self.accept_duration.clone(),
        );
        registry.register_collector(Box::new(self.stages.clone()));
        self
    }

    /// What `/metrics` serves.
    pub fn registry(&self) -> &MetricsRegistry {
        &self.registry
    }

    /// A registration was accepted (202) after `elapsed`.
    pub fn accepted(&self, elapsed: Duration) {
        self.accepted.inc();
        self.accept_duration.observe(elapsed.as_secs_f64());
    }

    pub fn rejected(&self, reason: RejectReason) {
        self.rejected.get_or_create(&[("reason", reason.label())]).inc();
    }

    /// The broker did not acknowledge a record.
    pub fn publish_failed(&self) {
        self.publish_failures.inc();
    }

    /// A request outlived the overall time limit with its record at the producer.
    pub fn ran_past_deadline(&self) {
        self.past_deadline.inc();
    }

    /// How many clients the sign-up budget tracks.
    pub fn budget_clients(&self, clients: usize) {
        self.budget_clients.set(i64::try_from(clients).unwrap_or(i64::MAX));
    }

    /// An Idempotency-Key claim was decided by `source`.
    pub fn idempotency_claim(&self, source: ClaimSource) {
        self.idempotency_claims.get_or_create(&[("source", source_label(source))]).inc();
    }
}

fn source_label(source: ClaimSource) -> &'static str {
    match source {
        ClaimSource::Shared => "shared",
        ClaimSource::LocalFallback => "local_fallback",
    }
}

#[cfg(test)]
mod tests;

//! Counters and the accept-path latency histogram, exposed at `/metrics` in the Prometheus
//! text format. Hand-rolled with atomics: a handful of series do not justify a registry.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use reliable_messaging::stage_timings::StageTimings;

use crate::idempotency::ClaimSource;
use std::time::Duration;

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
    HashingFailed,
    NotAcknowledged,
}

impl RejectReason {
    const ALL: [RejectReason; 9] = [
        RejectReason::MalformedJson,
        RejectReason::UnsupportedMediaType,
        RejectReason::PayloadTooLarge,
        RejectReason::InvalidFields,
        RejectReason::InvalidIdempotencyKey,
        RejectReason::IdempotencyConflict,
        RejectReason::Overloaded,
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
            RejectReason::HashingFailed => "hashing_failed",
            RejectReason::NotAcknowledged => "not_acknowledged",
        }
    }
}

/// Upper bounds (seconds) of the latency buckets: hashing dominates at tens of milliseconds,
/// a slow broker shows up in the upper buckets up to the publish timeout.
const BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

#[derive(Default)]
pub struct Metrics {
    accepted: AtomicU64,
    rejected: [AtomicU64; RejectReason::ALL.len()],
    publish_failures: AtomicU64,
    /// Idempotency-Key claims decided by the shared table / by this instance's fallback map.
    idempotency_claims_shared: AtomicU64,
    idempotency_claims_local_fallback: AtomicU64,
    /// Non-cumulative per bucket, plus one for +Inf; cumulated on rendering.
    latency_buckets: [AtomicU64; BUCKETS.len() + 1],
    latency_sum_micros: AtomicU64,
    latency_count: AtomicU64,
    /// Time per stage of an accepted request: `idempotency`, `hash_queue` (waiting for a
    /// hashing slot), `hash` (argon2id itself), `publish` (until the broker's acknowledgement).
    pub stages: Arc<StageTimings>,
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// A registration was accepted (202) after `elapsed`.
    pub fn accepted(&self, elapsed: Duration) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        let secs = elapsed.as_secs_f64();
        let bucket = BUCKETS.iter().position(|&le| secs <= le).unwrap_or(BUCKETS.len());
        self.latency_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_micros.fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
        self.latency_count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn rejected(&self, reason: RejectReason) {
        let index = RejectReason::ALL.iter().position(|r| *r == reason).expect("listed");
        self.rejected[index].fetch_add(1, Ordering::Relaxed);
    }

    /// The broker did not acknowledge a record.
    pub fn publish_failed(&self) {
        self.publish_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// An Idempotency-Key claim was decided by `source`.
    pub fn idempotency_claim(&self, source: ClaimSource) {
        match source {
            ClaimSource::Shared => &self.idempotency_claims_shared,
            ClaimSource::LocalFallback => &self.idempotency_claims_local_fallback,
        }
        .fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        out.push_str(
            "# HELP gateway_registrations_accepted_total Registrations acknowledged by the broker and answered 202.\n",
        );
        out.push_str("# TYPE gateway_registrations_accepted_total counter\n");
        let _ = writeln!(out, "gateway_registrations_accepted_total {}", load(&self.accepted));

        out.push_str("# HELP gateway_registrations_rejected_total Registrations not accepted, by reason.\n");
        out.push_str("# TYPE gateway_registrations_rejected_total counter\n");
        for (reason, count) in RejectReason::ALL.iter().zip(&self.rejected) {
            let _ =
                writeln!(out, "gateway_registrations_rejected_total{{reason=\"{}\"}} {}", reason.label(), load(count));
        }

        out.push_str("# HELP gateway_publish_failures_total Records the broker did not acknowledge in time.\n");
        out.push_str("# TYPE gateway_publish_failures_total counter\n");
        let _ = writeln!(out, "gateway_publish_failures_total {}", load(&self.publish_failures));

        out.push_str("# HELP gateway_idempotency_claims_total Idempotency-Key claims, by where they were decided (local_fallback: the shared table did not answer in time).\n");
        out.push_str("# TYPE gateway_idempotency_claims_total counter\n");
        for (source, count) in
            [("shared", &self.idempotency_claims_shared), ("local_fallback", &self.idempotency_claims_local_fallback)]
        {
            let _ = writeln!(out, "gateway_idempotency_claims_total{{source=\"{source}\"}} {}", load(count));
        }

        out.push_str("# HELP gateway_registration_accept_duration_seconds Time from request to 202, hashing and broker acknowledgement included.\n");
        out.push_str("# TYPE gateway_registration_accept_duration_seconds histogram\n");
        let mut cumulative = 0;
        for (le, count) in BUCKETS.iter().zip(&self.latency_buckets) {
            cumulative += load(count);
            let _ = writeln!(out, "gateway_registration_accept_duration_seconds_bucket{{le=\"{le}\"}} {cumulative}");
        }
        cumulative += load(&self.latency_buckets[BUCKETS.len()]);
        let _ = writeln!(out, "gateway_registration_accept_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}");
        let sum = load(&self.latency_sum_micros) as f64 / 1e6;
        let _ = writeln!(out, "gateway_registration_accept_duration_seconds_sum {sum}");
        let _ = writeln!(out, "gateway_registration_accept_duration_seconds_count {}", load(&self.latency_count));
        out.push_str(&self.stages.render_prometheus("gateway"));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_a_cumulative_histogram() {
        let m = Metrics::new();
        m.accepted(Duration::from_millis(30));
        m.accepted(Duration::from_secs(60));
        m.rejected(RejectReason::InvalidFields);
        m.rejected(RejectReason::InvalidFields);
        m.publish_failed();
        let text = m.render();
        assert!(text.contains("gateway_registrations_accepted_total 2\n"));
        assert!(text.contains("gateway_registrations_rejected_total{reason=\"invalid_fields\"} 2\n"));
        assert!(text.contains("gateway_registrations_rejected_total{reason=\"malformed_json\"} 0\n"));
        assert!(text.contains("gateway_publish_failures_total 1\n"));
        assert!(text.contains("gateway_registration_accept_duration_seconds_bucket{le=\"0.025\"} 0\n"));
        assert!(text.contains("gateway_registration_accept_duration_seconds_bucket{le=\"0.05\"} 1\n"));
        assert!(text.contains("gateway_registration_accept_duration_seconds_bucket{le=\"30\"} 1\n"));
        assert!(text.contains("gateway_registration_accept_duration_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("gateway_registration_accept_duration_seconds_sum 60.03\n"));
        assert!(text.contains("gateway_registration_accept_duration_seconds_count 2\n"));
    }
}

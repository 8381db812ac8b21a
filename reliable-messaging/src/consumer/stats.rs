//! What the consumer did and is doing, as counters and gauges for `/metrics`, readiness and
//! tests.
//!
//! Shared (`Arc`) between the run loop, the rebalance callbacks and the HTTP probes, so it is
//! plain atomics and small locks, and knows nothing of Kafka: a service may serve it before
//! the consumer exists.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::dead_letter_limit::HaltReason;
use crate::stage_timings::StageTimings;

/// Counters of what the consumer did, for `/metrics` and tests.
#[derive(Debug, Default)]
pub struct ConsumerStats {
    pub consumed: AtomicU64,
    pub done: AtomicU64,
    pub rejected: AtomicU64,
    pub dead_lettered_transient: AtomicU64,
    pub dead_lettered_permanent: AtomicU64,
    pub in_place_retries: AtomicU64,
    pub commits: AtomicU64,
    pub assigned_partitions: AtomicUsize,
    /// Messages of the assigned partitions past the committed offsets (high watermark minus
    /// committed offset), refreshed every [`LAG_REFRESH`]; `None` until first computed.
    pub consumer_lag: std::sync::Mutex<Option<u64>>,
    /// The dependency outage the consumer is paused for, if any.
    pub outage: std::sync::Mutex<Option<Outage>>,
    pub outages: AtomicU64,
    /// Why the consumer halted (dead-letter flood limit), if it did.
    pub halted: std::sync::Mutex<Option<HaltReason>>,
    /// Time per stage: the consumer's (`poll`, `handle`, `dead_letter`, `commit`) and any
    /// the handler records.
    pub stages: Arc<StageTimings>,
}

/// A dependency outage in progress.
#[derive(Debug, Clone)]
pub struct Outage {
    pub dependency: String,
    pub since: std::time::Instant,
}

/// How often [`ConsumerStats::consumer_lag`] is recomputed while the consumer runs.
pub const LAG_REFRESH: Duration = Duration::from_secs(1);

impl ConsumerStats {
    /// Messages taken into processing whose outcome is not durable yet: polled, but neither
    /// stored, rejected nor handed to the DLQ, so their offsets must not be committed. A crash
    /// now has to redeliver them; crash tests read it to prove a kill landed on such work.
    /// The batch prefetched while another one is handled is not counted until it is taken.
    pub fn in_flight(&self) -> u64 {
        let settled = [&self.done, &self.rejected, &self.dead_lettered_transient, &self.dead_lettered_permanent]
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum::<u64>();
        self.consumed.load(Ordering::Relaxed).saturating_sub(settled)
    }

    /// `Err` with the reason while the consumer is paused for an outage or halted.
    pub fn consuming(&self) -> Result<(), String> {
        if let Some(halt) = self.halted.lock().expect("halt lock").as_ref() {
            return Err(format!("halted: {halt}"));
        }
        if let Some(outage) = self.outage.lock().expect("outage lock").as_ref() {
            return Err(format!("paused: {} down for {} s", outage.dependency, outage.since.elapsed().as_secs()));
        }
        Ok(())
    }

    /// The counters in Prometheus text format, names prefixed with `prefix`.
    pub fn render_prometheus(&self, prefix: &str) -> String {
        let counters: [(&str, &str, &AtomicU64); 7] = [
            ("consumed_total", "Messages polled from Kafka", &self.consumed),
            ("done_total", "Messages handled successfully", &self.done),
            ("rejected_total", "Messages rejected for a business reason (recorded, not retried)", &self.rejected),
            (
                "dead_lettered_transient_total",
                "Messages handed to the DLQ after transient failures",
                &self.dead_lettered_transient,
            ),
            (
                "dead_lettered_permanent_total",
                "Messages handed to the DLQ as permanent failures (parked)",
                &self.dead_lettered_permanent,
            ),
            ("in_place_retries_total", "In-place retries of transient failures", &self.in_place_retries),
            ("commits_total", "Offset commits the broker confirmed", &self.commits),
        ];
        let mut out = String::new();
        for (name, help, value) in counters {
            out.push_str(&format!(
                "# HELP {prefix}_{name} {help}\n# TYPE {prefix}_{name} counter\n{prefix}_{name} {}\n",
                value.load(Ordering::Relaxed)
            ));
        }
        out.push_str(&format!(
            "# HELP {prefix}_assigned_partitions Partitions currently assigned\n# TYPE {prefix}_assigned_partitions gauge\n{prefix}_assigned_partitions {}\n",
            self.assigned_partitions.load(Ordering::Relaxed)
        ));
        out.push_str(&format!(
            "# HELP {prefix}_in_flight Messages polled and taken into processing whose outcome is not durable yet\n# TYPE {prefix}_in_flight gauge\n{prefix}_in_flight {}\n",
            self.in_flight()
        ));
        let outage = self.outage.lock().expect("outage lock").clone();
        // One stable series; which dependency is down is said by readiness and the log.
        out.push_str(&format!(
            "# HELP {prefix}_paused 1 while consumption is paused because a dependency is down\n# TYPE {prefix}_paused gauge\n{prefix}_paused {}\n",
            u8::from(outage.is_some())
        ));
        out.push_str(&format!(
            "# HELP {prefix}_outage_seconds How long the current dependency outage has lasted (0 when none)\n# TYPE {prefix}_outage_seconds gauge\n{prefix}_outage_seconds {:.3}\n",
            outage.as_ref().map_or(0.0, |o| o.since.elapsed().as_secs_f64())
        ));
        out.push_str(&format!(
            "# HELP {prefix}_outages_total Dependency outages the consumer paused for\n# TYPE {prefix}_outages_total counter\n{prefix}_outages_total {}\n",
            self.outages.load(Ordering::Relaxed)
        ));
        out.push_str(&format!(
            "# HELP {prefix}_halted 1 once the dead-letter flood limit stopped consumption\n# TYPE {prefix}_halted gauge\n{prefix}_halted {}\n",
            u8::from(self.halted.lock().expect("halt lock").is_some())
        ));
        if let Some(lag) = *self.consumer_lag.lock().expect("consumer lag lock") {
            out.push_str(&format!(
                "# HELP {prefix}_consumer_lag Messages on the assigned partitions not yet committed\n# TYPE {prefix}_consumer_lag gauge\n{prefix}_consumer_lag {lag}\n"
            ));
        }
        out.push_str(&self.stages.render_prometheus(prefix));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_counts_taken_messages_without_a_durable_outcome() {
        let stats = ConsumerStats::default();
        stats.consumed.store(10, Ordering::Relaxed);
        stats.done.store(4, Ordering::Relaxed);
        stats.rejected.store(1, Ordering::Relaxed);
        stats.dead_lettered_transient.store(2, Ordering::Relaxed);
        stats.dead_lettered_permanent.store(1, Ordering::Relaxed);
        assert_eq!(stats.in_flight(), 2);
        assert!(stats.render_prometheus("svc").contains("# TYPE svc_in_flight gauge\nsvc_in_flight 2\n"));
        stats.done.store(6, Ordering::Relaxed);
        assert_eq!(stats.in_flight(), 0, "everything settled");
    }

    #[test]
    fn consumer_lag_is_rendered_once_known() {
        let stats = ConsumerStats::default();
        assert!(!stats.render_prometheus("svc").contains("svc_consumer_lag"));
        *stats.consumer_lag.lock().unwrap() = Some(42);
        assert!(stats.render_prometheus("svc").contains("# TYPE svc_consumer_lag gauge\nsvc_consumer_lag 42\n"));
    }
}

//! Counters and gauges of the worker, rendered in the Prometheus text format at `/metrics`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use reliable_messaging::parking::ParkReason;

#[derive(Debug, Default)]
pub struct Metrics {
    /// Records read from dead-letter topics.
    pub consumed: AtomicU64,
    /// Messages re-sent to their original topic by the worker.
    pub redriven: AtomicU64,
    /// Re-sends that failed and were rescheduled.
    pub resend_failures: AtomicU64,
    parked_permanent: AtomicU64,
    parked_retries_exhausted: AtomicU64,
    parked_poison: AtomicU64,
    parked_missing_topic: AtomicU64,
    /// Parkings that failed (database down) and were retried.
    pub parking_failures: AtomicU64,
    /// Parked messages redriven or discarded by an operator.
    pub operator_redrives: AtomicU64,
    pub operator_discards: AtomicU64,
    pub commits: AtomicU64,
    /// Messages waiting for their re-send time.
    pub scheduled: AtomicUsize,
    /// Re-sends and parkings running now.
    pub in_flight: AtomicUsize,
    pub paused_partitions: AtomicUsize,
    /// Times the partitions were paused because too many messages waited.
    pub pauses: AtomicU64,
    pub assigned_partitions: AtomicUsize,
    /// Whether the regex subscription is in place.
    pub subscribed: AtomicBool,
    /// Set while the database does not answer the worker's probe: re-sends are held (a paused
    /// consumer could not take them, and counting them would burn retries for an outage).
    pub database_down: AtomicBool,
    /// Re-sends held back because the database was down, counted once per outage.
    pub outages: AtomicU64,
    /// Why intake halted (the parking flood limit), if it did.
    pub halted: std::sync::Mutex<Option<String>>,
}

impl Metrics {
    fn parked_counter(&self, reason: ParkReason) -> &AtomicU64 {
        match reason {
            ParkReason::Permanent => &self.parked_permanent,
            ParkReason::RetriesExhausted => &self.parked_retries_exhausted,
            ParkReason::Poison => &self.parked_poison,
            ParkReason::MissingTopic => &self.parked_missing_topic,
        }
    }

    pub fn record_parked(&self, reason: ParkReason) {
        self.parked_counter(reason).fetch_add(1, Ordering::Relaxed);
    }

    pub fn parked(&self, reason: ParkReason) -> u64 {
        self.parked_counter(reason).load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, samples: Vec<(String, u64)>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let gauge = |a: &AtomicUsize| a.load(Ordering::Relaxed) as u64;
        metric(
            "dlq_consumed_total",
            "counter",
            "Records read from dead-letter topics.",
            vec![(String::new(), load(&self.consumed))],
        );
        metric(
            "dlq_redriven_total",
            "counter",
            "Messages re-sent to their original topic.",
            vec![(String::new(), load(&self.redriven))],
        );
        metric(
            "dlq_resend_failures_total",
            "counter",
            "Re-sends that failed and were rescheduled.",
            vec![(String::new(), load(&self.resend_failures))],
        );
        metric(
            "dlq_parked_total",
            "counter",
            "Messages parked, by reason.",
            ParkReason::ALL.iter().map(|r| (format!("{{reason=\"{}\"}}", r.as_str()), self.parked(*r))).collect(),
        );
        metric(
            "dlq_parking_failures_total",
            "counter",
            "Parking attempts that failed and were retried.",
            vec![(String::new(), load(&self.parking_failures))],
        );
        metric(
            "dlq_operator_actions_total",
            "counter",
            "Parked messages redriven or discarded by an operator.",
            vec![
                ("{action=\"redrive\"}".to_owned(), load(&self.operator_redrives)),
                ("{action=\"discard\"}".to_owned(), load(&self.operator_discards)),
            ],
        );
        metric("dlq_commits_total", "counter", "Offset commits.", vec![(String::new(), load(&self.commits))]);
        metric(
            "dlq_scheduled",
            "gauge",
            "Messages waiting for their re-send time.",
            vec![(String::new(), gauge(&self.scheduled))],
        );
        metric(
            "dlq_in_flight",
            "gauge",
            "Re-sends and parkings running now.",
            vec![(String::new(), gauge(&self.in_flight))],
        );
        metric(
            "dlq_paused_partitions",
            "gauge",
            "Partitions paused because too many messages wait.",
            vec![(String::new(), gauge(&self.paused_partitions))],
        );
        metric(
            "dlq_pauses_total",
            "counter",
            "Times the partitions were paused because too many messages waited.",
            vec![(String::new(), load(&self.pauses))],
        );
        metric(
            "dlq_resends_held",
            "gauge",
            "1 while re-sends are held because the database does not answer.",
            vec![(String::new(), u64::from(self.database_down.load(Ordering::Relaxed)))],
        );
        metric(
            "dlq_database_outages_total",
            "counter",
            "Database outages during which re-sends were held.",
            vec![(String::new(), load(&self.outages))],
        );
        metric(
            "dlq_halted",
            "gauge",
            "1 once the parking flood limit stopped intake.",
            vec![(String::new(), u64::from(self.halted.lock().expect("halt lock").is_some()))],
        );
        metric(
            "dlq_assigned_partitions",
            "gauge",
            "Dead-letter partitions assigned to this worker.",
            vec![(String::new(), gauge(&self.assigned_partitions))],
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_with_reason_labels() {
        let m = Metrics::default();
        m.record_parked(ParkReason::Poison);
        m.record_parked(ParkReason::Poison);
        m.redriven.fetch_add(3, Ordering::Relaxed);
        m.scheduled.store(7, Ordering::Relaxed);
        let text = m.render();
        assert!(text.contains("dlq_parked_total{reason=\"poison\"} 2\n"), "{text}");
        assert!(text.contains("dlq_parked_total{reason=\"permanent\"} 0\n"), "{text}");
        assert!(text.contains("dlq_redriven_total 3\n"), "{text}");
        assert!(text.contains("# TYPE dlq_scheduled gauge\ndlq_scheduled 7\n"), "{text}");
    }
}

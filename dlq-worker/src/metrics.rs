//! Counters and gauges of the worker: atomics the worker adds to, read at scrape time into
//! the registry it serves at `/metrics` (`reliable_messaging::service::endpoints::metrics`, as every service).

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use reliable_messaging::kafka::group::{GroupGauges, PartitionLag};
use reliable_messaging::parking::ParkReason;
use reliable_messaging::service::endpoints::metrics::family::{counter, counters, gauge, gauges};

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
    /// Assigned partitions and confirmed commits, kept by the group's rebalance callbacks.
    pub group: Arc<GroupGauges>,
    /// Messages waiting for their re-send time.
    pub scheduled: AtomicUsize,
    /// When the next waiting message is due, Unix ms (0: none waits), for the console.
    pub next_due_unix_ms: AtomicU64,
    /// Re-sends and parkings running now.
    pub in_flight: AtomicUsize,
    pub paused_partitions: AtomicUsize,
    /// Times the partitions were paused because too many messages waited.
    pub pauses: AtomicU64,
    /// Whether the regex subscription is in place.
    pub subscribed: AtomicBool,
    /// Set while the database does not answer the worker's probe: re-sends are held (a paused
    /// consumer could not take them, and counting them would burn retries for an outage).
    pub database_down: AtomicBool,
    /// Re-sends held back because the database was down, counted once per outage.
    pub outages: AtomicU64,
    /// Why intake halted (the parking flood limit), if it did.
    pub halted: std::sync::Mutex<Option<String>>,
    /// Dead letters not yet committed, per assigned partition (waiting, in flight or not yet
    /// read), refreshed every second; empty while unknown.
    pub partition_lag: std::sync::Mutex<Vec<PartitionLag>>,
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

    /// Records when the next waiting message is due (`None`: nothing waits).
    pub fn set_next_due(&self, due: Option<tokio::time::Instant>) {
        let unix_ms = due.map_or(0, |due| {
            let wall = std::time::SystemTime::now() + due.saturating_duration_since(tokio::time::Instant::now());
            wall.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
        });
        self.next_due_unix_ms.store(unix_ms, Ordering::Relaxed);
    }

    pub fn parked(&self, reason: ParkReason) -> u64 {
        self.parked_counter(reason).load(Ordering::Relaxed)
    }
}

/// Read at scrape time: the worker only adds to its atomics.
impl Collector for Metrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let e = &mut encoder;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let gauge_of = |a: &AtomicUsize| a.load(Ordering::Relaxed) as u64;
        counter(e, "consumed", "Records read from dead-letter topics", load(&self.consumed))?;
        counter(e, "redriven", "Messages re-sent to their original topic", load(&self.redriven))?;
        counter(e, "resend_failures", "Re-sends that failed and were rescheduled", load(&self.resend_failures))?;
        counters(
            e,
            "parked",
            "Messages parked, by reason",
            ParkReason::ALL.iter().map(|r| ([("reason", r.as_str())], self.parked(*r))),
        )?;
        counter(e, "parking_failures", "Parking attempts that failed and were retried", load(&self.parking_failures))?;
        counters(
            e,
            "operator_actions",
            "Parked messages redriven or discarded by an operator",
            [
                ([("action", "redrive")], load(&self.operator_redrives)),
                ([("action", "discard")], load(&self.operator_discards)),
            ],
        )?;
        counter(e, "commits", "Offset commits", load(&self.group.commits))?;
        gauge(e, "scheduled", "Messages waiting for their re-send time", gauge_of(&self.scheduled))?;
        gauge(e, "in_flight", "Re-sends and parkings running now", gauge_of(&self.in_flight))?;
        gauge(
            e,
            "paused_partitions",
            "Partitions paused because too many messages wait",
            gauge_of(&self.paused_partitions),
        )?;
        counter(e, "pauses", "Times the partitions were paused because too many messages waited", load(&self.pauses))?;
        gauge(
            e,
            "resends_held",
            "1 while re-sends are held because the database does not answer",
            u64::from(self.database_down.load(Ordering::Relaxed)),
        )?;
        counter(e, "database_outages", "Database outages during which re-sends were held", load(&self.outages))?;
        let halted = self.halted.lock().expect("halt lock").is_some();
        gauge(e, "halted", "1 once the parking flood limit stopped intake", u64::from(halted))?;
        gauge(
            e,
            "assigned_partitions",
            "Dead-letter partitions assigned to this worker",
            gauge_of(&self.group.assigned_partitions),
        )?;
        let mut partitions = self.partition_lag.lock().expect("partition lag lock").clone();
        if partitions.is_empty() {
            return Ok(());
        }
        partitions.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        gauges(
            e,
            "consumer_partition_lag",
            "Dead letters of one assigned partition not yet committed",
            partitions.into_iter().map(|p| ([("topic", p.topic), ("partition", p.partition.to_string())], p.lag)),
        )
    }
}

#[cfg(test)]
mod tests {

    use reliable_messaging::service::endpoints::metrics::MetricsRegistry;

    use super::*;

    fn page(m: &Arc<Metrics>) -> String {
        let mut registry = MetricsRegistry::new("dlq", "0.1.0");
        registry.service().register_collector(Box::new(m.clone()));
        registry.encode().expect("encodes")
    }

    #[test]
    fn serves_counters_with_reason_labels() {
        let m = Arc::new(Metrics::default());
        m.record_parked(ParkReason::Poison);
        m.record_parked(ParkReason::Poison);
        m.redriven.fetch_add(3, Ordering::Relaxed);
        m.scheduled.store(7, Ordering::Relaxed);
        let text = page(&m);
        assert!(text.contains("\ndlq_parked_total{reason=\"poison\"} 2\n"), "{text}");
        assert!(text.contains("\ndlq_parked_total{reason=\"permanent\"} 0\n"), "{text}");
        assert!(text.contains("\ndlq_redriven_total 3\n"), "{text}");
        assert!(text.contains("# TYPE dlq_scheduled gauge\ndlq_scheduled 7\n"), "{text}");
    }

    #[test]
    fn serves_partition_lag_once_known() {
        let m = Arc::new(Metrics::default());
        assert!(!page(&m).contains("dlq_consumer_partition_lag"), "absent while unknown, never a made-up 0");
        *m.partition_lag.lock().unwrap() = vec![PartitionLag { topic: "orders-dlq".into(), partition: 0, lag: 2 }];
        let text = page(&m);
        assert!(text.contains("\ndlq_consumer_partition_lag{topic=\"orders-dlq\",partition=\"0\"} 2\n"), "{text}");
    }

    /// Every series the hand-written page had, by name and labels, still served.
    #[test]
    fn keeps_every_name_operators_use() {
        let text = page(&Arc::new(Metrics::default()));
        let mut expected: Vec<String> = [
            "dlq_consumed_total 0",
            "dlq_redriven_total 0",
            "dlq_resend_failures_total 0",
            "dlq_parking_failures_total 0",
            "dlq_operator_actions_total{action=\"redrive\"} 0",
            "dlq_operator_actions_total{action=\"discard\"} 0",
            "dlq_commits_total 0",
            "dlq_scheduled 0",
            "dlq_in_flight 0",
            "dlq_paused_partitions 0",
            "dlq_pauses_total 0",
            "dlq_resends_held 0",
            "dlq_database_outages_total 0",
            "dlq_halted 0",
            "dlq_assigned_partitions 0",
            "dlq_build_info{version=\"0.1.0\"",
        ]
        .map(String::from)
        .to_vec();
        expected.extend(ParkReason::ALL.iter().map(|r| format!("dlq_parked_total{{reason=\"{}\"}} 0", r.as_str())));
        #[cfg(target_os = "linux")]
        expected.push("process_resident_memory_bytes ".into());
        for name in &expected {
            assert!(text.lines().any(|l| l.starts_with(name.as_str())), "{name} missing from:\n{text}");
        }
    }
}

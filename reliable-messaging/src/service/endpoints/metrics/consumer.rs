//! [`ConsumerStats`] as `<prefix>_*` counters and gauges, read at scrape time: the consumer
//! core only adds to its atomics and never learns how (or whether) they are exported.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use super::family::{counter, gauge, gauges};
use crate::consumer::ConsumerStats;

impl Collector for ConsumerStats {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let e = &mut encoder;
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        counter(e, "consumed", "Messages polled from Kafka", load(&self.consumed))?;
        counter(e, "done", "Messages handled successfully", load(&self.done))?;
        counter(
            e,
            "rejected",
            "Messages rejected for a business reason (recorded, not retried)",
            load(&self.rejected),
        )?;
        counter(
            e,
            "dead_lettered_transient",
            "Messages handed to the DLQ after transient failures",
            load(&self.dead_lettered_transient),
        )?;
        counter(
            e,
            "dead_lettered_permanent",
            "Messages handed to the DLQ as permanent failures (parked)",
            load(&self.dead_lettered_permanent),
        )?;
        counter(e, "in_place_retries", "In-place retries of transient failures", load(&self.in_place_retries))?;
        counter(e, "commits", "Offset commits the broker confirmed", load(&self.group.commits))?;
        let assigned = self.group.assigned_partitions.load(Ordering::Relaxed) as u64;
        gauge(e, "assigned_partitions", "Partitions currently assigned", assigned)?;
        gauge(
            e,
            "in_flight",
            "Messages polled and taken into processing whose outcome is not durable yet",
            self.in_flight(),
        )?;
        let outage = self.outage.lock().expect("outage lock").clone();
        // One stable series; which dependency is down is said by readiness and the log.
        gauge(e, "paused", "1 while consumption is paused because a dependency is down", u64::from(outage.is_some()))?;
        gauge(
            e,
            "outage_seconds",
            "How long the current dependency outage has lasted (0 when none)",
            outage.as_ref().map_or(0.0, |o| o.since.elapsed().as_secs_f64()),
        )?;
        counter(e, "outages", "Dependency outages the consumer paused for", load(&self.outages))?;
        let halted = self.halted.lock().expect("halt lock").is_some();
        gauge(e, "halted", "1 once the dead-letter flood limit stopped consumption", u64::from(halted))?;
        // Absent until first computed: a 0 before then would claim a caught-up consumer.
        if let Some(lag) = *self.consumer_lag.lock().expect("consumer lag lock") {
            gauge(e, "consumer_lag", "Messages on the assigned partitions not yet committed", lag)?;
        }
        // A family of its own, not a label on consumer_lag: the alerts sum that one unlabelled.
        let mut partitions = self.partition_lag.lock().expect("partition lag lock").clone();
        if !partitions.is_empty() {
            partitions.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
            gauges(
                e,
                "consumer_partition_lag",
                "Messages of one assigned partition not yet committed",
                partitions.into_iter().map(|p| ([("topic", p.topic), ("partition", p.partition.to_string())], p.lag)),
            )?;
        }
        super::stages::encode(&self.stages, e)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use crate::service::endpoints::metrics::MetricsRegistry;

    use super::*;

    fn page(stats: &Arc<ConsumerStats>) -> String {
        let mut registry = MetricsRegistry::new("svc", "0");
        registry.service().register_collector(Box::new(stats.clone()));
        registry.encode().unwrap()
    }

    /// The names operators and the test and benchmark harnesses already use.
    #[test]
    fn keeps_every_name_operators_use() {
        let stats = Arc::new(ConsumerStats::default());
        *stats.consumer_lag.lock().unwrap() = Some(0);
        stats.stages.record("poll", Duration::from_millis(1));
        let page = page(&stats);
        for name in [
            "svc_consumed_total 0",
            "svc_done_total 0",
            "svc_rejected_total 0",
            "svc_dead_lettered_transient_total 0",
            "svc_dead_lettered_permanent_total 0",
            "svc_in_place_retries_total 0",
            "svc_commits_total 0",
            "svc_assigned_partitions 0",
            "svc_in_flight 0",
            "svc_paused 0",
            "svc_outage_seconds 0",
            "svc_outages_total 0",
            "svc_halted 0",
            "svc_consumer_lag 0",
            "svc_stage_seconds_total{stage=\"poll\"} ",
            "svc_stage_calls_total{stage=\"poll\"} 1",
            "svc_build_info{version=\"0\"",
        ] {
            assert!(page.lines().any(|l| l.starts_with(name)), "{name} missing from:\n{page}");
        }
    }

    #[test]
    fn in_flight_is_served_as_the_stats_count_it() {
        // How in_flight is counted is tested beside ConsumerStats; this is that the page shows it.
        let stats = Arc::new(ConsumerStats::default());
        stats.consumed.store(10, Ordering::Relaxed);
        stats.done.store(8, Ordering::Relaxed);
        assert!(page(&stats).contains("\nsvc_in_flight 2\n"));
    }

    #[test]
    fn consumer_lag_is_served_once_known() {
        let stats = Arc::new(ConsumerStats::default());
        assert!(!page(&stats).contains("svc_consumer_lag"));
        *stats.consumer_lag.lock().unwrap() = Some(42);
        assert!(page(&stats).contains("# TYPE svc_consumer_lag gauge\nsvc_consumer_lag 42\n"));
    }

    #[test]
    fn partition_lag_is_one_labelled_series_per_partition_once_known() {
        let stats = Arc::new(ConsumerStats::default());
        assert!(!page(&stats).contains("svc_consumer_partition_lag"));
        *stats.partition_lag.lock().unwrap() = vec![
            crate::consumer::PartitionLag { topic: "t".into(), partition: 1, lag: 7 },
            crate::consumer::PartitionLag { topic: "t".into(), partition: 0, lag: 3 },
        ];
        let page = page(&stats);
        assert!(
            page.contains(
                "# TYPE svc_consumer_partition_lag gauge\nsvc_consumer_partition_lag{topic=\"t\",partition=\"0\"} 3\n\
                 svc_consumer_partition_lag{topic=\"t\",partition=\"1\"} 7\n"
            ),
            "{page}"
        );
    }
}

//! Context rows and notes: the services against Kafka's own tools (ProducerPerformance,
//! EndToEndLatency), single measurements without a goal.

use crate::report::{Goal, Measure, Report, Row};
use crate::rounds::median;

use super::Inputs;

pub(super) fn rows(report: &mut Report, i: &Inputs<'_>) {
    let Inputs { r, gw_max, .. } = i;
    // Context: the services against Kafka's own tools (single measurements).
    let durability = reliable_messaging::kafka::topics::TopicPolicy::default().resolve(r.brokers);
    report.note(format!(
        "Kafka: {} broker(s); every topic of the run replicated {} times with min.insync.replicas {} (what the \
         services declare on such a cluster).",
        r.brokers, durability.replication_factor, durability.min_insync_replicas
    ));
    if let (Ok(rounds), Ok(p)) = (&gw_max, &r.producer_perf) {
        let accepted = median(&rounds.iter().map(|m| m.max.accepted_per_sec).collect::<Vec<_>>());
        report.push(Row::ratio(
            "(context) gateway sign-ups accepted/s (median) ÷ Kafka ProducerPerformance records/s",
            Measure::per_second(accepted),
            Measure::per_second(p.records_per_sec),
            Goal::None,
        ));
    }
    if let (Ok(rounds), Ok(p)) = (&r.drains, &r.producer_perf) {
        let drained = median(&rounds.iter().map(|d| d.batched.rows_per_sec).collect::<Vec<_>>());
        let prefill = median(&rounds.iter().map(|d| d.batched.prefill_per_sec).collect::<Vec<_>>());
        report.push(Row::ratio(
            "(context) registration-service rows/s draining (median) ÷ Kafka ProducerPerformance records/s",
            Measure::per_second(drained),
            Measure::per_second(p.records_per_sec),
            Goal::None,
        ));
        report.push(Row::ratio(
            "(context) our producer (pre-fill, median) records/s ÷ Kafka ProducerPerformance",
            Measure::per_second(prefill),
            Measure::per_second(p.records_per_sec),
            Goal::None,
        ));
    }
    if let Ok(p) = &r.producer_perf {
        report.note(format!(
            "Kafka ProducerPerformance (acks=all, enable.idempotence=true, {} B records, unthrottled): {:.0} records/s, \
             avg latency {:.1} ms, p99 {:.0} ms.",
            r.record_size, p.records_per_sec, p.avg_latency_ms, p.p99_ms
        ));
    }
    if let Ok(k) = &r.kafka_end_to_end {
        report.note(format!(
            "Kafka EndToEndLatency (acks=all, {} B): avg {:.2} ms, p50 {:.0} ms, p99 {:.0} ms.",
            r.record_size, k.avg_ms, k.p50_ms, k.p99_ms
        ));
    }
}

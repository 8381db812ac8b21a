//! What the consumer did and is doing, as counters and gauges for readiness, tests and
//! `/metrics`.
//!
//! Shared (`Arc`) between the run loop, the rebalance callbacks and the HTTP probes, so it is
//! plain atomics and small locks, and holds no Kafka client: a service may serve it before
//! the consumer exists. Nor does it know how it is exported: `crate::service::endpoints::metrics` reads it at
//! scrape time, for the service that chooses to serve it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::consumer::stage_timings::StageTimings;
use crate::dead_letter::HaltReason;
use crate::kafka::group::{GroupGauges, PartitionLag, TopicPartition};

/// Counters of what the consumer did, for readiness, tests and `/metrics`.
#[derive(Debug, Default)]
pub struct ConsumerStats {
    pub consumed: AtomicU64,
    pub done: AtomicU64,
    pub rejected: AtomicU64,
    pub dead_lettered_transient: AtomicU64,
    pub dead_lettered_permanent: AtomicU64,
    pub in_place_retries: AtomicU64,
    /// Assigned partitions and confirmed commits, kept by the rebalance callbacks.
    pub group: Arc<GroupGauges>,
    /// Messages of the assigned partitions past the committed offsets (high watermark minus
    /// committed offset), refreshed every [`LAG_REFRESH`]; `None` until first computed.
    pub consumer_lag: std::sync::Mutex<Option<u64>>,
    /// The same lag per assigned partition, refreshed with it; empty while unknown (no
    /// assignment, or the broker did not answer the last refresh), never stale.
    pub partition_lag: std::sync::Mutex<Vec<PartitionLag>>,
    /// The dependency outage the consumer is paused for, if any.
    pub outage: std::sync::Mutex<Option<Outage>>,
    pub outages: AtomicU64,
    /// Why the consumer halted (dead-letter flood limit), if it did.
    pub halted: std::sync::Mutex<Option<HaltReason>>,
    /// Partitions stopped before a message for a newer consumer (`Outcome::NewerThanConsumer`),
    /// until a rebalance takes them or the consumer restarts.
    pub waiting_for_newer: std::sync::Mutex<BTreeMap<TopicPartition, WaitingForNewer>>,
    /// Messages taken that waited for a newer consumer instead of being settled (counted
    /// again when fetched again).
    pub held_for_newer: AtomicU64,
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

/// Where a partition waits for a newer consumer, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitingForNewer {
    /// The first message it cannot read; nothing from it on is committed.
    pub offset: i64,
    /// The handler's reason, e.g. "needs a newer registration-service: ...".
    pub reason: String,
}

/// How often [`ConsumerStats::consumer_lag`] is recomputed while the consumer runs.
pub const LAG_REFRESH: Duration = Duration::from_secs(1);

impl ConsumerStats {
    /// Messages taken into processing whose outcome is not durable yet: polled, but neither
    /// stored, rejected nor handed to the DLQ, so their offsets must not be committed. A crash
    /// now has to redeliver them; crash tests read it to prove a kill landed on such work.
    /// The batch prefetched while another one is handled is not counted until it is taken.
    pub fn in_flight(&self) -> u64 {
        let settled = [
            &self.done,
            &self.rejected,
            &self.dead_lettered_transient,
            &self.dead_lettered_permanent,
            &self.held_for_newer,
        ]
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
        let waiting = self.waiting_for_newer.lock().expect("waiting lock");
        if let Some((partition, wait)) = waiting.iter().next() {
            // Still in the group and consuming the other partitions; not ready, so a rollout
            // that waits on it shows.
            return Err(format!(
                "{} ({} partition(s) waiting, {}[{}] at offset {})",
                wait.reason,
                waiting.len(),
                partition.topic,
                partition.partition,
                wait.offset
            ));
        }
        Ok(())
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
        stats.done.store(6, Ordering::Relaxed);
        assert_eq!(stats.in_flight(), 0, "everything settled");
    }
}

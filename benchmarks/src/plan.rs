//! How long each measurement runs and how many messages it uses: the full run (~10 minutes
//! on a 2-core machine) or `--quick` (~2 minutes, noisier, for checking the harness itself).

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Plan {
    pub quick: bool,
    /// Raw argon2id: all cores hashing for this long.
    pub argon2_duration: Duration,
    /// Raw argon2id: single-threaded hashes whose median is "one hash".
    pub single_hashes: usize,
    /// Raw upserts: rows written in batches, and rows written one statement each.
    pub raw_batched_rows: usize,
    pub raw_single_rows: usize,
    /// Kafka's ProducerPerformance and EndToEndLatency sizes.
    pub producer_perf_records: usize,
    pub end_to_end_messages: usize,
    /// Gateway: saturation window (after warm-up) and the 50 % open-loop window.
    pub gateway_warmup: Duration,
    pub gateway_max_window: Duration,
    pub gateway_half_load: Duration,
    /// End to end at 50 % load.
    pub end_to_end_load: Duration,
    /// Registration-service: messages drained batched, and with BATCH_SIZE=1.
    pub drain_messages: usize,
    pub single_drain_messages: usize,
    /// The database outage, and the backlog drained after it.
    pub outage: Duration,
    pub outage_messages: usize,
    /// DLQ: other messages waiting, the configured delays probed, probes per delay.
    pub dlq_waiting: usize,
    pub dlq_delays: Vec<Duration>,
    pub dlq_probes_per_delay: usize,
}

impl Plan {
    pub fn full() -> Self {
        Plan {
            quick: false,
            argon2_duration: Duration::from_secs(8),
            single_hashes: 30,
            raw_batched_rows: 40_000,
            raw_single_rows: 3_000,
            producer_perf_records: 200_000,
            end_to_end_messages: 2_000,
            gateway_warmup: Duration::from_secs(3),
            gateway_max_window: Duration::from_secs(20),
            gateway_half_load: Duration::from_secs(40),
            end_to_end_load: Duration::from_secs(40),
            drain_messages: 60_000,
            single_drain_messages: 3_000,
            outage: Duration::from_secs(10),
            outage_messages: 60_000,
            dlq_waiting: 10_000,
            dlq_delays: vec![Duration::from_secs(1), Duration::from_secs(2), Duration::from_secs(5)],
            dlq_probes_per_delay: 5,
        }
    }

    pub fn quick() -> Self {
        Plan {
            quick: true,
            argon2_duration: Duration::from_secs(3),
            single_hashes: 10,
            raw_batched_rows: 10_000,
            raw_single_rows: 1_000,
            producer_perf_records: 50_000,
            end_to_end_messages: 500,
            gateway_warmup: Duration::from_secs(2),
            gateway_max_window: Duration::from_secs(6),
            gateway_half_load: Duration::from_secs(10),
            end_to_end_load: Duration::from_secs(10),
            drain_messages: 15_000,
            single_drain_messages: 800,
            outage: Duration::from_secs(10),
            outage_messages: 15_000,
            dlq_waiting: 10_000,
            dlq_delays: vec![Duration::from_secs(1), Duration::from_secs(2)],
            dlq_probes_per_delay: 2,
        }
    }
}

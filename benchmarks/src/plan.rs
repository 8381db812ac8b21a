//! How long each measurement runs, how many messages it uses, and how many rounds every ratio
//! gets: the full run (5 rounds; about 9 minutes on a quiet 2-core machine, up to ~15 on a
//! busy one) or `--quick` (3 rounds, smaller rounds, about 4 minutes, noisier: for checking
//! the harness itself). Sizes are *per round*; every ratio with a goal is measured `rounds`
//! times, alternating with its raw limit (see `rounds.rs`).

use std::time::Duration;

/// Rounds per ratio in a full run: the fewest that issue 14 accepts for a verdict.
pub const FULL_ROUNDS: usize = 5;
/// Rounds per ratio with `--quick`: the table says the verdicts are from fewer rounds.
pub const QUICK_ROUNDS: usize = 3;

#[derive(Debug, Clone)]
pub struct Plan {
    pub quick: bool,
    /// Alternating rounds of every ratio with a goal (outages of a minute or more: 1).
    pub rounds: usize,
    /// Raw argon2id, per round: all cores hashing for this long, right before the gateway's
    /// saturation window.
    pub argon2_duration: Duration,
    /// Single-threaded hashes whose median is "one hash" (per round of the half load and of the
    /// end-to-end budget).
    pub single_hashes: usize,
    /// Raw upserts, per drain round: rows written one statement each (the context row and the
    /// raw batched ÷ row-by-row figure). The batched raw loop writes as many rows as the batched
    /// drain ([`Plan::raw_batched_rows`]).
    pub raw_single_rows: usize,
    /// Kafka's ProducerPerformance (context, once per run).
    pub producer_perf_records: usize,
    /// Kafka's EndToEndLatency round trips: once per run for the note, and again per
    /// end-to-end round (its budget).
    pub end_to_end_messages: usize,
    /// Single-row upserts whose median is "one commit", per end-to-end round.
    pub commit_samples: usize,
    /// Gateway, per round: warm-up before the first saturation window, before later ones (the
    /// gateway is already warm), the saturation window, and the 50 % open-loop window.
    pub gateway_warmup: Duration,
    pub gateway_rewarm: Duration,
    pub gateway_max_window: Duration,
    pub gateway_half_load: Duration,
    /// End to end at 50 % load, per round.
    pub end_to_end_load: Duration,
    /// Registration-service, per round: messages drained batched, and with BATCH_SIZE=1.
    pub drain_messages: usize,
    pub single_drain_messages: usize,
    /// The database outage (`--outage-secs`), and the sign-ups produced during it, spread
    /// evenly (also the size of each round's baseline drain).
    pub outage: Duration,
    pub outage_messages: usize,
    /// The instruction count: messages of the small and the large drain under callgrind (the
    /// figure is the slope between them, so their difference is what matters).
    pub cost_messages: (usize, usize),
    /// DLQ: other messages waiting, the configured delays probed, probes per delay.
    pub dlq_waiting: usize,
    pub dlq_delays: Vec<Duration>,
    pub dlq_probes_per_delay: usize,
    /// The flood (`--flood-rate`): the flooding client's requests per second.
    pub flood_rate: f64,
}

impl Plan {
    pub fn full() -> Self {
        Plan {
            quick: false,
            rounds: FULL_ROUNDS,
            argon2_duration: Duration::from_secs(5),
            single_hashes: 30,
            raw_single_rows: 3_000,
            producer_perf_records: 200_000,
            end_to_end_messages: 1_000,
            commit_samples: 300,
            gateway_warmup: Duration::from_secs(3),
            gateway_rewarm: Duration::from_secs(1),
            gateway_max_window: Duration::from_secs(10),
            gateway_half_load: Duration::from_secs(15),
            end_to_end_load: Duration::from_secs(15),
            drain_messages: 60_000,
            single_drain_messages: 3_000,
            outage: Duration::from_secs(10),
            outage_messages: 60_000,
            flood_rate: 2_000.0,
            cost_messages: (1_000, 4_000),
            dlq_waiting: 10_000,
            dlq_delays: vec![Duration::from_secs(1), Duration::from_secs(2), Duration::from_secs(5)],
            dlq_probes_per_delay: 5,
        }
    }

    pub fn quick() -> Self {
        Plan {
            quick: true,
            rounds: QUICK_ROUNDS,
            argon2_duration: Duration::from_secs(2),
            single_hashes: 10,
            raw_single_rows: 1_000,
            producer_perf_records: 50_000,
            end_to_end_messages: 300,
            commit_samples: 100,
            gateway_warmup: Duration::from_secs(2),
            gateway_rewarm: Duration::from_secs(1),
            gateway_max_window: Duration::from_secs(4),
            gateway_half_load: Duration::from_secs(6),
            end_to_end_load: Duration::from_secs(6),
            drain_messages: 15_000,
            single_drain_messages: 800,
            outage: Duration::from_secs(10),
            outage_messages: 15_000,
            flood_rate: 2_000.0,
            cost_messages: (500, 2_000),
            dlq_waiting: 10_000,
            dlq_delays: vec![Duration::from_secs(1), Duration::from_secs(2)],
            dlq_probes_per_delay: 2,
        }
    }

    /// Rows the raw batched loop writes per round: exactly the batched drain's, into an equally
    /// empty table. InnoDB slows as the table grows (random keys in the primary and the email
    /// index: one connection wrote 211,000 rows/s for the first 50,000 rows of a fresh table and
    /// 103,000 rows/s from 350,000 to 400,000), so a raw loop writing fewer rows than the drain
    /// measured a faster database than the one the drain met.
    pub fn raw_batched_rows(&self) -> usize {
        self.drain_messages
    }

    /// How the rounds were taken, for the table's ratio cells: "5 rounds", "3 rounds, --quick".
    pub fn rounds_label(&self, rounds: usize) -> String {
        let noun = if rounds == 1 { "round" } else { "rounds" };
        match (self.quick, rounds < FULL_ROUNDS) {
            (true, _) => format!("{rounds} {noun}, --quick"),
            (false, true) => format!("{rounds} {noun}, fewer than {FULL_ROUNDS}"),
            (false, false) => format!("{rounds} {noun}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_says_how_many_rounds_and_whether_quick() {
        assert_eq!(Plan::full().rounds_label(5), "5 rounds");
        assert_eq!(Plan::full().rounds_label(3), "3 rounds, fewer than 5");
        assert_eq!(Plan::quick().rounds_label(3), "3 rounds, --quick");
        assert_eq!(Plan::quick().rounds_label(1), "1 round, --quick");
    }
}

//! Figures 3 and 4: the registration-service draining a pre-filled topic against raw batched
//! upserts, batched against row by row, and the raw limits' own ratio for context.

use crate::report::{Goal, Measure, Report};
use crate::rounds::Paired;
use crate::scenarios::drain::DrainRound;

use super::{one, rounds_row, Inputs};

pub(super) fn rows(report: &mut Report, i: &Inputs<'_>) {
    let Inputs { r, plan, label, .. } = i;
    // 3. and 4. Registration-service drain, and the raw limits' own ratio for context.
    let drain_vs_raw =
        |rounds: &Vec<DrainRound>| paired(rounds, |d| (d.batched.rows_per_sec, d.raw.batched_rows_per_sec));
    let batched_vs_single =
        |rounds: &Vec<DrainRound>| paired(rounds, |d| (d.batched.rows_per_sec, d.single.rows_per_sec));
    let raw_vs_raw =
        |rounds: &Vec<DrainRound>| paired(rounds, |d| (d.raw.batched_rows_per_sec, d.raw.single_rows_per_sec));
    let figure = "registration-service rows/s draining ÷ raw batched upsert rows/s";
    report.push(one(figure, "≥ 0.8", &r.drains, |rounds| {
        rounds_row(figure, &drain_vs_raw(rounds), Measure::per_second, Goal::AtLeast(0.8), label)
    }));
    let drain_vs_beside = |rounds: &Vec<DrainRound>| {
        paired(rounds, |d| (d.batched.rows_per_sec, d.raw_beside_kafka.batched_rows_per_sec))
    };
    let beside_vs_raw = |rounds: &Vec<DrainRound>| {
        paired(rounds, |d| (d.raw_beside_kafka.batched_rows_per_sec, d.raw.batched_rows_per_sec))
    };
    let figure = "(control) raw batched upsert beside a Kafka read at the drain's rate ÷ raw alone";
    report.push(one(figure, "—", &r.drains, |rounds| {
        rounds_row(figure, &beside_vs_raw(rounds), Measure::per_second, Goal::None, label)
    }));
    let figure = "(control) drain ÷ raw batched upsert beside that Kafka read";
    report.push(one(figure, "—", &r.drains, |rounds| {
        rounds_row(figure, &drain_vs_beside(rounds), Measure::per_second, Goal::None, label)
    }));
    let figure = "the same, batched ÷ row by row (BATCH_SIZE=1)";
    report.push(one(figure, "≥ 10", &r.drains, |rounds| {
        rounds_row(figure, &batched_vs_single(rounds), Measure::per_second, Goal::AtLeast(10.0), label)
    }));
    let figure = "(context) raw batched ÷ raw row-by-row upserts";
    report.push(one(figure, "—", &r.drains, |rounds| {
        rounds_row(figure, &raw_vs_raw(rounds), Measure::per_second, Goal::None, label)
    }));
    if let Ok(rounds) = &r.drains {
        report.note(format!(
            "Drain rounds (in this order: raw upserts, batched drain, row-by-row drain). Raw: {} rows in statements of \
             {} (the service's batch size), one autocommitted statement each, then {} rows one per statement. Drains: \
             {} messages (batched) and {} (BATCH_SIZE=1) pre-filled on 3 partitions, rate from the first outcome to \
             the last. Per round drain ÷ raw batched: {}; batched ÷ row by row: {}; raw batched ÷ raw row by row: {}. \
             Consumer lag on /metrics after the batched drains: {}. Control, after each round's drains: the raw batched \
             loop again, while a bare consumer in the harness re-reads the batched drain's topic at the rate the service \
             drained it (Kafka messages/s reached per round: {}); it takes from MariaDB what serving Kafka takes on \
             this machine, and nothing of our code.",
            plan.raw_batched_rows(),
            rounds.first().map_or(0, |d| d.raw.batch_size),
            plan.raw_single_rows,
            plan.drain_messages,
            plan.single_drain_messages,
            drain_vs_raw(rounds).describe(|v| format!("{v:.0}")),
            batched_vs_single(rounds).describe(|v| format!("{v:.0}")),
            raw_vs_raw(rounds).describe(|v| format!("{v:.0}")),
            rounds
                .iter()
                .map(|d| d.batched.final_lag.map_or("not exposed".to_owned(), |l| format!("{l}")))
                .collect::<Vec<_>>()
                .join(", "),
            rounds
                .iter()
                .map(|d| format!("{:.0}", d.raw_beside_kafka.kafka_messages_per_sec))
                .collect::<Vec<_>>()
                .join(", "),
        ));
        if let Some(last) = rounds.last() {
            report.note(format!(
                "Batched drain, where the registration-service's time went (last round, from its /metrics): {}.",
                last.batched.stages
            ));
        }
    }
}

/// Each round's (ours, its limit) as `pick` takes them from the round.
fn paired(rounds: &[DrainRound], pick: impl Fn(&DrainRound) -> (f64, f64)) -> Paired {
    rounds.iter().map(pick).collect()
}

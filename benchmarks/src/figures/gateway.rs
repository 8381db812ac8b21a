//! Figures 1 and 2: the gateway's saturation rate against the raw argon2id hash rate, and its
//! p99 at half that rate against one hash.

use crate::report::{Goal, Measure, Report};
use crate::rounds::Paired;

use super::{describe_latency, millis, ms, one, rounds_row, Inputs};

pub(super) fn rows(report: &mut Report, i: &Inputs<'_>) {
    let Inputs { plan, label, gw_max, gw_half, .. } = i;
    // 1. Gateway throughput against the hash rate.
    let figure = "gateway sign-ups accepted/s ÷ raw argon2id hashes/s";
    report.push(one(figure, "≥ 0.9", gw_max, |rounds| {
        let paired: Paired = rounds.iter().map(|m| (m.max.accepted_per_sec, m.raw_hashes_per_sec)).collect();
        rounds_row(figure, &paired, Measure::per_second, Goal::AtLeast(0.9), label)
    }));
    if let Ok(rounds) = &gw_max {
        let paired: Paired = rounds.iter().map(|m| (m.max.accepted_per_sec, m.raw_hashes_per_sec)).collect();
        let other: u64 = rounds.iter().map(|m| m.max.load.not_accepted()).sum();
        report.note(format!(
            "Gateway saturation, per round (accepted/s ÷ argon2id hashes/s on {} threads for {:.0} s right before): {}. \
             {} closed-loop clients; accepted/s from the gateway's own gateway_registrations_accepted_total over a \
             {:.0} s window after a warm-up ({:.0} s in the first round, {:.0} s later); answers other than 202 over \
             all rounds: {other}; client-side latency in the last round {}.",
            rounds.first().map_or(0, |m| m.threads),
            plan.argon2_duration.as_secs_f64(),
            paired.describe(|v| format!("{v:.1}")),
            crate::scenarios::gateway::saturating_clients(),
            plan.gateway_max_window.as_secs_f64(),
            plan.gateway_warmup.as_secs_f64(),
            plan.gateway_rewarm.as_secs_f64(),
            rounds.last().map_or("—".to_owned(), |m| describe_latency(&m.max.load.accepted_latency_us)),
        ));
    }

    // 2. Gateway latency at half load against one hash.
    let figure = "gateway p99 at 50% of max rate ÷ one hash time";
    report.push(one(figure, "≤ 1.5", gw_half, |rounds| {
        let paired: Paired = rounds
            .iter()
            .map(|h| (ms(h.load.accepted_latency_us.value_at_quantile(0.99)), millis(h.one_hash)))
            .collect();
        rounds_row(figure, &paired, Measure::millis, Goal::AtMost(1.5), label)
    }));
    let figure = "(control) argon2id alone at the same rate and slots, p99 ÷ one hash time";
    report.push(one(figure, "—", gw_half, |rounds| {
        let paired: Paired =
            rounds.iter().map(|h| (ms(h.hashing_only.value_at_quantile(0.99)), millis(h.one_hash))).collect();
        rounds_row(figure, &paired, Measure::millis, Goal::None, label)
    }));
    if let Ok(rounds) = &gw_half {
        report.note(format!(
            "Hashing-only control, after each half-load round: the same arrival rate for {:.0} s, hashed by one \
             thread per CPU in arrival order with no HTTP and no broker, latency from the intended arrival; last \
             round {}.",
            plan.gateway_half_load.min(std::time::Duration::from_secs(10)).as_secs_f64(),
            rounds.last().map_or("—".to_owned(), |h| describe_latency(&h.hashing_only)),
        ));
        let paired: Paired = rounds
            .iter()
            .map(|h| (ms(h.load.accepted_latency_us.value_at_quantile(0.99)), millis(h.one_hash)))
            .collect();
        let not_accepted: u64 = rounds.iter().map(|h| h.load.not_accepted()).sum();
        report.note(format!(
            "Gateway at 50%: open loop at {:.1} requests/s (half the median saturation rate; constant arrival rate, \
             latency from the intended send time) for {:.0} s per round; per round p99 ÷ one hash (median of {} \
             single-thread hashes timed right before the load): {}; not accepted over all rounds: {not_accepted}; \
             last round {}.",
            rounds.first().map_or(f64::NAN, |h| h.rate),
            plan.gateway_half_load.as_secs_f64(),
            plan.single_hashes,
            paired.describe(|v| format!("{v:.1} ms")),
            rounds.last().map_or("—".to_owned(), |h| describe_latency(&h.load.accepted_latency_us)),
        ));
        if let Some(last) = rounds.last() {
            report
                .note(format!("Gateway at 50%, where its time went (last round, from its /metrics): {}.", last.stages));
        }
    }
}

//! Figure 5: end-to-end latency (request → row committed) at half the gateway's saturation
//! rate, against a budget of Kafka's own end-to-end p99 plus one hash plus one commit.

use crate::report::{Goal, Measure, Report};
use crate::rounds::Paired;

use super::{describe_latency, millis, ms, one, rounds_row, Inputs};

pub(super) fn rows(report: &mut Report, i: &Inputs<'_>) {
    let Inputs { plan, label, gw_e2e, .. } = i;
    // 5. End to end.
    let e2e_figure = "end-to-end p99 (request → row committed) at 50% ÷ (Kafka e2e p99 + one hash + one commit)";
    report.push(one(e2e_figure, "≤ 2", gw_e2e, |rounds| {
        let paired: Paired =
            rounds.iter().map(|e| (ms(e.measured.created_us.value_at_quantile(0.99)), e.budget.millis())).collect();
        rounds_row(e2e_figure, &paired, Measure::millis, Goal::AtMost(2.0), label)
    }));
    if let Ok(rounds) = &gw_e2e {
        let paired: Paired =
            rounds.iter().map(|e| (ms(e.measured.created_us.value_at_quantile(0.99)), e.budget.millis())).collect();
        let budgets: Vec<String> = rounds
            .iter()
            .map(|e| {
                format!(
                    "{:.0} + {:.1} + {:.2}",
                    e.budget.kafka_p99_ms,
                    millis(e.budget.one_hash),
                    millis(e.budget.one_commit)
                )
            })
            .collect();
        if let Some(last) = rounds.last() {
            let e = &last.measured;
            report.note(format!(
                "End to end at {:.1}/s for {:.0} s per round, gateway + one registration-service; per round p99 ÷ budget: \
                 {}; budgets (Kafka EndToEndLatency p99 of {} round trips + one hash + one commit, in ms, measured right \
                 before each load): {}. Last round: request → row's created_at (the commit follows within ~1 ms) {}; \
                 request → row seen committed by a 20 ms poller (upper bound) p99 {:.1} ms; 202 → created_at p99 \
                 {:.1} ms; {} accepted, {} not accepted, {} rows missed by the poller.",
                e.rate,
                plan.end_to_end_load.as_secs_f64(),
                paired.describe(|v| format!("{v:.1} ms")),
                plan.end_to_end_messages,
                budgets.join("; "),
                describe_latency(&e.created_us),
                ms(e.polled_us.value_at_quantile(0.99)),
                ms(e.after_202_us.value_at_quantile(0.99)),
                e.accepted,
                e.not_accepted,
                e.missed_by_poller,
            ));
        }
    }
}

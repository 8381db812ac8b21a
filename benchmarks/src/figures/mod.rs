//! Turns everything a run measured into the table of issue 6, in its order, with notes that
//! say how each number was obtained. A measurement that failed becomes an ERROR row with the
//! reason, never a silently missing one.
//!
//! Every ratio with a goal comes from alternating rounds (issue 14): the `ours` and `raw limit`
//! cells are the medians of the rounds, the ratio cell the median of the per-round ratios with
//! their spread, and the verdict is judged on the whole spread. Budgets (memory, start-up)
//! report the worst round.

mod budgets;
mod context;
mod cost;
mod dlq;
mod drain;
mod end_to_end;
mod flood;
mod gateway;
mod outage;

use std::time::Duration;

use hdrhistogram::Histogram;

use crate::plan::Plan;
use crate::raw::kafka_tools::{EndToEnd as KafkaEndToEnd, ProducerPerf};
use crate::report::{Goal, Measure, Report, Row};
use crate::rounds::{worst, Paired};
use crate::scenarios::cost::InstructionCost;
use crate::scenarios::dlq::DlqPunctuality;
use crate::scenarios::drain::DrainRound;
use crate::scenarios::end_to_end::EndToEndRound;
use crate::scenarios::flood::FloodFigures;
use crate::scenarios::gateway::{HalfLoad, MaxRateRound};
use crate::scenarios::outage::OutageRounds;

pub type Measured<T> = anyhow::Result<T>;

pub struct GatewayFigures {
    pub ready_after: Duration,
    pub idle_rss_mib: f64,
    pub max: Measured<Vec<MaxRateRound>>,
    pub half: Measured<Vec<HalfLoad>>,
    pub end_to_end: Measured<Vec<EndToEndRound>>,
}

pub struct Results {
    pub producer_perf: Measured<ProducerPerf>,
    pub kafka_end_to_end: Measured<KafkaEndToEnd>,
    pub record_size: usize,
    pub gateway: Measured<GatewayFigures>,
    /// Raw upserts, batched drain, row-by-row drain, per round.
    pub drains: Measured<Vec<DrainRound>>,
    /// Baseline drain, then a drain after an outage, per round.
    pub outage: Measured<OutageRounds>,
    pub dlq: Measured<DlqPunctuality>,
    /// Instructions per message of the consumer, from two drains under callgrind.
    pub cost: Measured<InstructionCost>,
    /// The well-behaved client beside a one-client flood, budget on and off.
    pub flood: Measured<FloodFigures>,
    /// Brokers of the Kafka cluster the run used (topics replicated min(3, brokers) times).
    pub brokers: usize,
}

/// A row from a measurement, or an ERROR row with its reason.
fn one<A>(figure: &str, goal: &str, a: &Measured<A>, row: impl FnOnce(&A) -> Row) -> Row {
    match a {
        Ok(a) => row(a),
        Err(e) => Row::error(figure, goal, e),
    }
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn describe_latency(h: &Histogram<u64>) -> String {
    format!(
        "p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {} requests",
        ms(h.value_at_quantile(0.5)),
        ms(h.value_at_quantile(0.9)),
        ms(h.value_at_quantile(0.99)),
        ms(h.max()),
        h.len()
    )
}

/// A ratio row from rounds: medians of each column, median and spread of the ratios.
fn rounds_row(figure: &str, paired: &Paired, unit: fn(f64) -> Measure, goal: Goal, label: &str) -> Row {
    Row::from_rounds(
        figure,
        unit(paired.median_ours()).to_string(),
        unit(paired.median_raw()).to_string(),
        &paired.ratios(),
        goal,
        label,
    )
}

/// A budget row from the worst round; an ERROR row with `why_not` (the failed or skipped
/// phase's error) when no round measured it.
fn worst_row(
    figure: &str,
    goal: Goal,
    goal_text: &str,
    values: Vec<f64>,
    unit: fn(f64) -> Measure,
    why_not: Option<&anyhow::Error>,
) -> Row {
    match worst(values) {
        Some(v) => Row::absolute(figure, unit(v), goal),
        None => Row::error(figure, goal_text, &why_not.map_or(anyhow::anyhow!("not measured in this run"), clone_err)),
    }
}

pub fn report(r: &Results, plan: &Plan) -> Report {
    let mut report = Report::default();
    let label = plan.rounds_label(plan.rounds);
    report.note(format!(
        "Rounds: every ratio with a goal is the median of {} alternating rounds of ours and its raw limit in this run{} \
         (each round's ratio = ours ÷ the raw limit measured right before it); the ours and raw-limit cells are the \
         medians of the rounds, the ratio cell shows the median ratio and the spread (min–max) of the rounds. A verdict \
         is yes when the whole spread meets the goal, NO when the whole spread misses it, and unsettled (counted as not \
         met) when the spread crosses the goal. Memory and start-up rows are the worst round.",
        plan.rounds,
        if plan.quick { " (--quick: fewer rounds than the 5 a trusted verdict needs, smaller rounds)" } else { "" }
    ));
    let gateway: Measured<&GatewayFigures> = r.gateway.as_ref().map_err(clone_err);
    let gw_max: Measured<&Vec<MaxRateRound>> =
        gateway.as_ref().map_err(clone_err).and_then(|g| g.max.as_ref().map_err(clone_err));
    let gw_half: Measured<&Vec<HalfLoad>> =
        gateway.as_ref().map_err(clone_err).and_then(|g| g.half.as_ref().map_err(clone_err));
    let gw_e2e: Measured<&Vec<EndToEndRound>> =
        gateway.as_ref().map_err(clone_err).and_then(|g| g.end_to_end.as_ref().map_err(clone_err));

    // The sections in the order, each in its own file.
    let inputs = Inputs { r, plan, label, gateway, gw_max, gw_half, gw_e2e };
    gateway::rows(&mut report, &inputs); // 1. and 2.
    drain::rows(&mut report, &inputs); // 3. and 4.
    end_to_end::rows(&mut report, &inputs); // 5.
    dlq::rows(&mut report, &inputs); // 6.
    cost::rows(&mut report, &inputs);
    flood::rows(&mut report, &inputs);
    // 7. Drain after an outage, against the same service's drain over the same path.
    outage::outage_rows(&mut report, r, plan);
    budgets::rows(&mut report, &inputs); // 8. and 9.
    context::rows(&mut report, &inputs);
    report
}

/// What every section of the table reads: the run's results and plan, the rounds label, and
/// the gateway's phases (each the gateway's or the phase's error when it failed).
struct Inputs<'a> {
    r: &'a Results,
    plan: &'a Plan,
    label: String,
    gateway: Measured<&'a GatewayFigures>,
    gw_max: Measured<&'a Vec<MaxRateRound>>,
    gw_half: Measured<&'a Vec<HalfLoad>>,
    gw_e2e: Measured<&'a Vec<EndToEndRound>>,
}

/// anyhow errors are not `Clone`; a figure that depends on a failed one repeats its message.
fn clone_err(e: &anyhow::Error) -> anyhow::Error {
    anyhow::anyhow!("{e:#}")
}

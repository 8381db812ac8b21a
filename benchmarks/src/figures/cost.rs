//! The consumer's instructions per message against its budget: the one figure of the table
//! that does not move with the machine's load, so it can fail a run on its own.

use crate::report::{Goal, Measure, Report, Row};

use super::{one, Inputs};

/// Instructions per message of the consumer's own work, measured on a release build of this
/// commit's tree with `scripts/bench.sh --only cost`. Raise it only with a change that is
/// worth its cost, and say so in the commit; lower it when a change makes the consumer cheaper.
pub const INSTRUCTIONS_PER_MESSAGE_BUDGET: f64 = 29_500.0;
/// How far above the budget a run may come before it fails: the two drains' batches are not
/// cut identically from run to run, which moved the figure by less than this.
pub const MARGIN: f64 = 0.10;

pub(super) fn rows(report: &mut Report, i: &Inputs<'_>) {
    let figure = "consumer instructions per message (callgrind) ÷ budget";
    let goal = format!("≤ {:.2}", 1.0 + MARGIN);
    report.push(one(figure, &goal, &i.r.cost, |c| {
        Row::ratio(
            figure,
            Measure::count(c.per_message()),
            Measure::count(INSTRUCTIONS_PER_MESSAGE_BUDGET),
            Goal::AtMost(1.0 + MARGIN),
        )
    }));
    if let Ok(c) = &i.r.cost {
        report.note(format!(
            "Instructions: counted by valgrind's callgrind inside ReliableConsumer::run (stages, handler, statements, \
             librdkafka calls; not librdkafka's broker threads, the HTTP server or start-up) for drains of {} and {} \
             messages ({} and {} instructions); the figure is the slope between them, so what every drain pays once \
             cancels out. Unlike the wall-clock rows it is the same on a busy machine; the raw-limit cell is the \
             budget in benchmarks/src/figures/cost.rs.",
            c.messages.0, c.messages.1, c.instructions.0, c.instructions.1
        ));
    }
}

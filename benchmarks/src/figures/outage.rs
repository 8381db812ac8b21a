//! Figure 7: the registration-service's drain after a database outage, against the same
//! service's drain over the same path, and what it sent to the DLQ meanwhile.

use crate::plan::Plan;
use crate::report::{Goal, Measure, Report, Row};
use crate::rounds::{worst, Paired};
use crate::scenarios::outage::{OutageBy, OutageRounds};

use super::{one, rounds_row, Results};

/// The outage's ratio (recovery ÷ max drain, in rounds), what it sent to the DLQ, and a note.
pub(super) fn outage_rows(report: &mut Report, r: &Results, plan: &Plan) {
    let secs = plan.outage.as_secs_f64();
    let by = r.outage.as_ref().map_or(OutageBy::DbStop, |o| o.by);
    let how = match by {
        OutageBy::DbStop => "MariaDB stopped",
        OutageBy::Proxy => "TCP proxy cut",
    };
    let figure = format!(
        "drain rate after a {secs:.0} s database outage ({how}), counted from the restore ÷ max drain rate ({})",
        by.path()
    );
    report.push(one(&figure, "≥ 0.9", &r.outage, |o| {
        let paired: Paired =
            o.rounds.iter().map(|round| (round.outage.rows_per_sec_after, round.baseline.rows_per_sec)).collect();
        let mut label = plan.rounds_label(o.rounds.len());
        if o.rounds.len() == 1 && o.outage >= crate::scenarios::outage::LONG_OUTAGE {
            label = format!("{label}: outages of 60 s or more get one");
        }
        rounds_row(&figure, &paired, Measure::per_second, Goal::AtLeast(0.9), &label)
    }));
    if let Ok(OutageRounds { restart_control: Some(control), .. }) = &r.outage {
        let figure = "(control) raw batched upsert of one backlog counted from a MariaDB restart ÷ the same warm";
        report.push(match control {
            Ok(c) => Row::ratio(
                figure,
                Measure::per_second(c.from_restore_rows_per_sec),
                Measure::per_second(c.warm_rows_per_sec),
                Goal::None,
            ),
            Err(e) => Row::error(figure, "—", e),
        });
        if let Ok(c) = control {
            report.note(format!(
                "Restart control: the raw loop writes {} rows in statements of the service's batch size on the warm \
                 server ({:.0} rows/s), then MariaDB is stopped and started (db-start took {:.1} s) and the same \
                 number of new rows is written, the loop starting at the restarted server's first accepted connection \
                 and counted from there ({:.0} rows/s), as the outage figure \
                 counts. What the raw loop loses there is the restarted server's, not the consumer's.",
                c.rows,
                c.warm_rows_per_sec,
                c.start_took.as_secs_f64(),
                c.from_restore_rows_per_sec,
            ));
        }
    }
    let dlq_figure = format!("messages dead-lettered or parked during the {secs:.0} s outage (worst round)");
    report.push(one(&dlq_figure, "≤ 0", &r.outage, |o| {
        let sent = worst(o.rounds.iter().map(|round| round.outage.sent_to_dlq())).unwrap_or(0.0);
        Row::absolute(&dlq_figure, Measure::count(sent), Goal::AtMost(0.0))
    }));
    if let Ok(o) = &r.outage {
        let paired: Paired =
            o.rounds.iter().map(|round| (round.outage.rows_per_sec_after, round.baseline.rows_per_sec)).collect();
        let per_round: Vec<String> = o
            .rounds
            .iter()
            .map(|round| {
                let x = &round.outage;
                format!(
                    "down {:.1} s (taking it away took {:.1} s, bringing it back {:.1} s), {} sign-ups produced \
                     evenly over {:.1} s, backlog {} at the restore, {}, then {:.0}/s; dead-lettered {}, parked {}; \
                     paused: {}{}; stored {}",
                    x.down_for.as_secs_f64(),
                    x.stop_took.as_secs_f64(),
                    x.start_took.as_secs_f64(),
                    x.load.records,
                    x.load.spread_over.as_secs_f64(),
                    x.backlog,
                    if x.outcomes_before_restore > 0.0 {
                        format!("{:.0} outcomes already while db-start ran", x.outcomes_before_restore)
                    } else {
                        format!("first new outcome {:.2} s after it", x.recovery.as_secs_f64())
                    },
                    x.rows_per_sec_once_recovered,
                    x.dead_lettered,
                    x.parked,
                    x.paused.map_or("gauge not exposed", |p| if p { "yes" } else { "no" }),
                    x.paused_for.map_or(String::new(), |s| format!(" (outage gauge up to {s:.1} s)")),
                    x.stored,
                )
            })
            .collect();
        report.note(format!(
            "Outage ({}): the service runs on an empty topic, the database is taken away, {} sign-ups are produced \
             evenly over the outage, then it is brought back; rate = backlog at the restore ÷ time from the restore \
             (the restarted server's first accepted TCP connection, polled every 5 ms while db-start runs / the \
             proxy restored) to the last outcome. Baseline: a drain of {} pre-filled messages \
             over the same path ({}) right before each outage. Per round outage ÷ baseline: {}. Rounds: {}.",
            o.by.describe(),
            plan.outage_messages,
            plan.outage_messages,
            o.by.path(),
            paired.describe(|v| format!("{v:.0}")),
            per_round.join(" | "),
        ));
        if let Some(last) = o.rounds.last() {
            report.note(format!(
                "Outage, where the registration-service's time went from the db-start call to the last outcome (last round, \
                 from its /metrics): {}.",
                last.outage.stages
            ));
        }
    }
}

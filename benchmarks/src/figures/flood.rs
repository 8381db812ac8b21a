//! The flood (issue 25): the well-behaved client's success rate beside a one-client flood
//! with the per-client budget on (goal: at least 99 % accepted), the same with it off as the
//! comparison, and the flooder's answers in a note.

use crate::report::{Goal, Report, Row};
use crate::scenarios::flood::{self, FloodFigures, FloodRun};

use super::{one, Inputs};

pub(super) fn rows(report: &mut Report, i: &Inputs<'_>) {
    let figure = format!(
        "well-behaved sign-ups accepted ({}/s) beside a one-client flood ({:.0}/s, {} s), budget on | off",
        flood::POLITE_RATE,
        i.plan.flood_rate,
        flood::DURATION.as_secs()
    );
    report.push(one(&figure, "≥ 0.99", &i.r.flood, |f| row(&figure, f)));
    if let Ok(f) = &i.r.flood {
        report.note(format!(
            "Flood: budget {} a minute, {} at once, per client address (X-Forwarded-For from a trusted \
             127.0.0.1). {} {}",
            flood::PER_MINUTE,
            flood::BURST,
            describe(&f.on),
            describe(&f.off)
        ));
    }
}

fn row(figure: &str, f: &FloodFigures) -> Row {
    let cell = |run: &FloodRun| {
        format!(
            "{}/{} ({:.0} %), p99 {}",
            run.polite.accepted.len(),
            run.polite.sent,
            100.0 * run.polite_success(),
            run.polite_p99_ms().map_or("—".to_owned(), |p| format!("{p:.0} ms"))
        )
    };
    let mut row = Row::with_ratio(
        figure,
        format!("on: {}", cell(&f.on)),
        format!("off: {}", cell(&f.off)),
        f.on.polite_success(),
        Goal::AtLeast(0.99),
    );
    row.ratio = format!("{:.2} | {:.2}", f.on.polite_success(), f.off.polite_success());
    row
}

fn describe(run: &FloodRun) -> String {
    format!(
        "Budget {}: the flooder sent {}, {} answered 202, the others {:?} (status: count; 0 = no answer); the \
         well-behaved client's non-202s {:?}; gateway peak RSS {:.0} MiB.",
        if run.limit_on { "on" } else { "off" },
        run.flooder.sent,
        run.flooder.accepted.len(),
        run.flooder.other,
        run.polite.other,
        run.peak_rss_mib
    )
}

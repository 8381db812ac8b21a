//! The flood (issue 25): the well-behaved client's success rate beside a one-client flood
//! with the per-client budget on (goal: at least 99 % accepted), the same with it off as the
//! comparison, and the flooder's answers in a note.

use crate::report::{Goal, Report, Row};
use crate::scenarios::flood::{self, ClientAnswers, FloodFigures, FloodRun};

use super::{one, Inputs};

pub(super) fn rows(report: &mut Report, i: &Inputs<'_>) {
    let figure = format!(
        "well-behaved sign-ups accepted ({}/s) beside a one-client flood ({:.0}/s, {} s), budget on | off",
        flood::POLITE_RATE,
        flood::FLOOD_RATE,
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
    let cell = |c: &ClientAnswers| {
        format!(
            "{}/{} ({:.0} %), p99 {}",
            c.accepted(),
            c.sent,
            100.0 * c.success_rate(),
            c.p99_ms().map_or("—".to_owned(), |p| format!("{p:.0} ms"))
        )
    };
    let mut row = Row::with_ratio(
        figure,
        format!("on: {}", cell(&f.on.polite)),
        format!("off: {}", cell(&f.off.polite)),
        f.on.polite.success_rate(),
        Goal::AtLeast(0.99),
    );
    row.ratio = format!("{:.2} | {:.2}", f.on.polite.success_rate(), f.off.polite.success_rate());
    row
}

fn describe(run: &FloodRun) -> String {
    format!(
        "Budget {}: the flooder sent {} and was answered {:?} (status: count; 0 = no answer), the well-behaved \
         client {:?}; gateway peak RSS {:.0} MiB.",
        if run.limit_on { "on" } else { "off" },
        run.flooder.sent,
        run.flooder.by_status,
        run.polite.by_status,
        run.peak_rss_mib
    )
}

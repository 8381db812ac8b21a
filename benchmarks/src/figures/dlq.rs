//! Figure 6: the dlq-worker's punctuality, each probe's re-send time against its configured
//! delay while 10,000 other messages wait.

use crate::report::{Goal, Report, Row};
use crate::scenarios::dlq::DlqPunctuality;

use super::{one, Inputs};

pub(super) fn rows(report: &mut Report, i: &Inputs<'_>) {
    let Inputs { r, .. } = i;
    // 6. DLQ punctuality.
    let dlq_figure = "DLQ re-send time ÷ configured delay (≥ 1 s, 10,000 others waiting)";
    report.push(one(dlq_figure, "1.0–1.1", &r.dlq, |d| dlq_row(dlq_figure, d)));
    if let Ok(d) = &r.dlq {
        let probes: Vec<String> = d
            .probes
            .iter()
            .map(|p| format!("{:.0} s → {:.3} s", p.delay.as_secs_f64(), p.resent_after.as_secs_f64()))
            .collect();
        report.note(format!(
            "DLQ: {} messages waiting (due in an hour) while probes were re-sent (delay → re-send time, from the \
             re-sent record's timestamp): {}; paused partitions at the end: {}.",
            d.waiting,
            probes.join(", "),
            d.paused_partitions
        ));
    }
}

fn dlq_row(figure: &str, d: &DlqPunctuality) -> Row {
    let ratios: Vec<f64> = d.probes.iter().map(|p| p.ratio()).collect();
    let min = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    let max = ratios.iter().copied().fold(0.0, f64::max);
    let worst = d.probes.iter().max_by(|a, b| a.ratio().total_cmp(&b.ratio()));
    let ours = worst.map_or("—".to_owned(), |p| {
        format!("worst: {:.3} s for {:.0} s", p.resent_after.as_secs_f64(), p.delay.as_secs_f64())
    });
    let mut row = Row::with_ratio(figure, ours, "configured delay".to_owned(), max, Goal::Between(1.0, 1.1));
    if !ratios.is_empty() {
        row.ratio = format!("{min:.3}–{max:.3}");
    }
    if min < 1.0 {
        row.verdict = crate::report::Verdict::Missed;
    }
    if let Some(problem) = &d.probe_problem {
        row.verdict = crate::report::Verdict::Error(problem.clone());
    }
    row
}

//! Figures 8 and 9, the budgets: each service's memory (idle and under load) and its time from
//! start to ready, the worst round of the run.

use crate::report::{Goal, Measure, Report, Row};
use crate::rounds::worst;
use crate::scenarios::drain::Drain;

use super::{one, worst_row, Inputs};

pub(super) fn rows(report: &mut Report, i: &Inputs<'_>) {
    let Inputs { r, gateway, .. } = i;
    // 8. Memory: the worst round.
    let rss_idle = Goal::AtMost(50.0);
    let rss_load = Goal::AtMost(150.0);
    report.push(one("gateway RSS idle", "≤ 50 MiB", gateway, |g| {
        Row::absolute("gateway RSS idle", Measure::mib(g.idle_rss_mib), rss_idle)
    }));
    report.push(one("gateway RSS under load (worst round)", "≤ 150 MiB", gateway, |g| {
        let peaks =
            g.max.iter().flatten().map(|m| m.max.peak_rss_mib).chain(g.half.iter().flatten().map(|h| h.peak_rss_mib));
        Row::absolute("gateway RSS under load (worst round)", Measure::mib(worst(peaks).unwrap_or(0.0)), rss_load)
    }));
    let outage_rounds = r.outage.as_ref().map(|o| o.rounds.as_slice()).unwrap_or_default();
    report.push(worst_row(
        "registration-service RSS idle (worst round)",
        rss_idle,
        "≤ 50 MiB",
        outage_rounds.iter().map(|o| o.outage.idle_rss_mib).collect(),
        Measure::mib,
        r.outage.as_ref().err(),
    ));
    let drain_rounds = r.drains.as_ref().map(Vec::as_slice).unwrap_or_default();
    let batched_drains: Vec<&Drain> =
        drain_rounds.iter().map(|d| &d.batched).chain(outage_rounds.iter().map(|o| &o.baseline)).collect();
    report.push(worst_row(
        "registration-service RSS under load (worst batched drain)",
        rss_load,
        "≤ 150 MiB",
        batched_drains.iter().map(|d| d.peak_rss_mib).collect(),
        Measure::mib,
        r.drains.as_ref().err(),
    ));
    report.push(one("dlq-worker RSS idle", "≤ 50 MiB", &r.dlq, |d| {
        Row::absolute("dlq-worker RSS idle", Measure::mib(d.idle_rss_mib), rss_idle)
    }));
    report.push(one("dlq-worker RSS with 10,000 waiting", "≤ 150 MiB", &r.dlq, |d| {
        Row::absolute("dlq-worker RSS with 10,000 waiting", Measure::mib(d.peak_rss_mib), rss_load)
    }));

    // 9. Start-up: the worst start.
    let ready = Goal::AtMost(1.0);
    report.push(one("gateway start → ready", "≤ 1 s", gateway, |g| {
        Row::absolute("gateway start → ready", Measure::seconds(g.ready_after.as_secs_f64()), ready)
    }));
    report.push(worst_row(
        "registration-service start → ready (worst round)",
        ready,
        "≤ 1 s",
        outage_rounds.iter().map(|o| o.outage.ready_after.as_secs_f64()).collect(),
        Measure::seconds,
        r.outage.as_ref().err(),
    ));
    report.push(one("dlq-worker start → ready", "≤ 1 s", &r.dlq, |d| {
        Row::absolute("dlq-worker start → ready", Measure::seconds(d.ready_after.as_secs_f64()), ready)
    }));
    report.note(
        "Start → ready: from spawning the release binary to the first 200 of /readyz (polled every 5 ms), with a \
         fresh database (migrations run at start) and the broker up. The registration-service's readiness includes \
         its partition assignment; its idle memory and start-up are measured at the start of each outage round (empty \
         topic), its memory under load over every batched drain of the run.",
    );
}

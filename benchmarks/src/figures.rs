//! Turns everything a run measured into the table of issue 6, in its order, with notes that
//! say how each number was obtained. A measurement that failed becomes an ERROR row with the
//! reason, never a silently missing one.
//!
//! Every ratio with a goal comes from alternating rounds (issue 14): the `ours` and `raw limit`
//! cells are the medians of the rounds, the ratio cell the median of the per-round ratios with
//! their spread, and the verdict is judged on the whole spread. Budgets (memory, start-up)
//! report the worst round.

use std::time::Duration;

use hdrhistogram::Histogram;

use crate::plan::Plan;
use crate::raw::kafka_tools::{EndToEnd as KafkaEndToEnd, ProducerPerf};
use crate::report::{Goal, Measure, Report, Row};
use crate::rounds::{median, worst, Paired};
use crate::scenarios::dlq::DlqPunctuality;
use crate::scenarios::drain::{Drain, DrainRound};
use crate::scenarios::end_to_end::EndToEndRound;
use crate::scenarios::gateway::{HalfLoad, MaxRateRound};
use crate::scenarios::outage::{OutageBy, OutageRounds};

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

    // 1. Gateway throughput against the hash rate.
    let figure = "gateway sign-ups accepted/s ÷ raw argon2id hashes/s";
    report.push(one(figure, "≥ 0.9", &gw_max, |rounds| {
        let paired: Paired = rounds.iter().map(|m| (m.max.accepted_per_sec, m.raw_hashes_per_sec)).collect();
        rounds_row(figure, &paired, Measure::per_second, Goal::AtLeast(0.9), &label)
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
    report.push(one(figure, "≤ 1.5", &gw_half, |rounds| {
        let paired: Paired = rounds
            .iter()
            .map(|h| (ms(h.load.accepted_latency_us.value_at_quantile(0.99)), millis(h.one_hash)))
            .collect();
        rounds_row(figure, &paired, Measure::millis, Goal::AtMost(1.5), &label)
    }));
    if let Ok(rounds) = &gw_half {
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

    // 3. and 4. Registration-service drain, and the raw limits' own ratio for context.
    let drain_vs_raw = |rounds: &Vec<DrainRound>| -> Paired {
        rounds.iter().map(|d| (d.batched.rows_per_sec, d.raw.batched_rows_per_sec)).collect()
    };
    let batched_vs_single = |rounds: &Vec<DrainRound>| -> Paired {
        rounds.iter().map(|d| (d.batched.rows_per_sec, d.single.rows_per_sec)).collect()
    };
    let raw_vs_raw = |rounds: &Vec<DrainRound>| -> Paired {
        rounds.iter().map(|d| (d.raw.batched_rows_per_sec, d.raw.single_rows_per_sec)).collect()
    };
    let figure = "registration-service rows/s draining ÷ raw batched upsert rows/s";
    report.push(one(figure, "≥ 0.8", &r.drains, |rounds| {
        rounds_row(figure, &drain_vs_raw(rounds), Measure::per_second, Goal::AtLeast(0.8), &label)
    }));
    let figure = "the same, batched ÷ row by row (BATCH_SIZE=1)";
    report.push(one(figure, "≥ 10", &r.drains, |rounds| {
        rounds_row(figure, &batched_vs_single(rounds), Measure::per_second, Goal::AtLeast(10.0), &label)
    }));
    let figure = "(context) raw batched ÷ raw row-by-row upserts";
    report.push(one(figure, "—", &r.drains, |rounds| {
        rounds_row(figure, &raw_vs_raw(rounds), Measure::per_second, Goal::None, &label)
    }));
    if let Ok(rounds) = &r.drains {
        report.note(format!(
            "Drain rounds (in this order: raw upserts, batched drain, row-by-row drain). Raw: {} rows in statements of \
             {} (the service's batch size), one autocommitted statement each, then {} rows one per statement. Drains: \
             {} messages (batched) and {} (BATCH_SIZE=1) pre-filled on 3 partitions, rate from the first outcome to \
             the last. Per round drain ÷ raw batched: {}; batched ÷ row by row: {}; raw batched ÷ raw row by row: {}. \
             Consumer lag on /metrics after the batched drains: {}.",
            plan.raw_batched_rows,
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
        ));
        if let Some(last) = rounds.last() {
            report.note(format!(
                "Batched drain, where the registration-service's time went (last round, from its /metrics): {}.",
                last.batched.stages
            ));
        }
    }

    // 5. End to end.
    let e2e_figure = "end-to-end p99 (request → row committed) at 50% ÷ (Kafka e2e p99 + one hash + one commit)";
    report.push(one(e2e_figure, "≤ 2", &gw_e2e, |rounds| {
        let paired: Paired =
            rounds.iter().map(|e| (ms(e.measured.created_us.value_at_quantile(0.99)), e.budget.millis())).collect();
        rounds_row(e2e_figure, &paired, Measure::millis, Goal::AtMost(2.0), &label)
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

    // 7. Drain after an outage, against the same service's drain over the same path.
    outage_rows(&mut report, r, plan);

    // 8. Memory: the worst round.
    let rss_idle = Goal::AtMost(50.0);
    let rss_load = Goal::AtMost(150.0);
    report.push(one("gateway RSS idle", "≤ 50 MiB", &gateway, |g| {
        Row::absolute("gateway RSS idle", Measure::mib(g.idle_rss_mib), rss_idle)
    }));
    report.push(one("gateway RSS under load (worst round)", "≤ 150 MiB", &gateway, |g| {
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
    report.push(one("gateway start → ready", "≤ 1 s", &gateway, |g| {
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

    // Context: the services against Kafka's own tools (single measurements).
    let durability = reliable_messaging::topics::TopicPolicy::default().resolve(r.brokers);
    report.note(format!(
        "Kafka: {} broker(s); every topic of the run replicated {} times with min.insync.replicas {} (what the \
         services declare on such a cluster).",
        r.brokers, durability.replication_factor, durability.min_insync_replicas
    ));
    if let (Ok(rounds), Ok(p)) = (&gw_max, &r.producer_perf) {
        let accepted = median(&rounds.iter().map(|m| m.max.accepted_per_sec).collect::<Vec<_>>());
        report.push(Row::ratio(
            "(context) gateway sign-ups accepted/s (median) ÷ Kafka ProducerPerformance records/s",
            Measure::per_second(accepted),
            Measure::per_second(p.records_per_sec),
            Goal::None,
        ));
    }
    if let (Ok(rounds), Ok(p)) = (&r.drains, &r.producer_perf) {
        let drained = median(&rounds.iter().map(|d| d.batched.rows_per_sec).collect::<Vec<_>>());
        let prefill = median(&rounds.iter().map(|d| d.batched.prefill_per_sec).collect::<Vec<_>>());
        report.push(Row::ratio(
            "(context) registration-service rows/s draining (median) ÷ Kafka ProducerPerformance records/s",
            Measure::per_second(drained),
            Measure::per_second(p.records_per_sec),
            Goal::None,
        ));
        report.push(Row::ratio(
            "(context) our producer (pre-fill, median) records/s ÷ Kafka ProducerPerformance",
            Measure::per_second(prefill),
            Measure::per_second(p.records_per_sec),
            Goal::None,
        ));
    }
    if let Ok(p) = &r.producer_perf {
        report.note(format!(
            "Kafka ProducerPerformance (acks=all, enable.idempotence=true, {} B records, unthrottled): {:.0} records/s, \
             avg latency {:.1} ms, p99 {:.0} ms.",
            r.record_size, p.records_per_sec, p.avg_latency_ms, p.p99_ms
        ));
    }
    if let Ok(k) = &r.kafka_end_to_end {
        report.note(format!(
            "Kafka EndToEndLatency (acks=all, {} B): avg {:.2} ms, p50 {:.0} ms, p99 {:.0} ms.",
            r.record_size, k.avg_ms, k.p50_ms, k.p99_ms
        ));
    }
    report
}

/// The outage's ratio (recovery ÷ max drain, in rounds), what it sent to the DLQ, and a note.
fn outage_rows(report: &mut Report, r: &Results, plan: &Plan) {
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
             (db-start returned / proxy restored) to the last outcome. Baseline: a drain of {} pre-filled messages \
             over the same path ({}) right before each outage. Per round outage ÷ baseline: {}. Rounds: {}.",
            o.by.describe(),
            plan.outage_messages,
            plan.outage_messages,
            o.by.path(),
            paired.describe(|v| format!("{v:.0}")),
            per_round.join(" | "),
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

/// anyhow errors are not `Clone`; a figure that depends on a failed one repeats its message.
fn clone_err(e: &anyhow::Error) -> anyhow::Error {
    anyhow::anyhow!("{e:#}")
}

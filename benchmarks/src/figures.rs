//! Turns everything a run measured into the table of issue 6, in its order, with notes that
//! say how each number was obtained. A measurement that failed becomes an ERROR row with the
//! reason, never a silently missing one.

use std::time::Duration;

use hdrhistogram::Histogram;

use crate::raw::argon2::HashLimits;
use crate::raw::database::UpsertLimits;
use crate::raw::kafka_tools::{EndToEnd as KafkaEndToEnd, ProducerPerf};
use crate::report::{Goal, Measure, Report, Row};
use crate::scenarios::alternating::DrainRatio;
use crate::scenarios::dlq::DlqPunctuality;
use crate::scenarios::drain::Drain;
use crate::scenarios::end_to_end::EndToEnd;
use crate::scenarios::gateway::{HalfLoad, MaxRate};
use crate::scenarios::outage::Outage;

pub type Measured<T> = anyhow::Result<T>;

pub struct GatewayFigures {
    pub ready_after: Duration,
    pub idle_rss_mib: f64,
    pub max: Measured<MaxRate>,
    pub half: Measured<HalfLoad>,
    pub end_to_end: Measured<EndToEnd>,
}

pub struct Results {
    pub hash: HashLimits,
    pub upsert: Measured<UpsertLimits>,
    pub producer_perf: Measured<ProducerPerf>,
    pub kafka_end_to_end: Measured<KafkaEndToEnd>,
    pub record_size: usize,
    pub gateway: Measured<GatewayFigures>,
    pub drain: Measured<Drain>,
    pub single: Measured<Drain>,
    /// The batched drain through the TCP proxy: the outage's baseline.
    pub proxied_drain: Measured<Drain>,
    pub outage: Measured<Outage>,
    pub dlq: Measured<DlqPunctuality>,
    /// Raw limit and drain measured alternately, several rounds.
    pub drain_ratio: Measured<DrainRatio>,
    /// Brokers of the Kafka cluster the run used (topics replicated min(3, brokers) times).
    pub brokers: usize,
}

/// A row from two measurements, or an ERROR row naming the first that failed.
fn both<A, B>(figure: &str, goal: &str, a: &Measured<A>, b: &Measured<B>, row: impl FnOnce(&A, &B) -> Row) -> Row {
    match (a, b) {
        (Ok(a), Ok(b)) => row(a, b),
        (Err(e), _) | (_, Err(e)) => Row::error(figure, goal, e),
    }
}

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

pub fn report(r: &Results) -> Report {
    let mut report = Report::default();
    let hash = &r.hash;
    let one_hash_ms = millis(hash.one_hash);
    report.note(format!(
        "Raw argon2id (m=19456 KiB, t=2, p=1, same crate as the gateway): {:.1} hashes/s on {} threads; one hash \
         (median on one thread) {one_hash_ms:.1} ms.",
        hash.hashes_per_sec, hash.threads
    ));
    let gateway: Measured<&GatewayFigures> = r.gateway.as_ref().map_err(clone_err);
    let gw_max: Measured<&MaxRate> =
        gateway.as_ref().map_err(clone_err).and_then(|g| g.max.as_ref().map_err(clone_err));
    let gw_half: Measured<&HalfLoad> =
        gateway.as_ref().map_err(clone_err).and_then(|g| g.half.as_ref().map_err(clone_err));
    let gw_e2e: Measured<&EndToEnd> =
        gateway.as_ref().map_err(clone_err).and_then(|g| g.end_to_end.as_ref().map_err(clone_err));

    // 1. Gateway throughput against the hash rate.
    report.push(one("gateway sign-ups accepted/s ÷ raw argon2id hashes/s", "≥ 0.9", &gw_max, |m| {
        Row::ratio(
            "gateway sign-ups accepted/s ÷ raw argon2id hashes/s",
            Measure::per_second(m.accepted_per_sec),
            Measure::per_second(hash.hashes_per_sec),
            Goal::AtLeast(0.9),
        )
    }));
    if let Ok(m) = &gw_max {
        report.note(format!(
            "Gateway saturation: {} closed-loop clients; accepted/s from the gateway's own \
             gateway_registrations_accepted_total over the window after warm-up; answers other than 202: {:?}; \
             client-side latency {}.",
            crate::scenarios::gateway::saturating_clients(),
            m.load.other,
            describe_latency(&m.load.accepted_latency_us)
        ));
    }

    // 2. Gateway latency at half load against one hash.
    report.push(one("gateway p99 at 50% of max rate ÷ one hash time", "≤ 2", &gw_half, |h| {
        Row::ratio(
            "gateway p99 at 50% of max rate ÷ one hash time",
            Measure::millis(ms(h.load.accepted_latency_us.value_at_quantile(0.99))),
            Measure::millis(millis(h.one_hash)),
            Goal::AtMost(2.0),
        )
    }));
    if let Ok(h) = &gw_half {
        report.note(format!(
            "Gateway at 50%: open loop at {:.1} requests/s (constant arrival rate, latency from the intended send \
             time): {}; not accepted: {}. One hash measured right before this load (the figure's raw \
             limit): {:.1} ms; at the start of the run: {one_hash_ms:.1} ms.",
            h.rate,
            describe_latency(&h.load.accepted_latency_us),
            h.load.not_accepted(),
            millis(h.one_hash)
        ));
    }

    // 3. and 4. Registration-service drain.
    report.push(both(
        "registration-service rows/s draining ÷ raw batched upsert rows/s",
        "≥ 0.8",
        &r.drain,
        &r.upsert,
        |d, u| {
            Row::ratio(
                "registration-service rows/s draining ÷ raw batched upsert rows/s",
                Measure::per_second(d.rows_per_sec),
                Measure::per_second(u.batched_rows_per_sec),
                Goal::AtLeast(0.8),
            )
        },
    ));
    report.push(both("the same, batched ÷ row by row (BATCH_SIZE=1)", "≥ 10", &r.drain, &r.single, |d, s| {
        Row::ratio(
            "the same, batched ÷ row by row (BATCH_SIZE=1)",
            Measure::per_second(d.rows_per_sec),
            Measure::per_second(s.rows_per_sec),
            Goal::AtLeast(10.0),
        )
    }));
    if let Ok(u) = &r.upsert {
        report.push(Row::ratio(
            "(context) raw batched ÷ raw row-by-row upserts",
            Measure::per_second(u.batched_rows_per_sec),
            Measure::per_second(u.single_rows_per_sec),
            Goal::None,
        ));
        report.note(format!(
            "Raw upserts: batches of {} rows, one autocommitted statement each: {:.0} rows/s; one row per statement: \
             {:.0} rows/s; one commit (median single-row upsert) {:.2} ms.",
            u.batch_size,
            u.batched_rows_per_sec,
            u.single_rows_per_sec,
            millis(u.one_commit)
        ));
    }
    for (label, d) in
        [("batched", &r.drain), ("BATCH_SIZE=1", &r.single), ("batched via the TCP proxy", &r.proxied_drain)]
    {
        if let Ok(d) = d {
            report.note(format!(
                "Drain {label}: {} messages pre-filled on 3 partitions, {:.0} rows/s (ready {:.2} s after start, \
                 backlog waiting); consumer lag on /metrics afterwards: {}.",
                d.messages,
                d.rows_per_sec,
                d.ready_after.as_secs_f64(),
                d.final_lag.map_or("not exposed".to_owned(), |l| format!("{l}"))
            ));
        }
    }

    // 5. End to end.
    let kafka = r.kafka_end_to_end.as_ref().map_err(clone_err);
    let upsert = r.upsert.as_ref().map_err(clone_err);
    let e2e_goal = "≤ 3";
    let e2e_figure = "end-to-end p99 (request → row committed) at 50% ÷ (Kafka e2e p99 + one hash + one commit)";
    let e2e_row = match (&gw_e2e, &kafka, &upsert) {
        (Ok(e), Ok(k), Ok(u)) => {
            // The one-hash time measured next to the load, as for the gateway's latency.
            let hash_ms = gw_half.as_ref().map_or(one_hash_ms, |h| millis(h.one_hash));
            let budget = k.p99_ms + hash_ms + millis(u.one_commit);
            report.note(format!(
                "End to end at {:.1}/s: request → row's created_at (the commit follows within ~1 ms) {}; \
                 request → row seen committed by a 20 ms poller (upper bound) p99 {:.1} ms; 202 → created_at p99 \
                 {:.1} ms; {} accepted, {} not accepted, {} rows missed by the poller. Budget = Kafka \
                 EndToEndLatency p99 {:.1} ms + one hash {hash_ms:.1} ms + one commit {:.2} ms.",
                e.rate,
                describe_latency(&e.created_us),
                ms(e.polled_us.value_at_quantile(0.99)),
                ms(e.after_202_us.value_at_quantile(0.99)),
                e.accepted,
                e.not_accepted,
                e.missed_by_poller,
                k.p99_ms,
                millis(u.one_commit)
            ));
            Row::ratio(
                e2e_figure,
                Measure::millis(ms(e.created_us.value_at_quantile(0.99))),
                Measure::millis(budget),
                Goal::AtMost(3.0),
            )
        }
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => Row::error(e2e_figure, e2e_goal, e),
    };
    report.push(e2e_row);

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
    let outage_figure = "drain rate after a 10 s database outage ÷ max drain rate (both via the TCP proxy)";
    report.push(both(outage_figure, "≥ 0.8", &r.outage, &r.proxied_drain, |o, d| {
        Row::ratio(
            outage_figure,
            Measure::per_second(o.rows_per_sec_after),
            Measure::per_second(d.rows_per_sec),
            Goal::AtLeast(0.8),
        )
    }));
    if let Ok(o) = &r.outage {
        report.note(format!(
            "Outage: database unreachable (TcpProxy cut) for {:.1} s; {:.0} messages went to the DLQ meanwhile \
             (in-place retries exhausted); backlog after the restore: {}, drained at {:.0}/s counted from the restore: \
             {:.2} s until the first new outcome, then {:.0}/s.",
            o.outage.as_secs_f64(),
            o.dead_lettered,
            o.backlog,
            o.rows_per_sec_after,
            o.recovery.as_secs_f64(),
            o.rows_per_sec_once_recovered
        ));
    }

    // 8. Memory.
    let rss_idle = Goal::AtMost(50.0);
    let rss_load = Goal::AtMost(150.0);
    report.push(one("gateway RSS idle", "≤ 50 MiB", &gateway, |g| {
        Row::absolute("gateway RSS idle", Measure::mib(g.idle_rss_mib), rss_idle)
    }));
    report.push(one("gateway RSS under load", "≤ 150 MiB", &gateway, |g| {
        let peak = [g.max.as_ref().map(|m| m.peak_rss_mib).ok(), g.half.as_ref().map(|h| h.peak_rss_mib).ok()]
            .into_iter()
            .flatten()
            .fold(0.0, f64::max);
        Row::absolute("gateway RSS under load", Measure::mib(peak), rss_load)
    }));
    report.push(one("registration-service RSS idle", "≤ 50 MiB", &r.outage, |o| {
        Row::absolute("registration-service RSS idle", Measure::mib(o.idle_rss_mib), rss_idle)
    }));
    report.push(one("registration-service RSS under load", "≤ 150 MiB", &r.drain, |d| {
        Row::absolute("registration-service RSS under load", Measure::mib(d.peak_rss_mib), rss_load)
    }));
    report.push(one("dlq-worker RSS idle", "≤ 50 MiB", &r.dlq, |d| {
        Row::absolute("dlq-worker RSS idle", Measure::mib(d.idle_rss_mib), rss_idle)
    }));
    report.push(one("dlq-worker RSS with 10,000 waiting", "≤ 150 MiB", &r.dlq, |d| {
        Row::absolute("dlq-worker RSS with 10,000 waiting", Measure::mib(d.peak_rss_mib), rss_load)
    }));

    // 9. Start-up.
    let ready = Goal::AtMost(1.0);
    report.push(one("gateway start → ready", "≤ 1 s", &gateway, |g| {
        Row::absolute("gateway start → ready", Measure::seconds(g.ready_after.as_secs_f64()), ready)
    }));
    report.push(one("registration-service start → ready", "≤ 1 s", &r.outage, |o| {
        Row::absolute("registration-service start → ready", Measure::seconds(o.ready_after.as_secs_f64()), ready)
    }));
    report.push(one("dlq-worker start → ready", "≤ 1 s", &r.dlq, |d| {
        Row::absolute("dlq-worker start → ready", Measure::seconds(d.ready_after.as_secs_f64()), ready)
    }));
    report.note(
        "Start → ready: from spawning the release binary to the first 200 of /readyz (polled every 5 ms), with a \
         fresh database (migrations run at start) and the broker up. The registration-service's readiness includes \
         its partition assignment.",
    );

    // The drain ratio again, from alternating rounds (a single pair is at the mercy of the
    // machine's swings).
    if let Ok(a) = &r.drain_ratio {
        let ratios = a.ratios();
        let figure =
            format!("registration-service drain ÷ raw batched upsert, median of {} alternating rounds", ratios.len());
        report.push(Row::with_ratio(
            figure,
            format!("median {:.0}/s", a.median_ours()),
            format!("median {:.0}/s", a.median_raw()),
            a.median_ratio(),
            Goal::AtLeast(0.8),
        ));
        report.note(format!(
            "Alternating drain ratio: raw batched upserts then a drain of the same size, {} times; per round (drain ÷ the raw limit measured right before it): {}; median {:.2}, spread {:.2}–{:.2}.",
            ratios.len(),
            a.rounds
                .iter()
                .map(|(ours, raw)| format!("{:.0}/{:.0} = {:.2}", ours, raw, ours / raw))
                .collect::<Vec<_>>()
                .join(", "),
            a.median_ratio(),
            ratios.first().copied().unwrap_or(f64::NAN),
            ratios.last().copied().unwrap_or(f64::NAN),
        ));
    } else if let Err(e) = &r.drain_ratio {
        if !format!("{e:#}").contains("skipped") {
            report.push(Row::error("registration-service drain ÷ raw batched upsert, alternating rounds", "≥ 0.8", e));
        }
    }

    // On a replicated cluster the gateway and the drain also against Kafka's own producer.
    let durability = reliable_messaging::topics::TopicPolicy::default().resolve(r.brokers);
    report.note(format!(
        "Kafka: {} broker(s); every topic of the run replicated {} times with min.insync.replicas {} (what the \
         services declare on such a cluster).",
        r.brokers, durability.replication_factor, durability.min_insync_replicas
    ));
    if let (Ok(g), Ok(p)) = (&gw_max_for_context(r), &r.producer_perf) {
        report.push(Row::ratio(
            "(context) gateway sign-ups accepted/s ÷ Kafka ProducerPerformance records/s",
            Measure::per_second(*g),
            Measure::per_second(p.records_per_sec),
            Goal::None,
        ));
    }
    report.push(both(
        "(context) registration-service rows/s draining ÷ Kafka ProducerPerformance records/s",
        "—",
        &r.drain,
        &r.producer_perf,
        |d, p| {
            Row::ratio(
                "(context) registration-service rows/s draining ÷ Kafka ProducerPerformance records/s",
                Measure::per_second(d.rows_per_sec),
                Measure::per_second(p.records_per_sec),
                Goal::None,
            )
        },
    ));

    // Context: our producer against Kafka's own.
    report.push(both(
        "(context) our producer (pre-fill) records/s ÷ Kafka ProducerPerformance",
        "—",
        &r.drain,
        &r.producer_perf,
        |d, p| {
            Row::ratio(
                "(context) our producer (pre-fill) records/s ÷ Kafka ProducerPerformance",
                Measure::per_second(d.prefill_per_sec),
                Measure::per_second(p.records_per_sec),
                Goal::None,
            )
        },
    ));
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
/// The gateway's accepted sign-ups per second at saturation, if measured.
fn gw_max_for_context(r: &Results) -> Measured<f64> {
    match &r.gateway {
        Ok(g) => g.max.as_ref().map(|m| m.accepted_per_sec).map_err(clone_err),
        Err(e) => Err(clone_err(e)),
    }
}

fn clone_err(e: &anyhow::Error) -> anyhow::Error {
    anyhow::anyhow!("{e:#}")
}

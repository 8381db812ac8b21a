//! The registration-service draining a pre-filled topic: rows per second, batched (its
//! default batch size) and row by row (`BATCH_SIZE=1`), and its memory while it works;
//! optionally through the TCP proxy, as the baseline of the outage scenario.
//!
//! The drain ratios are measured in rounds ([`round`]): the raw upsert limit, then a batched
//! drain, then a row-by-row drain, one right after the other, so that each round's
//! "drain ÷ raw batched upsert" and "batched ÷ row by row" divide figures measured next to each
//! other. A single pair measured minutes apart swung from 0.37 to 0.88 because the raw limit
//! alone swung 2× on this shared machine.

use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::{poll_until, registration_service_env, settled, Context, READY_TIMEOUT};
use crate::events;
use crate::raw;
use crate::raw::beside_kafka::BesideKafka;
use crate::raw::database::UpsertLimits;
use crate::services::Service;
use crate::stages::StageProfile;
use test_support::tcp_proxy::{database_socket_addr, TcpProxy};

pub struct Drain {
    /// The pre-filled topic it drained.
    pub topic: String,
    pub rows_per_sec: f64,
    /// Our producer's rate while pre-filling (acks=all, idempotent), for comparison with
    /// Kafka's ProducerPerformance.
    pub prefill_per_sec: f64,
    pub peak_rss_mib: f64,
    /// Consumer lag reported on `/metrics` once the drain was over (should be 0).
    pub final_lag: Option<f64>,
    /// Where the service's time went while it drained.
    pub stages: StageProfile,
}

const LAG: &str = "registration_service_consumer_lag";

/// One round of the drain ratios, measured in this order.
pub struct DrainRound {
    /// MariaDB's own speed at the service's write (batched, and row by row for context).
    pub raw: UpsertLimits,
    /// The registration-service with its default batch size.
    pub batched: Drain,
    /// The same with `BATCH_SIZE=1`.
    pub single: Drain,
    /// The raw batched loop again, while the broker serves a bare read of the batched drain's
    /// topic at the rate the service drained it: the raw limit with Kafka's share of the
    /// machine taken.
    pub raw_beside_kafka: BesideKafka,
}

/// Round `i`: raw upserts into a fresh database, a batched drain, a row-by-row drain (the
/// plan's sizes), each with topics and databases of its own.
pub async fn round(ctx: &Context<'_>, i: usize) -> anyhow::Result<DrainRound> {
    let plan = ctx.plan;
    let batch_size = reliable_messaging::consumer::ConsumerSettings::new("", &[]).max_batch_size;
    let db = ctx.env.fresh_database(&format!("raw_{i}")).await?;
    let raw = raw::database::measure(&db, &ctx.env.run_id, batch_size, plan.raw_batched_rows(), plan.raw_single_rows)
        .await
        .context("raw upserts")?;
    let batched = run(ctx, &format!("drain-{i}"), plan.drain_messages, None, false).await.context("batched drain")?;
    let single = run(ctx, &format!("drain-single-{i}"), plan.single_drain_messages, Some(1), false)
        .await
        .context("row-by-row drain")?;
    let beside_db = ctx.env.fresh_database(&format!("raw_beside_{i}")).await?;
    let raw_beside_kafka = raw::beside_kafka::measure(
        &beside_db,
        &ctx.env.run_id,
        batch_size,
        plan.raw_batched_rows(),
        &ctx.env.kafka_bootstrap,
        &batched.topic,
        batched.rows_per_sec,
    )
    .await
    .context("raw upserts beside a Kafka read")?;
    eprintln!(
        "[bench]   round {}: raw {:.0} rows/s, drain {:.0} rows/s ({:.2}), row by row {:.0} rows/s (batched ÷ it {:.2}); \
         raw beside a {:.0} msg/s Kafka read {:.0} rows/s",
        i + 1,
        raw.batched_rows_per_sec,
        batched.rows_per_sec,
        batched.rows_per_sec / raw.batched_rows_per_sec,
        single.rows_per_sec,
        batched.rows_per_sec / single.rows_per_sec,
        raw_beside_kafka.kafka_messages_per_sec,
        raw_beside_kafka.batched_rows_per_sec,
    );
    Ok(DrainRound { raw, batched, single, raw_beside_kafka })
}

/// How often the drain is sampled: fine enough for a drain of a few seconds.
const SAMPLE_EVERY: Duration = Duration::from_millis(50);

pub async fn run(
    ctx: &Context<'_>,
    name: &str,
    messages: usize,
    batch_size: Option<usize>,
    via_proxy: bool,
) -> anyhow::Result<Drain> {
    let topic = ctx.env.create_topic(name, 3).await?;
    ctx.env.adopt_topic(format!("{topic}-dlq"));
    let db = ctx.env.fresh_database(&name.replace('-', "_")).await?;
    let producer = events::producer(&ctx.env.kafka_bootstrap)?;
    let prefill = events::produce_all(&producer, events::registrations(&ctx.env.run_id, &topic, messages)).await?;

    // The outage scenario reaches the database through the TCP proxy; its baseline does too,
    // so that the comparison measures the outage and not the proxy.
    let proxy = match via_proxy {
        true => Some(TcpProxy::start(database_socket_addr(&db.url)).await),
        false => None,
    };
    let url = proxy.as_ref().map_or(db.url.clone(), |p| p.rewrite_url(&db.url));
    let mut env = registration_service_env(ctx, &topic, &format!("{topic}-group"), &url);
    if let Some(size) = batch_size {
        env.push(("BATCH_SIZE", size.to_string()));
    }
    let mut service = Service::spawn(ctx.binaries, "registration-service", "REGISTRATION_SERVICE_ADDR", &env)?;
    let rss = service.sample_rss();
    service.wait_ready(READY_TIMEOUT).await?;

    let before = service.scrape().await?;
    let started = Instant::now();
    let rows_per_sec = measure_drain(&service, messages as f64).await?.rate;
    let stages = StageProfile::between(
        "registration_service",
        &before,
        &service.scrape().await?,
        started.elapsed().as_secs_f64(),
    );

    let rows = db.count_users().await?;
    if rows != messages as i64 {
        anyhow::bail!("{messages} events were drained but users has {rows} rows");
    }
    // The lag gauge is refreshed periodically; give it a moment to see the final commit (but
    // do not wait 10 s for a gauge the service has not exposed at all after 3 s).
    let svc = &service;
    let exposed_by = Instant::now() + Duration::from_secs(3);
    let lag = poll_until("the consumer lag reaches 0", Duration::from_secs(10), Duration::from_millis(200), || async {
        let lag = svc.scrape().await?.get(LAG);
        Ok(match lag {
            Some(l) if l == 0.0 => Some(Some(l)),
            None if Instant::now() > exposed_by => Some(None),
            _ => None,
        })
    })
    .await
    .ok()
    .flatten();
    let lag = match lag {
        Some(l) => Some(l),
        None => service.scrape().await?.get(LAG),
    };
    let peak_rss_mib = rss.peak_mib();
    service.ensure_running()?;
    service.stop().await;
    Ok(Drain {
        topic,
        rows_per_sec,
        prefill_per_sec: messages as f64 / prefill.as_secs_f64(),
        peak_rss_mib,
        final_lag: lag,
        stages,
    })
}

/// How a drain went, from `/metrics` samples.
pub struct DrainTiming {
    /// Settled per second from the first sample that showed progress to the moment the topic
    /// was drained: start-up is excluded.
    pub rate: f64,
    pub first_progress: Instant,
    /// When the count reached the target, interpolated between the two samples around it
    /// ([`reached_at`]).
    pub drained: Instant,
}

/// Samples the service's settled count until it reaches `target`.
pub async fn measure_drain(service: &Service, target: f64) -> anyhow::Result<DrainTiming> {
    let timeout = Duration::from_secs(60) + Duration::from_secs_f64(target / 50.0);
    let deadline = Instant::now() + timeout;
    let sampled_at = Instant::now();
    let baseline = settled(&service.scrape().await?)?;
    let mut first: Option<(Instant, f64)> = None;
    // The baseline is the first "no progress yet" sample: a drain over by the next sample is
    // timed from it.
    let mut previous: Option<(Instant, f64)> = Some((sampled_at, baseline));
    loop {
        let now = Instant::now();
        let n = settled(&service.scrape().await?)?;
        if n > baseline && first.is_none() {
            first = Some((now, n));
        }
        if n >= target {
            return timing(first.unwrap_or((now, n)), previous, (now, n), target)
                .context("the drain was over before it could be timed");
        }
        previous = Some((now, n));
        if now > deadline {
            anyhow::bail!("only {n} of {target} messages settled after {timeout:?}");
        }
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
}

/// The timing of a drain that reached `target` at sample `last`, given the first sample that
/// showed progress (`start`) and the sample before `last`. When several samples saw it move, it
/// runs from `start` to the interpolated end. When the whole drain fell between two samples (a
/// fast machine, a small quick-mode round) it runs from the last sample that saw none of it,
/// which counts up to one sampling interval of waiting into the drain: against us, never for us.
fn timing(
    start: (Instant, f64),
    previous: Option<(Instant, f64)>,
    last: (Instant, f64),
    target: f64,
) -> Option<DrainTiming> {
    let previous = previous.filter(|&(_, n)| n < target)?;
    let drained = reached_at(previous, last, target);
    let (from, at_from) = if previous.0 >= start.0 { start } else { previous };
    let elapsed = (drained - from).as_secs_f64();
    (elapsed > 0.0).then(|| DrainTiming { rate: (target - at_from) / elapsed, first_progress: start.0, drained })
}

/// When a count sampled as `before` and then `after` (at or past `target`) reached `target`,
/// assuming a steady rate between the two samples. Taking `after`'s time instead counted up to
/// a whole sampling interval (50 ms) of nothing into every drain: 8 % of a 0.6 s drain, always
/// against us, and a different amount in every round.
fn reached_at((t0, n0): (Instant, f64), (t1, n1): (Instant, f64), target: f64) -> Instant {
    if n1 <= n0 {
        return t1;
    }
    let fraction = ((target - n0) / (n1 - n0)).clamp(0.0, 1.0);
    t0 + (t1 - t0).mul_f64(fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drain_seen_by_several_samples_is_timed_from_its_first_progress() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // Progress first seen at 50 ms (2,000 settled), 9,000 at 100 ms, 11,000 at 150 ms.
        let t = timing((at(50), 2_000.0), Some((at(100), 9_000.0)), (at(150), 11_000.0), 10_000.0).unwrap();
        assert_eq!(t.drained, at(125));
        assert_eq!(t.first_progress, at(50));
        assert!((t.rate - 8_000.0 / 0.075).abs() < 1e-6, "{}", t.rate);
    }

    #[test]
    fn a_drain_between_two_samples_is_timed_from_the_last_sample_without_progress() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // Nothing at 0 ms, all 10,000 at 50 ms: at least 200,000/s, and it says so.
        let t = timing((at(50), 10_000.0), Some((at(0), 0.0)), (at(50), 10_000.0), 10_000.0).unwrap();
        assert_eq!(t.drained, at(50));
        assert!((t.rate - 200_000.0).abs() < 1e-6, "{}", t.rate);
        // Over before the first sample: no figure rather than a made-up one.
        assert!(timing((at(0), 10_000.0), None, (at(0), 10_000.0), 10_000.0).is_none());
    }

    #[test]
    fn the_drain_ends_where_the_count_crossed_the_target_not_at_the_next_sample() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_millis(50);
        // 1,000 to go, 4,000 settled in the interval: reached a quarter of the way in.
        assert_eq!(reached_at((t0, 9_000.0), (t1, 13_000.0), 10_000.0), t0 + Duration::from_micros(12_500));
        // Reached exactly at the later sample.
        assert_eq!(reached_at((t0, 9_000.0), (t1, 10_000.0), 10_000.0), t1);
        // No progress between the samples (cannot happen with n1 ≥ target > n0): the later sample.
        assert_eq!(reached_at((t0, 10_000.0), (t1, 10_000.0), 10_000.0), t1);
    }
}

//! The registration-service draining a pre-filled topic: rows per second, batched (its
//! default batch size) and row by row (`BATCH_SIZE=1`), and its memory while it works;
//! optionally through the TCP proxy, as the baseline of the outage scenario.

use std::time::{Duration, Instant};

use super::{poll_until, registration_service_env, settled, Context, READY_TIMEOUT};
use crate::events;
use crate::services::Service;
use crate::tcp_proxy::{database_socket_addr, TcpProxy};

pub struct Drain {
    pub messages: usize,
    pub rows_per_sec: f64,
    /// Our producer's rate while pre-filling (acks=all, idempotent), for comparison with
    /// Kafka's ProducerPerformance.
    pub prefill_per_sec: f64,
    pub ready_after: Duration,
    pub peak_rss_mib: f64,
    /// Consumer lag reported on `/metrics` once the drain was over (should be 0).
    pub final_lag: Option<f64>,
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
    let ready_after = service.wait_ready(READY_TIMEOUT).await?;

    let rows_per_sec = measure_drain(&service, messages as f64).await?.rate;

    let rows = db.count_users().await?;
    if rows != messages as i64 {
        anyhow::bail!("{messages} events were drained but users has {rows} rows");
    }
    // The lag gauge is refreshed periodically; give it a moment to see the final commit.
    let svc = &service;
    let lag = poll_until("the consumer lag reaches 0", Duration::from_secs(10), Duration::from_millis(200), || async {
        let lag = svc.scrape().await?.get("registration_service_consumer_lag");
        Ok(lag.filter(|l| *l == 0.0))
    })
    .await
    .ok()
    .or(service.scrape().await?.get("registration_service_consumer_lag"));
    let peak_rss_mib = rss.peak_mib();
    service.ensure_running()?;
    service.stop().await;
    Ok(Drain {
        messages,
        rows_per_sec,
        prefill_per_sec: messages as f64 / prefill.as_secs_f64(),
        ready_after,
        peak_rss_mib,
        final_lag: lag,
    })
}

/// How a drain went, from `/metrics` samples.
pub struct DrainTiming {
    /// Settled per second between the first sample that showed progress and the one that
    /// showed the topic drained: start-up and the sampling edges are excluded.
    pub rate: f64,
    pub first_progress: Instant,
    pub drained: Instant,
}

/// Samples the service's settled count until it reaches `target`.
pub async fn measure_drain(service: &Service, target: f64) -> anyhow::Result<DrainTiming> {
    let timeout = Duration::from_secs(60) + Duration::from_secs_f64(target / 50.0);
    let deadline = Instant::now() + timeout;
    let baseline = settled(&service.scrape().await?)?;
    let mut first: Option<(Instant, f64)> = None;
    loop {
        let now = Instant::now();
        let n = settled(&service.scrape().await?)?;
        if n > baseline && first.is_none() {
            first = Some((now, n));
        }
        if n >= target {
            let (start, at_start) = first.unwrap_or((now, n));
            let elapsed = (now - start).as_secs_f64();
            if elapsed <= 0.0 {
                anyhow::bail!("the drain finished between two samples; use more messages");
            }
            return Ok(DrainTiming { rate: (n - at_start) / elapsed, first_progress: start, drained: now });
        }
        if now > deadline {
            anyhow::bail!("only {n} of {target} messages settled after {timeout:?}");
        }
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
}

//! The gateway binary: how fast it starts, its memory idle and under load, the most sign-ups it
//! accepts per second (every one costs an argon2id hash, so the raw hash rate is the ceiling),
//! and its latency under an open-loop load of half that rate. Both in rounds, each next to its
//! raw limit: all cores hashing right before each saturation window, one hash timed right
//! before each half load.

use std::time::{Duration, Instant};

use gateway::configuration::HashingSettings;

use super::{Context, READY_TIMEOUT};
use crate::environment::BenchDatabase;
use crate::load::{self, LoadResult, SignUps};
use crate::services::Service;
use crate::stages::StageProfile;

/// A running gateway with its own topic and database.
pub struct GatewayUnderTest {
    /// Its `base_url` is the internal listener (probes, `/metrics`); `signups` go to the
    /// public one.
    pub service: Service,
    pub topic: String,
    pub db: BenchDatabase,
    pub ready_after: Duration,
    pub idle_rss_mib: f64,
    pub signups: SignUps,
}

/// One round of the throughput ratio: the raw hash rate, then the gateway saturated.
pub struct MaxRateRound {
    /// argon2id hashes per second on every core, measured right before `max`.
    pub raw_hashes_per_sec: f64,
    pub threads: usize,
    pub max: MaxRate,
}

pub struct MaxRate {
    /// Accepted sign-ups per second, from the gateway's own `accepted` counter.
    pub accepted_per_sec: f64,
    pub load: LoadResult,
    pub peak_rss_mib: f64,
}

pub struct HalfLoad {
    pub rate: f64,
    /// One hash (median, one thread) measured right before this load, on the same machine
    /// state: the machine's speed drifts over a run on a shared host.
    pub one_hash: Duration,
    pub load: LoadResult,
    pub peak_rss_mib: f64,
    /// Where the gateway's time went during the load.
    pub stages: StageProfile,
    /// Control: the same arrivals hashed by as many threads as the gateway has hashing slots,
    /// with no HTTP and no broker: the latency argon2id alone has at this rate here.
    pub hashing_only: hdrhistogram::Histogram<u64>,
}

/// Clients of the saturation test: enough to keep every hashing slot busy with requests
/// queued behind them, well under the gateway's queue limit (64 per slot).
pub fn saturating_clients() -> usize {
    4 * std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
}

pub async fn start(ctx: &Context<'_>) -> anyhow::Result<GatewayUnderTest> {
    start_with(ctx, "gateway", &[("CLIENT_RATE_LIMIT", "off".to_owned())]).await
}

/// A gateway named `name` (its topic and database are named after it) with `extra` variables
/// on top of the benchmark's. Without a per-client budget by default: every load generator
/// here is one client, 127.0.0.1.
pub async fn start_with(ctx: &Context<'_>, name: &str, extra: &[(&str, String)]) -> anyhow::Result<GatewayUnderTest> {
    let topic_name = if name == "gateway" { "registrations".to_owned() } else { format!("{name}-registrations") };
    let topic = ctx.env.create_topic(&topic_name, 3).await?;
    let db = ctx.env.fresh_database(name).await?;
    let secret = hex::encode(rand::random::<[u8; 32]>());
    let env = vec![
        ("KAFKA_BOOTSTRAP_SERVERS", ctx.env.kafka_bootstrap.clone()),
        ("DATABASE_URL", db.url.clone()),
        ("REGISTRATIONS_TOPIC", topic.clone()),
        ("REQUEST_ID_SECRET", secret),
        // Stated explicitly so that the raw hash rate and the gateway use the same cost
        // whatever the caller's environment says.
        ("ARGON2_MEMORY_KIB", HashingSettings::OWASP_MEMORY_KIB.to_string()),
        ("ARGON2_ITERATIONS", HashingSettings::OWASP_ITERATIONS.to_string()),
        ("ARGON2_PARALLELISM", HashingSettings::OWASP_PARALLELISM.to_string()),
    ];
    let api_port = crate::services::free_port()?;
    let api_url = format!("http://127.0.0.1:{api_port}");
    let env: Vec<(&str, String)> = env
        .into_iter()
        .chain([("GATEWAY_ADDR", format!("127.0.0.1:{api_port}"))])
        .chain(extra.iter().cloned())
        .collect();
    // The service's own address is the internal listener: it is timed to /readyz and scraped.
    let mut service = Service::spawn(ctx.binaries, "gateway", "GATEWAY_INTERNAL_ADDR", &env)?;
    let ready_after = service.wait_ready(READY_TIMEOUT).await?;
    // Let background start-up work (migrations, producer connections) settle before "idle".
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rss_mib = service.rss_mib()?;
    let signups = SignUps::new(&api_url, &ctx.env.run_id)?;
    Ok(GatewayUnderTest { service, topic, db, ready_after, idle_rss_mib, signups })
}

const ACCEPTED: &str = "gateway_registrations_accepted_total";

/// Round `i` of the throughput ratio: every core hashing for the plan's time, then the gateway
/// saturated (the first round warms up longer).
pub async fn max_rate_round(ctx: &Context<'_>, gw: &mut GatewayUnderTest, i: usize) -> anyhow::Result<MaxRateRound> {
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let duration = ctx.plan.argon2_duration;
    let raw_hashes_per_sec = tokio::task::spawn_blocking(move || crate::raw::argon2::rate(threads, duration)).await?;
    let warmup = if i == 0 { ctx.plan.gateway_warmup } else { ctx.plan.gateway_rewarm };
    let max = max_rate(ctx, gw, warmup).await?;
    eprintln!(
        "[bench]   round {}: raw {raw_hashes_per_sec:.1} hashes/s, gateway {:.1} accepted/s ({:.2})",
        i + 1,
        max.accepted_per_sec,
        max.accepted_per_sec / raw_hashes_per_sec
    );
    Ok(MaxRateRound { raw_hashes_per_sec, threads, max })
}

/// Saturates the gateway; the rate is the `accepted` counter's growth over the window after
/// the warm-up, so start-up effects and the tail of the run do not count.
pub async fn max_rate(ctx: &Context<'_>, gw: &mut GatewayUnderTest, warmup: Duration) -> anyhow::Result<MaxRate> {
    let window = ctx.plan.gateway_max_window;
    let rss = gw.service.sample_rss();
    let signups = gw.signups.clone();
    let total = warmup + window + Duration::from_millis(500);
    let load = tokio::spawn(async move { load::saturate(&signups, saturating_clients(), total).await });
    tokio::time::sleep(warmup).await;
    let (a1, t1) = (gw.service.scrape().await?.require(ACCEPTED)?, Instant::now());
    tokio::time::sleep(window).await;
    let (a2, t2) = (gw.service.scrape().await?.require(ACCEPTED)?, Instant::now());
    let load = load.await?;
    gw.service.ensure_running()?;
    let accepted_per_sec = (a2 - a1) / (t2 - t1).as_secs_f64();
    if accepted_per_sec <= 0.0 {
        anyhow::bail!("the gateway accepted nothing under load (answers other than 202: {:?})", load.other);
    }
    Ok(MaxRate { accepted_per_sec, load, peak_rss_mib: rss.peak_mib() })
}

/// Open-loop load at half the maximum rate.
pub async fn half_load(ctx: &Context<'_>, gw: &mut GatewayUnderTest, max_rate: f64) -> anyhow::Result<HalfLoad> {
    let rate = max_rate / 2.0;
    let samples = ctx.plan.single_hashes;
    let one_hash = tokio::task::spawn_blocking(move || crate::raw::argon2::one_hash(samples)).await?;
    let rss = gw.service.sample_rss();
    let before = gw.service.scrape().await?;
    let started = Instant::now();
    let load = load::open_loop(&gw.signups, rate, ctx.plan.gateway_half_load).await;
    let stages =
        StageProfile::between("gateway", &before, &gw.service.scrape().await?, started.elapsed().as_secs_f64());
    gw.service.ensure_running()?;
    if load.accepted.is_empty() {
        anyhow::bail!("no request was accepted at {rate:.1}/s (answers: {:?})", load.other);
    }
    eprintln!(
        "[bench]   one hash {:.1} ms, p99 at {rate:.1}/s {:.1} ms",
        one_hash.as_secs_f64() * 1000.0,
        load.accepted_latency_us.value_at_quantile(0.99) as f64 / 1000.0
    );
    // Right after, on the same machine state; the gateway idles meanwhile. Its default
    // hashing slots: one per CPU.
    let slots = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let control_for = ctx.plan.gateway_half_load.min(Duration::from_secs(10));
    let hashing_only =
        tokio::task::spawn_blocking(move || crate::raw::argon2::open_loop(rate, slots, control_for)).await?;
    eprintln!(
        "[bench]   control: argon2id alone at {rate:.1}/s on {slots} threads, p99 {:.1} ms",
        hashing_only.value_at_quantile(0.99) as f64 / 1000.0
    );
    Ok(HalfLoad { rate, one_hash, load, peak_rss_mib: rss.peak_mib(), stages, hashing_only })
}

//! One client flooding the gateway's `POST /registrations` (open loop, 2,000 requests a
//! second for 15 s) while one well-behaved client signs up at 4 a second: the well-behaved
//! client's success rate and p99 with the per-client budget on, then off. Both clients come
//! through a trusted "proxy" (127.0.0.1 in `TRUSTED_PROXIES`), told apart by
//! `X-Forwarded-For`. OWASP hashing, as deployed: the flood is ~25x what the machine hashes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::Context;

pub const FLOOD_RATE: f64 = 2_000.0;
pub const POLITE_RATE: f64 = 4.0;
pub const DURATION: Duration = Duration::from_secs(15);
/// The budget of the run: 5 a second per client (the polite client stays under it), 10 at once.
pub const PER_MINUTE: u32 = 300;
pub const BURST: u32 = 10;
const FLOODER: &str = "203.0.113.66";
const POLITE: &str = "198.51.100.7";
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What one client was answered.
#[derive(Debug, Default)]
pub struct ClientAnswers {
    pub sent: u64,
    /// By status code; 0 = transport error or timeout.
    pub by_status: BTreeMap<u16, u64>,
    /// Latency of the 202s from the intended send time, in microseconds.
    pub accepted_latency_us: Option<Histogram<u64>>,
}

impl ClientAnswers {
    pub fn accepted(&self) -> u64 {
        self.by_status.get(&202).copied().unwrap_or(0)
    }

    pub fn success_rate(&self) -> f64 {
        if self.sent == 0 {
            return 0.0;
        }
        self.accepted() as f64 / self.sent as f64
    }

    /// p99 of the 202s (ms); `None` when there was none.
    pub fn p99_ms(&self) -> Option<f64> {
        self.accepted_latency_us.as_ref().filter(|h| !h.is_empty()).map(|h| h.value_at_quantile(0.99) as f64 / 1000.0)
    }
}

/// One flood, with the budget on or off.
pub struct FloodRun {
    pub limit_on: bool,
    pub flooder: ClientAnswers,
    pub polite: ClientAnswers,
    pub peak_rss_mib: f64,
}

pub struct FloodFigures {
    pub on: FloodRun,
    pub off: FloodRun,
}

pub async fn run(ctx: &Context<'_>) -> anyhow::Result<FloodFigures> {
    let on = flood(ctx, true).await?;
    let off = flood(ctx, false).await?;
    Ok(FloodFigures { on, off })
}

async fn flood(ctx: &Context<'_>, limit_on: bool) -> anyhow::Result<FloodRun> {
    let extra = [
        ("CLIENT_RATE_LIMIT", if limit_on { "on" } else { "off" }.to_owned()),
        ("CLIENT_RATE_PER_MINUTE", PER_MINUTE.to_string()),
        ("CLIENT_RATE_BURST", BURST.to_string()),
        ("TRUSTED_PROXIES", "127.0.0.1".to_owned()),
    ];
    let mut gw = super::gateway::start_with(ctx, &extra).await?;
    let rss = gw.service.sample_rss();
    let url = format!("{}/registrations", gw.api_url);
    let counter = Arc::new(AtomicU64::new(0));
    let run_id = ctx.env.run_id.clone();
    let (flooder, polite) = tokio::join!(
        open_loop(&url, FLOODER, FLOOD_RATE, &run_id, &counter),
        open_loop(&url, POLITE, POLITE_RATE, &run_id, &counter),
    );
    gw.service.ensure_running()?;
    let (flooder, polite) = (flooder?, polite?);
    eprintln!(
        "[bench]   budget {}: flooder {:?}, polite {:?} (p99 {:?} ms)",
        if limit_on { "on" } else { "off" },
        flooder.by_status,
        polite.by_status,
        polite.p99_ms()
    );
    let peak_rss_mib = rss.peak_mib();
    gw.service.stop().await;
    Ok(FloodRun { limit_on, flooder, polite, peak_rss_mib })
}

/// `rate` sign-ups a second for [`DURATION`] from the client `forwarded_for`, latency from
/// each request's intended send time (a stalled server cannot hide by slowing the load).
async fn open_loop(
    url: &str,
    forwarded_for: &'static str,
    rate: f64,
    run_id: &str,
    counter: &Arc<AtomicU64>,
) -> anyhow::Result<ClientAnswers> {
    let client = reqwest::Client::builder().timeout(REQUEST_TIMEOUT).pool_max_idle_per_host(512).build()?;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    let mut sent = 0u64;
    loop {
        let offset = interval.mul_f64(sent as f64);
        if offset >= DURATION {
            break;
        }
        let intended = start + offset;
        tokio::time::sleep_until(intended).await;
        let n = counter.fetch_add(1, Ordering::Relaxed);
        let request = client.post(url).header("X-Forwarded-For", forwarded_for).json(&serde_json::json!({
            "email": format!("flood-{run_id}-{n}@example.com"),
            "name": "Flood Test",
            "password": format!("correct horse battery staple {n}"),
        }));
        tasks.spawn(async move {
            let status = match request.send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let _ = response.bytes().await;
                    status
                }
                Err(_) => 0,
            };
            (status, intended.elapsed())
        });
        sent += 1;
    }
    let mut answers = ClientAnswers {
        sent,
        accepted_latency_us: Some(Histogram::new_with_bounds(1, 600_000_000, 3)?),
        ..ClientAnswers::default()
    };
    while let Some(joined) = tasks.join_next().await {
        let (status, latency) = joined?;
        *answers.by_status.entry(status).or_default() += 1;
        if status == 202 {
            if let Some(h) = answers.accepted_latency_us.as_mut() {
                h.saturating_record(latency.as_micros().max(1) as u64);
            }
        }
    }
    Ok(answers)
}

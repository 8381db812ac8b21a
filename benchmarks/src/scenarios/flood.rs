//! One client flooding the gateway's `POST /registrations` (open loop, 2,000 requests a
//! second by default, `--flood-rate`, for 15 s) while one well-behaved client signs up at 4 a second: the well-behaved
//! client's success rate and p99 with the per-client budget on, then off. Both clients come
//! through a trusted "proxy" (127.0.0.1 in `TRUSTED_PROXIES`), told apart by
//! `X-Forwarded-For`. OWASP hashing, as deployed: the flood is far beyond what the machine
//! hashes.

use std::time::Duration;

use super::Context;
use crate::load::{self, LoadResult};

pub const POLITE_RATE: f64 = 4.0;
pub const DURATION: Duration = Duration::from_secs(15);
/// The budget of the run: 5 a second per client (the polite client stays under it), 10 at once.
pub const PER_MINUTE: u32 = 300;
pub const BURST: u32 = 10;
const FLOODER: &str = "203.0.113.66";
const POLITE: &str = "198.51.100.7";

/// One flood, with the budget on or off.
pub struct FloodRun {
    pub limit_on: bool,
    pub flooder: LoadResult,
    pub polite: LoadResult,
    pub peak_rss_mib: f64,
}

impl FloodRun {
    /// The well-behaved client's 202s ÷ its requests.
    pub fn polite_success(&self) -> f64 {
        if self.polite.sent == 0 {
            return 0.0;
        }
        self.polite.accepted.len() as f64 / self.polite.sent as f64
    }

    /// p99 of the well-behaved client's 202s (ms), from their intended send times.
    pub fn polite_p99_ms(&self) -> Option<f64> {
        let h = &self.polite.accepted_latency_us;
        (!h.is_empty()).then(|| h.value_at_quantile(0.99) as f64 / 1000.0)
    }
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
    let name = if limit_on { "flood_on" } else { "flood_off" };
    let mut gw = super::gateway::start_with(ctx, name, &extra).await?;
    let rss = gw.service.sample_rss();
    let (flooder, polite) = (gw.signups.as_client(FLOODER)?, gw.signups.as_client(POLITE)?);
    let (flooder, polite) = tokio::join!(
        load::open_loop(&flooder, ctx.plan.flood_rate, DURATION),
        load::open_loop(&polite, POLITE_RATE, DURATION),
    );
    gw.service.ensure_running()?;
    let run = FloodRun { limit_on, flooder, polite, peak_rss_mib: rss.peak_mib() };
    eprintln!(
        "[bench]   budget {}: flooder {} sent, {} accepted, others {:?}; polite {}/{} accepted, p99 {:?} ms",
        if limit_on { "on" } else { "off" },
        run.flooder.sent,
        run.flooder.accepted.len(),
        run.flooder.other,
        run.polite.accepted.len(),
        run.polite.sent,
        run.polite_p99_ms()
    );
    gw.service.stop().await;
    Ok(run)
}

//! The registration-service through a database outage (issues 10 and 14): how fast it drains
//! the backlog that built up meanwhile, compared with its maximum drain measured next to it,
//! and whether it dead-lettered or parked anything while the database was away.
//!
//! Two ways to take the database away ([`OutageBy`]):
//!
//! * `db-stop` (the default): the real MariaDB server is stopped with
//!   `scripts/local-services.sh db-stop` and started again with `db-start`, as in production
//!   (every connection refused, then a cold server with its buffer pool to warm). A guard
//!   ([`StoppedDatabase`]) runs `db-start` whatever happens in between: an error, a phase
//!   timeout, the run's hard limit or Ctrl-C / SIGTERM;
//! * `proxy`: the integration tests' `TcpProxy` between the service and MariaDB is cut (every
//!   connection dropped, new ones refused) and restored: the database itself stays up, so this
//!   disturbs nobody else on a shared machine.
//!
//! One round: the service starts on an empty topic (its start-up time and idle memory are
//! measured there), the database is taken away, sign-up events are produced as a steady load
//! spread evenly over the outage ([`crate::events::produce_steadily`]), so the backlog builds as
//! it would in production, then the database is brought back. The rate is the backlog left at
//! the restore (the restarted server's first accepted connection, or the proxy restored) ÷ the
//! time from the restore to the
//! last outcome, so the time the service takes to notice the database is back counts. The
//! baseline is the same service draining a pre-filled topic of the same size over the same path
//! (directly for `db-stop`, through the proxy for `proxy`), measured right before each round.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use super::drain::{self, measure_drain, Drain};
use super::{registration_service_env, settled, Context, READY_TIMEOUT};
use crate::events::{self, SteadyLoad};
use crate::services::Service;
use crate::stages::StageProfile;
use test_support::tcp_proxy::{database_socket_addr, TcpProxy};

pub mod restart_control;
mod stopped_database;
use restart_control::RestartControl;
pub use stopped_database::{reachable, StoppedDatabase};

/// How the database is taken away during the outage (`--outage-by`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutageBy {
    /// Stop the MariaDB server (`local-services.sh db-stop`, then `db-start`).
    DbStop,
    /// Cut the TCP proxy between the service and MariaDB, then restore it.
    Proxy,
}

impl OutageBy {
    pub fn describe(self) -> &'static str {
        match self {
            OutageBy::DbStop => "MariaDB stopped (local-services.sh db-stop, then db-start)",
            OutageBy::Proxy => "TCP proxy cut (MariaDB itself up)",
        }
    }

    /// The path both the outage round and its baseline drain take to the database.
    pub fn path(self) -> &'static str {
        match self {
            OutageBy::DbStop => "direct",
            OutageBy::Proxy => "via the TCP proxy",
        }
    }
}

/// An outage of at least this long gets a single round (the 3- and 10-minute figures).
pub const LONG_OUTAGE: Duration = Duration::from_secs(60);

/// Rounds for an outage of `outage` when other ratios get `rounds`.
pub fn rounds_for(outage: Duration, rounds: usize) -> usize {
    if outage >= LONG_OUTAGE {
        1
    } else {
        rounds
    }
}

pub struct Outage {
    /// From the moment the database was gone (db-stop returned, or the proxy cut) to the
    /// moment it was back (the first connection the restarted server accepted, or the proxy
    /// restored).
    pub down_for: Duration,
    /// How long `db-stop` and `db-start` took (zero for the proxy).
    pub stop_took: Duration,
    pub start_took: Duration,
    /// The sign-ups produced while the database was away.
    pub load: SteadyLoad,
    /// Messages without an outcome at the restore.
    pub backlog: usize,
    /// Settled per second from the restore until the backlog was gone: the figure.
    pub rows_per_sec_after: f64,
    /// From the restore to the first new outcome (zero when outcomes began before `db-start`
    /// returned: see `outcomes_before_restore`).
    pub recovery: Duration,
    /// Outcomes given while `db-start` was still running (the server answers before the script
    /// has finished its checks). Part of the backlog: the rate counts from the server's first
    /// accepted connection.
    pub outcomes_before_restore: f64,
    /// Settled per second once it was draining again.
    pub rows_per_sec_once_recovered: f64,
    /// Where the service's time went from the `db-start` call (or the proxy's restore) to the
    /// last outcome.
    pub stages: StageProfile,
    /// Messages handed to the DLQ for a transient failure from the outage's start until the
    /// backlog was drained (0 with the default pause policy).
    pub dead_lettered: f64,
    /// Messages handed to the DLQ as permanent failures (parked) meanwhile (must be 0).
    pub parked: f64,
    /// Whether `registration_service_paused` went to 1; `None` when it is not exposed.
    pub paused: Option<bool>,
    /// The longest `registration_service_outage_seconds` seen, if exposed.
    pub paused_for: Option<f64>,
    /// Rows in `users` at the end (every sign-up stored exactly once: `load.records` minus
    /// what went to the DLQ).
    pub stored: i64,
    pub ready_after: Duration,
    pub idle_rss_mib: f64,
}

impl Outage {
    /// Dead-lettered plus parked: what the default pause policy must keep at 0.
    pub fn sent_to_dlq(&self) -> f64 {
        self.dead_lettered + self.parked
    }
}

/// One round: the baseline drain, then the outage.
pub struct OutageRound {
    /// The same service draining a pre-filled topic of the same size over the same path.
    pub baseline: Drain,
    pub outage: Outage,
}

pub struct OutageRounds {
    pub by: OutageBy,
    pub outage: Duration,
    pub rounds: Vec<OutageRound>,
    /// MariaDB's own drain from a restart against its warm drain (`db-stop` only).
    pub restart_control: Option<anyhow::Result<RestartControl>>,
}

/// The outage phase: [`rounds_for`] rounds of (baseline drain, outage).
pub async fn rounds(ctx: &Context<'_>, by: OutageBy) -> anyhow::Result<OutageRounds> {
    let count = rounds_for(ctx.plan.outage, ctx.plan.rounds);
    let mut rounds = Vec::with_capacity(count);
    for i in 0..count {
        let round = async {
            let baseline =
                drain::run(ctx, &format!("outage-baseline-{i}"), ctx.plan.outage_messages, None, by == OutageBy::Proxy)
                    .await
                    .context("baseline drain")?;
            eprintln!(
                "[bench]   round {} of {count}: baseline drain {:.0} rows/s ({})",
                i + 1,
                baseline.rows_per_sec,
                by.path()
            );
            let outage = run(ctx, i, by).await.context("outage")?;
            anyhow::Ok(OutageRound { baseline, outage })
        };
        rounds.push(round.await.with_context(|| format!("round {} of {count}", i + 1))?);
    }
    let restart_control = match by {
        OutageBy::DbStop => {
            let batch_size = reliable_messaging::consumer::ConsumerSettings::new("", &[]).max_batch_size;
            let control = restart_control::measure(ctx, ctx.plan.outage_messages, batch_size).await;
            match &control {
                Ok(c) => eprintln!(
                    "[bench]   restart control: raw loop {:.0} rows/s warm, {:.0} rows/s counted from the server's first accepted connection",
                    c.warm_rows_per_sec, c.from_restore_rows_per_sec
                ),
                Err(e) => eprintln!("[bench]   restart control failed: {e:#}"),
            }
            Some(control)
        }
        OutageBy::Proxy => None,
    };
    Ok(OutageRounds { by, outage: ctx.plan.outage, rounds, restart_control })
}

const DEAD_LETTERED: &str = "registration_service_dead_lettered_transient_total";
const PARKED: &str = "registration_service_dead_lettered_permanent_total";
const PAUSED: &str = "registration_service_paused";
const OUTAGE_SECONDS: &str = "registration_service_outage_seconds";

/// One outage round (`round` names its topic and database).
pub async fn run(ctx: &Context<'_>, round: usize, by: OutageBy) -> anyhow::Result<Outage> {
    let messages = ctx.plan.outage_messages;
    let topic = ctx.env.create_topic(&format!("outage-{round}"), 3).await?;
    ctx.env.adopt_topic(format!("{topic}-dlq"));
    let db = ctx.env.fresh_database(&format!("outage_{round}")).await?;
    let proxy = match by {
        OutageBy::Proxy => Some(TcpProxy::start(database_socket_addr(&db.url)).await),
        OutageBy::DbStop => None,
    };
    let url = proxy.as_ref().map_or(db.url.clone(), |p| p.rewrite_url(&db.url));
    let env = registration_service_env(ctx, &topic, &format!("{topic}-group"), &url);
    let mut service = Service::spawn(ctx.binaries, "registration-service", "REGISTRATION_SERVICE_ADDR", &env)?;
    let ready_after = service.wait_ready(READY_TIMEOUT).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rss_mib = service.rss_mib()?;

    let records = events::registrations(&ctx.env.run_id, &topic, messages);
    let producer = events::producer(&ctx.env.kafka_bootstrap)?;
    let before = service.scrape().await?;
    let settled_before = settled(&before)?;

    let stop_watching = CancellationToken::new();
    let watch = watch_pause(&service, stop_watching.clone());
    let sequence = async {
        let result = outage_and_drain(ctx, by, proxy.as_ref(), &service, &producer, records, settled_before).await;
        stop_watching.cancel();
        result
    };
    let (sequence, (paused, paused_for)) = tokio::join!(sequence, watch);
    let drained = sequence?;

    let after = service.scrape().await?;
    let delta = |name: &str| after.get(name).unwrap_or(0.0) - before.get(name).unwrap_or(0.0);
    let (dead_lettered, parked) = (delta(DEAD_LETTERED), delta(PARKED));
    let stored = db.count_users().await?;
    if stored as f64 + dead_lettered + parked != messages as f64 {
        anyhow::bail!(
            "{messages} sign-ups were produced during the outage, but users has {stored} rows and {} went to the DLQ",
            dead_lettered + parked
        );
    }
    service.ensure_running()?;
    service.stop().await;
    let measured = Outage {
        down_for: drained.down_for,
        stop_took: drained.stop_took,
        start_took: drained.start_took,
        load: drained.load,
        backlog: drained.backlog,
        rows_per_sec_after: drained.rows_per_sec_after,
        recovery: drained.recovery,
        outcomes_before_restore: drained.outcomes_before_restore,
        rows_per_sec_once_recovered: drained.rows_per_sec_once_recovered,
        stages: drained.stages,
        dead_lettered,
        parked,
        paused,
        paused_for,
        stored,
        ready_after,
        idle_rss_mib,
    };
    let o = &measured;
    eprintln!(
        "[bench]   outage {:.1} s: backlog {} drained at {:.0}/s from the restore (first outcome after {:.2} s, \
             {} while db-start ran); dead-lettered {}, parked {}, paused: {}; from db-start: {}",
        o.down_for.as_secs_f64(),
        o.backlog,
        o.rows_per_sec_after,
        o.recovery.as_secs_f64(),
        o.outcomes_before_restore,
        o.dead_lettered,
        o.parked,
        o.paused.map_or("not exposed", |p| if p { "yes" } else { "no" }),
        o.stages,
    );
    Ok(measured)
}

struct Drained {
    down_for: Duration,
    stop_took: Duration,
    start_took: Duration,
    load: SteadyLoad,
    backlog: usize,
    rows_per_sec_after: f64,
    recovery: Duration,
    outcomes_before_restore: f64,
    rows_per_sec_once_recovered: f64,
    /// Where the service's time went from the `db-start` call to the last outcome.
    stages: StageProfile,
}

/// Takes the database away, produces the steady load for the outage's length, brings the
/// database back (always, also when producing failed) and measures the drain from there.
async fn outage_and_drain(
    ctx: &Context<'_>,
    by: OutageBy,
    proxy: Option<&TcpProxy>,
    service: &Service,
    producer: &reliable_messaging::producer::DurableProducer,
    records: Vec<reliable_messaging::producer::OutboundRecord>,
    settled_before: f64,
) -> anyhow::Result<Drained> {
    let outage = ctx.plan.outage;
    let messages = records.len();
    eprintln!("[bench]   database away for {outage:?} ({})", by.describe());
    let stop_started = Instant::now();
    let stopped = match (by, proxy) {
        (OutageBy::DbStop, _) => Some(StoppedDatabase::stop(ctx.local_services).await?),
        (OutageBy::Proxy, Some(proxy)) => {
            proxy.cut();
            None
        }
        (OutageBy::Proxy, None) => anyhow::bail!("the proxy outage needs a proxy"),
    };
    let down_at = Instant::now();
    let stop_took = down_at - stop_started;
    let load = events::produce_steadily(producer, records, outage).await;
    tokio::time::sleep(outage.saturating_sub(down_at.elapsed())).await;
    // Nothing can have an outcome while the database is away: the count right before the
    // restore starts tells which outcomes came while it ran.
    let before_start = service.scrape().await.ok();
    let before_restore = before_start.as_ref().and_then(|s| settled(s).ok());
    let start_started = Instant::now();
    // Back for its clients: the server's first accepted connection, or the proxy's restore.
    let restored_at = match (stopped, proxy) {
        (Some(stopped), _) => stopped.start_watching(database_socket_addr(&ctx.env.database_url)).await?.reachable_at,
        (None, Some(proxy)) => {
            proxy.restore();
            Instant::now()
        }
        (None, None) => unreachable!("one of the two took the database away"),
    };
    let start_took = start_started.elapsed();
    let down_for = restored_at - down_at;
    let load = load?;
    if down_for > outage + start_took + Duration::from_secs(2) {
        eprintln!("[bench]   producing took longer than the outage: it lasted {down_for:?}");
    }

    let at_restore = service.scrape().await?;
    let settled_at_restore = settled(&at_restore)?;
    // The backlog when the server was back: everything not settled before `db-start` began
    // (nothing can be settled while the database is away).
    let settled_before_start = before_restore.unwrap_or(settled_at_restore);
    let backlog = messages as f64 - (settled_before_start - settled_before);
    let outcomes_before_restore = (settled_at_restore - settled_before_start).max(0.0);
    if backlog <= 0.0 {
        anyhow::bail!(
            "every message had an outcome before the database was back: was it really away? (paused gauge: {:?})",
            at_restore.get(PAUSED)
        );
    }
    let timing = measure_drain(service, settled_before + messages as f64).await?;
    // From the db-start call, so the outcomes given while it ran are in the profile too.
    let stages = StageProfile::between(
        "registration_service",
        before_start.as_ref().unwrap_or(&at_restore),
        &service.scrape().await?,
        start_started.elapsed().as_secs_f64(),
    );
    // The rate counts from the restore: the time until the first new outcome (the recovery)
    // is part of what this figure measures.
    let drained_after = (timing.drained - restored_at).as_secs_f64();
    Ok(Drained {
        down_for,
        stop_took,
        start_took,
        load,
        backlog: backlog as usize,
        rows_per_sec_after: backlog / drained_after,
        recovery: if outcomes_before_restore > 0.0 {
            Duration::ZERO
        } else {
            timing.first_progress.saturating_duration_since(restored_at)
        },
        outcomes_before_restore,
        rows_per_sec_once_recovered: timing.rate,
        stages,
    })
}

/// Scrapes the service every 100 ms until `stop`: whether `registration_service_paused` went
/// to 1 (`None` if never exposed) and the longest `registration_service_outage_seconds` seen.
async fn watch_pause(service: &Service, stop: CancellationToken) -> (Option<bool>, Option<f64>) {
    let (mut paused, mut longest): (Option<bool>, Option<f64>) = (None, None);
    while !stop.is_cancelled() {
        if let Ok(scrape) = service.scrape().await {
            if let Some(p) = scrape.get(PAUSED) {
                paused = Some(paused.unwrap_or(false) || p >= 1.0);
            }
            if let Some(s) = scrape.get(OUTAGE_SECONDS) {
                longest = Some(longest.map_or(s, |l: f64| l.max(s)));
            }
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
    (paused, longest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_outages_get_one_round() {
        assert_eq!(rounds_for(Duration::from_secs(10), 5), 5);
        assert_eq!(rounds_for(Duration::from_secs(59), 3), 3);
        assert_eq!(rounds_for(Duration::from_secs(60), 5), 1);
        assert_eq!(rounds_for(Duration::from_secs(600), 5), 1);
    }
}

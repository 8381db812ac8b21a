//! `bench`: measures the services (real release binaries, as OS processes) against the raw
//! limits of this machine measured in the same run, and prints one table: figure, ours, raw
//! limit, ratio, goal, met. Run it through `scripts/bench.sh`, which builds everything in
//! release mode and starts the local Kafka and MariaDB first.
//!
//! Every ratio with a goal is measured in alternating rounds (5, or 3 with `--quick`): the raw
//! limit, then ours, again and again, each round's ratio dividing figures measured next to each
//! other; the table shows the median ratio with its spread, and a spread that crosses the goal
//! is "unsettled" (`rounds.rs`, `report.rs`).
//!
//! Order of a run: Kafka's own tools (context), then the gateway (rounds of raw argon2id +
//! saturation, rounds of one hash + 50 % load, rounds of end-to-end budget + end-to-end load),
//! the registration-service's drain rounds (raw upserts, batched drain, row-by-row drain), its
//! outage rounds (baseline drain, then a database outage under a steady load: MariaDB stopped
//! by default), the dlq-worker, and the consumer's instructions per message under callgrind.
//! Every step has a timeout; whatever fails is reported as an
//! ERROR row and the run goes on. Topics and databases of the run are deleted at the end, every
//! spawned process is stopped, and a database stopped for an outage is always started again.

mod environment;
mod events;
mod figures;
mod load;
mod machine;
mod plan;
mod raw;
mod report;
mod rounds;
mod scenarios;
mod services;
mod stages;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;

use crate::environment::Environment;
use crate::figures::{GatewayFigures, Results};
use crate::plan::Plan;
use crate::raw::kafka_tools::KafkaTools;
use crate::scenarios::gateway::{GatewayUnderTest, HalfLoad, MaxRateRound};
use crate::scenarios::outage::OutageBy;
use crate::scenarios::Context;
use crate::services::Binaries;

/// Benchmarks the services against the raw limits of this machine, measured in the same run.
#[derive(Debug, Parser)]
#[command(name = "bench")]
struct Args {
    /// About 4 minutes: 3 smaller rounds per ratio instead of 5 (noisier, and the table says so;
    /// for checking the harness).
    #[arg(long)]
    quick: bool,
    /// Keep the run's topics and databases for inspection instead of deleting them.
    #[arg(long)]
    keep: bool,
    #[arg(long, env = "KAFKA_BOOTSTRAP_SERVERS", default_value = "localhost:9092")]
    kafka_bootstrap_servers: String,
    /// A MySQL/MariaDB URL whose user may create databases.
    #[arg(long, env = "DATABASE_URL", default_value = "mysql://registrations@127.0.0.1:3306/registrations")]
    database_url: String,
    /// The script whose `kafka-tool` subcommand runs Kafka's CLI classes, and whose `db-stop` and
    /// `db-start` take the database away for the outage (scripts/local-services.sh).
    #[arg(long, default_value = "scripts/local-services.sh")]
    kafka_tool: PathBuf,
    /// Also write the table (Markdown) to this file.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Run only these phases (for profiling one of them, or checking the harness).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Phase>,
    /// Alternating rounds of every ratio with a goal [default: 5; 3 with --quick]. Fewer than 5
    /// are marked in the table.
    #[arg(long, alias = "drain-rounds", value_parser = clap::value_parser!(u16).range(1..))]
    rounds: Option<u16>,
    /// How the outage phase takes the database away: stop the MariaDB server itself
    /// (`<kafka-tool> db-stop`, then `db-start`: every user of the local MariaDB sees it), or cut
    /// the TCP proxy between the service and MariaDB.
    #[arg(long, value_enum, default_value = "db-stop")]
    outage_by: OutageBy,
    /// Length of each database outage in seconds (issue 10 wants 180 and 600). Outages of 60 s
    /// or more get one round.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    outage_secs: u64,
    /// Requests per second of the flooding client in the flood phase.
    #[arg(long, default_value_t = 2_000.0)]
    flood_rate: f64,
}

/// The parts of a run, for `--only`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Phase {
    /// Kafka's ProducerPerformance and EndToEndLatency, once (context rows and notes).
    Raw,
    /// Gateway rounds: throughput, latency at 50 %, end to end.
    Gateway,
    /// Drain rounds: raw upserts, batched drain, row-by-row drain (`drain-ratio`: the same).
    #[value(alias = "drain-ratio")]
    Drain,
    /// Outage rounds: baseline drain, then a drain after a database outage.
    Outage,
    /// The dlq-worker's re-send punctuality with 10,000 messages waiting.
    Dlq,
    /// The registration-service's instructions per message under callgrind (two drains).
    Cost,
    /// One client flooding the gateway beside a well-behaved one, per-client budget on and off.
    Flood,
}

/// No run may take longer than this, whatever hangs, plus the outages asked for (a full run
/// takes about 9 minutes on a quiet 2-core machine, up to ~15 on a busy one).
const HARD_LIMIT: Duration = Duration::from_secs(40 * 60);

/// The hard limit of a run with this plan.
fn hard_limit(plan: &Plan) -> Duration {
    let outages = scenarios::outage::rounds_for(plan.outage, plan.rounds) as u32;
    HARD_LIMIT + plan.outage * outages
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => {
            eprintln!("[bench] ERROR: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs everything; returns how many goals were missed or could not be measured.
async fn run(args: Args) -> anyhow::Result<usize> {
    let binaries = Binaries::beside_current_exe()?;
    for name in ["gateway", "registration-service", "dlq-worker"] {
        binaries.path(name)?;
    }
    if !args.kafka_tool.exists() {
        anyhow::bail!("{} not found: run from the repository root (scripts/bench.sh does)", args.kafka_tool.display());
    }
    let env = Environment::connect(args.kafka_bootstrap_servers.clone(), args.database_url.clone(), args.keep).await?;
    let mut plan = if args.quick { Plan::quick() } else { Plan::full() };
    if let Some(rounds) = args.rounds {
        plan.rounds = rounds.into();
    }
    plan.outage = Duration::from_secs(args.outage_secs);
    plan.flood_rate = args.flood_rate;
    let machine_before = machine::describe();
    eprintln!(
        "[bench] run {} ({}, rounds: {}) on {machine_before}",
        env.run_id,
        if plan.quick { "quick" } else { "full" },
        plan.rounds
    );
    let ctx = Context { env: &env, binaries: &binaries, plan: &plan, local_services: &args.kafka_tool };
    let tools = KafkaTools { script: args.kafka_tool.clone(), bootstrap: env.kafka_bootstrap.clone() };
    let started = Instant::now();
    let limit = hard_limit(&plan);
    let outcome = tokio::select! {
        results = measure(&ctx, &tools, &args.only, args.outage_by) => Ok(results),
        signal = interrupted() => Err(anyhow::anyhow!("interrupted by {signal}")),
        _ = tokio::time::sleep(limit) => Err(anyhow::anyhow!("the run took longer than {limit:?}")),
    };
    // Dropping the measurement (on interrupt) has killed its processes and started a database
    // it had stopped (scenarios::outage::StoppedDatabase); now the data.
    env.cleanup().await;
    let results = outcome?;
    let report = figures::report(&results, &plan);
    let text = format!(
        "Run {} ({}, rounds: {}), {:.0} s, on {machine_before}\nAfter the run: {}\n\n{}",
        env.run_id,
        if plan.quick { "--quick" } else { "full" },
        plan.rounds,
        started.elapsed().as_secs_f64(),
        machine::load_average(),
        report.render()
    );
    println!("{text}");
    if let Some(path) = &args.output {
        std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(report.missed_or_failed())
}

/// Waits for Ctrl-C or SIGTERM (e.g. from `timeout`), so the run can stop its processes and
/// delete its topics and databases before it exits.
async fn interrupted() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}

/// Logs a phase to stderr (the table goes to stdout).
fn phase(name: &str) {
    eprintln!("[bench] {name}");
}

async fn measure(ctx: &Context<'_>, tools: &KafkaTools, only: &[Phase], outage_by: OutageBy) -> Results {
    let plan = ctx.plan;
    let run_id = &ctx.env.run_id;
    let rounds = plan.rounds as u64;
    let runs = |phase: Phase| only.is_empty() || only.contains(&phase);
    let record_size = events::record_size(run_id);

    let (producer_perf, kafka_end_to_end) = if runs(Phase::Raw) {
        phase("raw: Kafka ProducerPerformance and EndToEndLatency (context)");
        let producer_perf = timed("ProducerPerformance", Duration::from_secs(200), async {
            let topic = ctx.env.create_topic("producer-performance", 3).await?;
            tools.producer_performance(&topic, plan.producer_perf_records, record_size).await
        })
        .await;
        let kafka_end_to_end = timed("EndToEndLatency", Duration::from_secs(200), async {
            let topic = ctx.env.create_topic("end-to-end-latency", 1).await?;
            tools.end_to_end_latency(&topic, plan.end_to_end_messages, record_size).await
        })
        .await;
        (producer_perf, kafka_end_to_end)
    } else {
        (skipped(), skipped())
    };

    let gateway = if runs(Phase::Gateway) {
        phase("gateway: start, then rounds of raw argon2id + saturation");
        timed("gateway", Duration::from_secs(300 + 180 * rounds), measure_gateway(ctx, tools)).await
    } else {
        skipped()
    };

    let drains = if runs(Phase::Drain) {
        phase("registration-service: rounds of raw upserts, batched drain, row-by-row drain");
        timed("drain rounds", Duration::from_secs(60 + 180 * rounds), async {
            let mut measured = Vec::with_capacity(plan.rounds);
            for i in 0..plan.rounds {
                measured.push(scenarios::drain::round(ctx, i).await.with_context(|| format!("round {}", i + 1))?);
            }
            anyhow::Ok(measured)
        })
        .await
    } else {
        skipped()
    };

    let outage = if runs(Phase::Outage) {
        let count = scenarios::outage::rounds_for(plan.outage, plan.rounds);
        phase(&format!(
            "registration-service: {count} round(s) of baseline drain, then a {} s database outage ({})",
            plan.outage.as_secs(),
            outage_by.describe()
        ));
        let limit = (plan.outage + Duration::from_secs(300)) * count as u32;
        timed("outage rounds", limit, scenarios::outage::rounds(ctx, outage_by)).await
    } else {
        skipped()
    };

    let dlq = if runs(Phase::Dlq) {
        phase("dlq-worker: re-send punctuality with 10,000 waiting");
        timed("dlq", Duration::from_secs(300), scenarios::dlq::run(ctx)).await
    } else {
        skipped()
    };

    let cost = if runs(Phase::Cost) {
        phase("registration-service: instructions per message, two drains under callgrind");
        timed("cost", Duration::from_secs(900), scenarios::cost::measure(ctx)).await
    } else {
        skipped()
    };

    let flood = if runs(Phase::Flood) {
        phase("gateway: one client flooding beside a well-behaved one, budget on and off");
        timed("flood", Duration::from_secs(240), scenarios::flood::run(ctx)).await
    } else {
        skipped()
    };

    Results {
        producer_perf,
        kafka_end_to_end,
        record_size,
        gateway,
        drains,
        outage,
        dlq,
        cost,
        flood,
        brokers: ctx.env.brokers,
    }
}

async fn measure_gateway(ctx: &Context<'_>, tools: &KafkaTools) -> anyhow::Result<GatewayFigures> {
    let mut gw = scenarios::gateway::start(ctx).await?;
    let max = max_rate_rounds(ctx, &mut gw).await;
    let (half, end_to_end) = match &max {
        Ok(rounds) => {
            // Half of the median saturation rate: one rate for every round that follows.
            let rate = rounds::median(&rounds.iter().map(|m| m.max.accepted_per_sec).collect::<Vec<_>>());
            phase("gateway: rounds of one hash + 50% open loop");
            let half = half_load_rounds(ctx, &mut gw, rate).await;
            phase("end to end: rounds of budget (Kafka EndToEndLatency, one hash, one commit) + gateway and registration-service at 50%");
            let e2e = scenarios::end_to_end::rounds(ctx, &mut gw, tools, rate).await;
            (half, e2e)
        }
        Err(e) => (Err(anyhow::anyhow!("no maximum rate: {e:#}")), Err(anyhow::anyhow!("no maximum rate: {e:#}"))),
    };
    let figures = GatewayFigures { ready_after: gw.ready_after, idle_rss_mib: gw.idle_rss_mib, max, half, end_to_end };
    gw.service.stop().await;
    Ok(figures)
}

async fn max_rate_rounds(ctx: &Context<'_>, gw: &mut GatewayUnderTest) -> anyhow::Result<Vec<MaxRateRound>> {
    let mut measured = Vec::with_capacity(ctx.plan.rounds);
    for i in 0..ctx.plan.rounds {
        measured.push(
            scenarios::gateway::max_rate_round(ctx, gw, i)
                .await
                .with_context(|| format!("saturation round {}", i + 1))?,
        );
    }
    Ok(measured)
}

async fn half_load_rounds(
    ctx: &Context<'_>,
    gw: &mut GatewayUnderTest,
    max_rate: f64,
) -> anyhow::Result<Vec<HalfLoad>> {
    let mut measured = Vec::with_capacity(ctx.plan.rounds);
    for i in 0..ctx.plan.rounds {
        measured.push(
            scenarios::gateway::half_load(ctx, gw, max_rate).await.with_context(|| format!("50% round {}", i + 1))?,
        );
    }
    Ok(measured)
}

/// The result of a phase left out with `--only`: its figures show as ERROR rows saying so.
fn skipped<T>() -> anyhow::Result<T> {
    Err(anyhow::anyhow!("skipped (--only)"))
}

/// Bounds a measurement and labels its error.
async fn timed<T>(
    what: &str,
    limit: Duration,
    work: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    match tokio::time::timeout(limit, work).await {
        Ok(result) => result.with_context(|| what.to_owned()),
        Err(_) => Err(anyhow::anyhow!("{what}: gave up after {limit:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("bench").chain(args.iter().copied())).expect("valid arguments")
    }

    #[test]
    fn outage_options_default_to_a_10_s_database_stop() {
        let args = parse(&[]);
        assert_eq!((args.outage_by, args.outage_secs, args.rounds), (OutageBy::DbStop, 10, None));
        let args = parse(&["--only", "outage", "--outage-secs", "180", "--outage-by", "proxy"]);
        assert_eq!(
            (args.only.as_slice(), args.outage_by, args.outage_secs),
            (&[Phase::Outage][..], OutageBy::Proxy, 180)
        );
        assert!(Args::try_parse_from(["bench", "--outage-secs", "0"]).is_err());
        assert!(Args::try_parse_from(["bench", "--outage-by", "kill"]).is_err());
    }

    #[test]
    fn the_old_drain_ratio_spellings_still_work() {
        let args = parse(&["--only", "gateway,drain-ratio", "--drain-rounds", "3"]);
        assert_eq!(args.only, [Phase::Gateway, Phase::Drain]);
        assert_eq!(args.rounds, Some(3));
        assert!(Args::try_parse_from(["bench", "--rounds", "0"]).is_err());
    }

    #[test]
    fn the_hard_limit_grows_with_the_outages() {
        let mut plan = Plan::full();
        assert_eq!(hard_limit(&plan), HARD_LIMIT + Duration::from_secs(50));
        plan.outage = Duration::from_secs(600);
        assert_eq!(hard_limit(&plan), HARD_LIMIT + Duration::from_secs(600));
    }
}

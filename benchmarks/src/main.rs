//! `bench`: measures the services (real release binaries, as OS processes) against the raw
//! limits of this machine measured in the same run, and prints one table: figure, ours, raw
//! limit, ratio, goal, met. Run it through `scripts/bench.sh`, which builds everything in
//! release mode and starts the local Kafka and MariaDB first.
//!
//! Order of a run: raw limits (argon2id, MariaDB upserts, Kafka's tools), then the gateway
//! (alone, then with a registration-service for end to end), the registration-service's
//! drains, its recovery after a database outage, and the dlq-worker. Every step has a
//! timeout; whatever fails is reported as an ERROR row and the run goes on. Topics and
//! databases of the run are deleted at the end, and every spawned process is stopped.

mod environment;
mod events;
mod figures;
mod load;
mod machine;
mod plan;
mod prometheus;
mod raw;
mod report;
mod scenarios;
mod services;
/// The integration tests' fault-injecting proxy, compiled in as is: depending on the whole
/// test-support crate would build testcontainers and every test helper in release mode.
/// (`rustfmt::skip`: the file belongs to the tests crate; formatting this crate must not touch it.)
#[path = "../../tests/src/tcp_proxy.rs"]
#[rustfmt::skip]
mod tcp_proxy;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;

use crate::environment::Environment;
use crate::figures::{GatewayFigures, Results};
use crate::plan::Plan;
use crate::raw::kafka_tools::KafkaTools;
use crate::scenarios::Context;
use crate::services::Binaries;

/// Benchmarks the services against the raw limits of this machine, measured in the same run.
#[derive(Debug, Parser)]
#[command(name = "bench")]
struct Args {
    /// A ~2 minute run with smaller samples (noisier; for checking the harness).
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
    /// The script whose `kafka-tool` subcommand runs Kafka's CLI classes.
    #[arg(long, default_value = "scripts/local-services.sh")]
    kafka_tool: PathBuf,
    /// Also write the table (Markdown) to this file.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Run only these phases (for profiling one of them); the raw argon2id rate always runs.
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Phase>,
    /// Rounds of the alternating drain-ratio phase: raw upserts, then a drain, this many times.
    #[arg(long, default_value_t = 5)]
    drain_rounds: usize,
}

/// The parts of a run, for `--only`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Phase {
    Raw,
    Gateway,
    Drain,
    Outage,
    Dlq,
    /// The drain ratio from raw limit and drain measured alternately (`--drain-rounds`).
    DrainRatio,
}

/// No run may take longer than this, whatever hangs.
const HARD_LIMIT: Duration = Duration::from_secs(25 * 60);

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
    let plan = if args.quick { Plan::quick() } else { Plan::full() };
    let machine_before = machine::describe();
    eprintln!("[bench] run {} ({}) on {machine_before}", env.run_id, if plan.quick { "quick" } else { "full" });
    let ctx = Context { env: &env, binaries: &binaries, plan: &plan };
    let tools = KafkaTools { script: args.kafka_tool.clone(), bootstrap: env.kafka_bootstrap.clone() };
    let started = Instant::now();
    let outcome = tokio::select! {
        results = measure(&ctx, &tools, &args.only, args.drain_rounds) => Ok(results),
        signal = interrupted() => Err(anyhow::anyhow!("interrupted by {signal}")),
        _ = tokio::time::sleep(HARD_LIMIT) => Err(anyhow::anyhow!("the run took longer than {HARD_LIMIT:?}")),
    };
    // Dropping the measurement (on interrupt) has killed its processes; now the data.
    env.cleanup().await;
    let results = outcome?;
    let report = figures::report(&results);
    let text = format!(
        "Run {} ({}), {:.0} s, on {machine_before}\nAfter the run: {}\n\n{}",
        env.run_id,
        if plan.quick { "--quick" } else { "full" },
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

async fn measure(ctx: &Context<'_>, tools: &KafkaTools, only: &[Phase], drain_rounds: usize) -> Results {
    let plan = ctx.plan;
    let run_id = &ctx.env.run_id;

    phase("raw: argon2id on every core");
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let (duration, singles) = (plan.argon2_duration, plan.single_hashes);
    let hash = tokio::task::spawn_blocking(move || raw::argon2::measure(threads, duration, singles))
        .await
        .expect("the hashing threads do not panic");

    let runs = |phase: Phase| only.is_empty() || only.contains(&phase);
    let batch_size = reliable_messaging::ConsumerSettings::new("", &[]).max_batch_size;
    let record_size = events::record_size(run_id);
    let (upsert, producer_perf, kafka_end_to_end) = if runs(Phase::Raw) {
        phase("raw: batched and row-by-row upserts");
        let upsert = timed("raw upserts", Duration::from_secs(300), async {
            let db = ctx.env.fresh_database("raw").await?;
            raw::database::measure(&db, run_id, batch_size, plan.raw_batched_rows, plan.raw_single_rows).await
        })
        .await;
        phase("raw: Kafka ProducerPerformance and EndToEndLatency");
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
        (upsert, producer_perf, kafka_end_to_end)
    } else {
        (skipped(), skipped(), skipped())
    };

    let gateway = if runs(Phase::Gateway) {
        phase("gateway: start, saturation, 50% open loop, end to end");
        timed("gateway", Duration::from_secs(600), measure_gateway(ctx)).await
    } else {
        skipped()
    };

    let (drain, single) = if runs(Phase::Drain) {
        phase("registration-service: drain a pre-filled topic (batched)");
        let drain = timed(
            "batched drain",
            Duration::from_secs(300),
            scenarios::drain::run(ctx, "drain", plan.drain_messages, None, false),
        )
        .await;
        phase("registration-service: drain a pre-filled topic (BATCH_SIZE=1)");
        let single = timed(
            "row-by-row drain",
            Duration::from_secs(300),
            scenarios::drain::run(ctx, "drain-single", plan.single_drain_messages, Some(1), false),
        )
        .await;
        (drain, single)
    } else {
        (skipped(), skipped())
    };
    let (proxied_drain, outage) = if runs(Phase::Outage) {
        phase("registration-service: drain through the TCP proxy (the outage's baseline)");
        let proxied = timed(
            "drain through the proxy",
            Duration::from_secs(300),
            scenarios::drain::run(ctx, "drain-proxied", plan.outage_messages, None, true),
        )
        .await;
        phase("registration-service: drain after a database outage");
        let outage = timed("outage", Duration::from_secs(300), scenarios::outage::run(ctx)).await;
        (proxied, outage)
    } else {
        (skipped(), skipped())
    };
    let drain_ratio = if runs(Phase::DrainRatio) && drain_rounds > 0 {
        phase("registration-service drain and raw upserts, alternately");
        timed(
            "alternating drain ratio",
            Duration::from_secs(120 * drain_rounds as u64),
            scenarios::alternating::run(ctx, drain_rounds),
        )
        .await
    } else {
        skipped()
    };
    let dlq = if runs(Phase::Dlq) {
        phase("dlq-worker: re-send punctuality with 10,000 waiting");
        timed("dlq", Duration::from_secs(300), scenarios::dlq::run(ctx)).await
    } else {
        skipped()
    };

    Results {
        hash,
        upsert,
        producer_perf,
        kafka_end_to_end,
        record_size,
        gateway,
        drain,
        single,
        proxied_drain,
        outage,
        dlq,
        drain_ratio,
        brokers: ctx.env.brokers,
    }
}

async fn measure_gateway(ctx: &Context<'_>) -> anyhow::Result<GatewayFigures> {
    let mut gw = scenarios::gateway::start(ctx).await?;
    let max = scenarios::gateway::max_rate(ctx, &mut gw).await;
    let (half, end_to_end) = match &max {
        Ok(m) => {
            let rate = m.accepted_per_sec;
            let half = scenarios::gateway::half_load(ctx, &mut gw, rate).await;
            phase("end to end: gateway + registration-service at 50%");
            let e2e = scenarios::end_to_end::run(ctx, &mut gw, rate).await;
            (half, e2e)
        }
        Err(e) => (Err(anyhow::anyhow!("no maximum rate: {e:#}")), Err(anyhow::anyhow!("no maximum rate: {e:#}"))),
    };
    let figures = GatewayFigures { ready_after: gw.ready_after, idle_rss_mib: gw.idle_rss_mib, max, half, end_to_end };
    gw.service.stop().await;
    Ok(figures)
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

//! What one message costs the registration-service's consumer in CPU instructions, counted by
//! valgrind's callgrind: the same for the same binary and input however busy the machine is,
//! so unlike the wall-clock ratios it can hold a budget that fails the run.
//!
//! Only the consumer's own work is counted: callgrind collects while a thread is inside
//! `ReliableConsumer::run` (its stages, the handler, the librdkafka calls it makes) or a batch's
//! preparation (the handler's statements), not the broker threads of librdkafka, the HTTP
//! server, or the start-up. Two drains of different sizes are counted and the figure is their slope, so what
//! every drain pays once (joining the group, the first fetch, the empty polls before the stop)
//! cancels out.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _};

use super::{poll_until, registration_service_env, settled, Context};
use crate::events;
use crate::services::Service;

/// Where callgrind counts: the consumer's run loop and everything it calls, and the batch's
/// preparation (the handler's statements), which runs on a blocking thread of its own.
/// Callgrind *toggles* collection on entering and leaving a matching function, so a pattern
/// must not also match a function nested inside it (the run loop's inner closures would
/// switch counting off again): hence exact names, not `*run*`.
const COLLECT_INSIDE: [&str; 2] = [
    "reliable_messaging::consumer::ReliableConsumer<*>::run::{{closure}}",
    "reliable_messaging::consumer::batch::Batch::prepare",
];

/// Under callgrind the service runs ~50 times slower: start-up and the drain get room for it.
const READY_UNDER_VALGRIND: Duration = Duration::from_secs(180);
const STOP_UNDER_VALGRIND: Duration = Duration::from_secs(60);
const DRAIN_UNDER_VALGRIND: Duration = Duration::from_secs(600);

pub struct InstructionCost {
    /// Messages in the small and the large drain.
    pub messages: (usize, usize),
    /// Instructions counted in each.
    pub instructions: (u64, u64),
}

impl InstructionCost {
    /// The slope: instructions of one more message.
    pub fn per_message(&self) -> f64 {
        let (small, large) = self.messages;
        let (a, b) = self.instructions;
        (b as f64 - a as f64) / (large - small) as f64
    }
}

pub async fn measure(ctx: &Context<'_>) -> anyhow::Result<InstructionCost> {
    ensure_valgrind()?;
    let (small, large) = ctx.plan.cost_messages;
    let a = count(ctx, "cost-small", small).await.context("the small drain")?;
    let b = count(ctx, "cost-large", large).await.context("the large drain")?;
    eprintln!("[bench]   {small} messages: {a} instructions; {large} messages: {b} instructions");
    Ok(InstructionCost { messages: (small, large), instructions: (a, b) })
}

fn ensure_valgrind() -> anyhow::Result<()> {
    match std::process::Command::new("valgrind").arg("--version").output() {
        Ok(out) if out.status.success() => Ok(()),
        _ => bail!("valgrind is not installed (Debian: apt-get install valgrind; scripts/bench.sh installs it)"),
    }
}

/// Instructions the consumer spends draining `messages` pre-filled sign-ups.
async fn count(ctx: &Context<'_>, name: &str, messages: usize) -> anyhow::Result<u64> {
    let topic = ctx.env.create_topic(name, 3).await?;
    ctx.env.adopt_topic(format!("{topic}-dlq"));
    let db = ctx.env.fresh_database(&name.replace('-', "_")).await?;
    let producer = events::producer(&ctx.env.kafka_bootstrap)?;
    events::produce_all(&producer, events::registrations(&ctx.env.run_id, &topic, messages)).await?;

    std::fs::create_dir_all(&ctx.binaries.log_dir)?;
    let out = ctx.binaries.log_dir.join(format!("callgrind-{topic}.out"));
    let wrapper = callgrind(&out);
    let env = registration_service_env(ctx, &topic, &format!("{topic}-group"), &db.url);
    let mut service =
        Service::spawn_under(&wrapper, ctx.binaries, "registration-service", "REGISTRATION_SERVICE_ADDR", &env)?;
    service.wait_ready(READY_UNDER_VALGRIND).await?;
    // Only the count matters here, not the rate: wait until every message is settled.
    let svc = &service;
    poll_until("every message settled under callgrind", DRAIN_UNDER_VALGRIND, Duration::from_millis(200), || async {
        Ok((settled(&svc.scrape().await?)? >= messages as f64).then_some(()))
    })
    .await?;
    let rows = db.count_users().await?;
    if rows != messages as i64 {
        bail!("{messages} events were drained but users has {rows} rows");
    }
    // Callgrind writes its counts when the program exits.
    if !service.stop_within(STOP_UNDER_VALGRIND).await {
        bail!("the service did not stop cleanly under callgrind, so its counts were not written");
    }
    let text = std::fs::read_to_string(&out).with_context(|| format!("reading {}", out.display()))?;
    total_instructions(&text).with_context(|| format!("no instruction total in {}", out.display()))
}

fn callgrind(out: &Path) -> Vec<String> {
    let out: PathBuf = out.to_path_buf();
    vec![
        "valgrind".to_owned(),
        "--tool=callgrind".to_owned(),
        "--collect-atstart=no".to_owned(),
        format!("--toggle-collect={}", COLLECT_INSIDE[0]),
        format!("--toggle-collect={}", COLLECT_INSIDE[1]),
        format!("--callgrind-out-file={}", out.display()),
    ]
}

/// The `summary:` (or `totals:`) line of a callgrind output file: instructions executed.
fn total_instructions(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix("summary:").or_else(|| line.strip_prefix("totals:")))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_total_of_a_callgrind_file() {
        let text = "version: 1\ncreator: callgrind-3.19.0\nevents: Ir\nfn=(1) main\n5 120\nsummary: 987654321\ntotals: 987654321\n";
        assert_eq!(total_instructions(text), Some(987_654_321));
        assert_eq!(total_instructions("events: Ir\n"), None);
    }

    #[test]
    fn the_figure_is_the_slope_of_the_two_drains() {
        let cost = InstructionCost { messages: (1_000, 3_000), instructions: (50_000_000, 90_000_000) };
        assert_eq!(cost.per_message(), 20_000.0);
    }
}

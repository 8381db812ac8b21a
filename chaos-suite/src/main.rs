//! `chaos`: runs the chaos and bad-input scenarios against the real services (separate OS
//! processes, real Kafka, real MariaDB), checks the ledger after each, prints a table and
//! exits non-zero on any violation.
//!
//! ```text
//! scripts/chaos.sh              # the long suite (many kills)
//! scripts/chaos.sh --short      # what CI runs
//! scripts/chaos.sh --scenario db-outage-10s --kills 5
//! scripts/chaos.sh --only registration-kills --only dlq-worker-kills   # exact names
//! scripts/chaos.sh --replicated  # on the local three-broker cluster (replicated.rs)
//! target/debug/chaos --alerts    # the shipped alert rules on a real Prometheus (alerts/)
//! ```
//!
//! Scenarios restart the shared broker: run the suite on its own, not beside other tests.

mod alerts;
mod bad_input;
mod idempotency;
mod load;
mod replicated;
mod report;
mod scenarios;

use std::time::Instant;

use clap::Parser;

use crate::report::Verdict;

#[derive(Parser, Debug, Clone)]
#[command(about = "Chaos and bad-input suite with a ledger; exits non-zero on any violation")]
pub struct Options {
    /// A quick pass over every scenario (CI); default is the long run.
    #[arg(long)]
    pub short: bool,
    /// SIGKILLs per kill scenario (default: 3 short, 25 long).
    #[arg(long)]
    pub kills: Option<u32>,
    /// Sign-ups per second of the background load.
    #[arg(long, default_value_t = 40)]
    pub rate: u32,
    /// The replicated-cluster scenarios instead (broker kills, partitions, too few replicas) on
    /// the local three-broker cluster: `scripts/chaos.sh --replicated` starts it.
    #[arg(long)]
    pub replicated: bool,
    /// With --replicated: also restart the machine's MariaDB server mid-batch (disrupts every
    /// other user of that server for a few seconds).
    #[arg(long)]
    pub restart_database: bool,
    /// The alert scenario instead: the shipped Prometheus rules (time-compressed) on a real
    /// Prometheus and Alertmanager while the database, the consumer and the broker fail.
    #[arg(long, conflicts_with = "replicated")]
    pub alerts: bool,
    /// Run only the scenarios whose name contains this.
    #[arg(long)]
    pub scenario: Option<String>,
    /// Run only the scenario with exactly this name (repeatable), e.g. `--only registration-kills`.
    #[arg(long = "only", value_name = "NAME")]
    pub only: Vec<String>,
}

impl Options {
    pub fn kills(&self) -> u32 {
        self.kills.unwrap_or(if self.short { 3 } else { 25 })
    }
}

fn scenario_list(options: &Options) -> Vec<scenarios::Scenario> {
    if options.alerts {
        alerts::all()
    } else if options.replicated {
        replicated::all(options)
    } else {
        scenarios::all()
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let options = Options::parse();
    let started = Instant::now();
    let mut results = Vec::new();
    let known: Vec<&str> = scenario_list(&options).iter().map(|s| s.name).collect();
    if let Some(unknown) = options.only.iter().find(|n| !known.contains(&n.as_str())) {
        eprintln!("no scenario named {unknown:?}; known: {}", known.join(", "));
        return std::process::ExitCode::FAILURE;
    }
    for scenario in scenario_list(&options) {
        if options.scenario.as_deref().is_some_and(|s| !scenario.name.contains(s)) {
            continue;
        }
        if !options.only.is_empty() && !options.only.iter().any(|n| n == scenario.name) {
            continue;
        }
        eprintln!("=== {} — {}", scenario.name, scenario.what);
        let t = Instant::now();
        let mut result = (scenario.run)(options.clone()).await;
        result.seconds = t.elapsed().as_secs_f64();
        eprintln!("    {}: {}", result.verdict, result.summary());
        results.push(result);
    }
    println!("{}", report::table(&results));
    let failed = results.iter().filter(|r| r.verdict == Verdict::Fail).count();
    println!("chaos suite finished in {:.0} s", started.elapsed().as_secs_f64());
    println!("chaos: {} passed, {} failed", results.len() - failed, failed);
    if failed == 0 && !results.is_empty() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}

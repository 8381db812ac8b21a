//! The command line: `dlq-worker` runs the worker, `dlq-worker parked ...` operates the parking
//! lot (list, show, redrive, discard) against the same database and broker.

use std::process::ExitCode;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use reliable_messaging::parking::{
    DiscardOutcome, ParkedFilter, ParkedState, ParkedSummary, ParkingLot, Rate, RedriveOutcome, Redriver,
};

use reliable_messaging::service;

use crate::configuration::{Settings, WorkerArgs, DEFAULTS};
use crate::startup::{connect, redrive_producer};

#[derive(Debug, Parser)]
#[command(
    name = "dlq-worker",
    version,
    about = "Re-sends dead-lettered messages to their topic after a backoff and parks those that must not be retried.",
    long_about = "Without a subcommand, runs the worker. `parked ...` inspects and acts on the parking lot, \
                  with the same database and broker settings (each variable below, or its flag before the \
                  subcommand); it logs to stderr, at warn unless RUST_LOG says otherwise, and exports no traces."
)]
pub struct Cli {
    #[command(flatten)]
    pub worker: WorkerArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

impl Cli {
    /// The command, with the worker's name, address variable and defaults.
    pub fn command() -> clap::Command {
        service::command::<Cli>(&DEFAULTS)
    }

    /// Parses `args` (the binary's name first) and the environment; the error names the
    /// variable at fault (`--help` is an error too, which `clap::Error::exit` prints).
    pub fn parse_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        service::parse_from(&DEFAULTS, args)
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Inspect, redrive or discard parked messages.
    #[command(subcommand)]
    Parked(ParkedCommand),
}

#[derive(Debug, Subcommand)]
pub enum ParkedCommand {
    /// List parked messages, oldest first.
    List {
        #[command(flatten)]
        filter: FilterArgs,
        /// parked, redriven or discarded (default: all).
        #[arg(long)]
        state: Option<ParkedState>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one parked message whole (headers, payload, audit trail) as JSON.
    Show { id: u64 },
    /// Re-publish parked messages to their original topic with a fresh retry budget.
    Redrive {
        /// Parked message ids; or use the filter options.
        ids: Vec<u64>,
        #[command(flatten)]
        filter: FilterArgs,
        /// Redrive every parked message (when no id and no filter is given).
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        who: ActorArgs,
        /// Why, for the audit trail.
        #[arg(long)]
        reason: Option<String>,
        /// At most this many publishes per second (50/s, 600/m, ...).
        #[arg(long, default_value = "50/s")]
        rate: Rate,
    },
    /// Mark parked messages discarded (never deleted), with a reason for the audit trail.
    Discard {
        #[arg(required = true)]
        ids: Vec<u64>,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        who: ActorArgs,
    },
}

#[derive(Debug, Clone, Default, Args)]
pub struct FilterArgs {
    /// Original topic.
    #[arg(long)]
    pub topic: Option<String>,
    /// Kind of the last failure: transient, permanent or unknown.
    #[arg(long)]
    pub error_kind: Option<String>,
    /// Why it was parked: permanent, retries_exhausted, poison, missing_topic.
    #[arg(long)]
    pub park_reason: Option<String>,
    /// Parked at or after this RFC 3339 time.
    #[arg(long, value_parser = parse_time)]
    pub since: Option<DateTime<Utc>>,
}

impl FilterArgs {
    fn is_empty(&self) -> bool {
        self.topic.is_none() && self.error_kind.is_none() && self.park_reason.is_none() && self.since.is_none()
    }

    fn to_filter(&self, state: Option<ParkedState>, limit: Option<u32>) -> ParkedFilter {
        ParkedFilter {
            source_topic: self.topic.clone(),
            error_kind: self.error_kind.clone(),
            reason: self.park_reason.clone(),
            since: self.since,
            state,
            limit,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct ActorArgs {
    /// Who acts, for the audit trail (default: $USER).
    #[arg(long, env = "USER", default_value = "unknown")]
    pub actor: String,
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)).map_err(|e| format!("not an RFC 3339 time: {e}"))
}

/// Most messages one filtered redrive touches.
const MAX_FILTERED_REDRIVE: u32 = 10_000;

/// Runs a `parked` subcommand; prints results on stdout. Exit code 1 when any item failed.
pub async fn run(command: ParkedCommand, settings: Settings) -> anyhow::Result<ExitCode> {
    let pool = connect(&settings).await?;
    let lot = ParkingLot::new(pool);
    let mut failed = false;
    match command {
        ParkedCommand::List { filter, state, limit, json } => {
            let items = lot.list(&filter.to_filter(state, Some(limit))).await?;
            if json {
                for item in &items {
                    println!("{}", serde_json::to_string(item)?);
                }
            } else {
                print_table(&items);
            }
        }
        ParkedCommand::Show { id } => {
            let message = lot.get(id).await?.with_context(|| format!("parked message {id} does not exist"))?;
            let mut body = message.to_json();
            body["audit"] = serde_json::to_value(lot.audit_trail(id).await?)?;
            println!("{}", serde_json::to_string_pretty(&body)?);
        }
        ParkedCommand::Redrive { ids, filter, all, who, reason, rate } => {
            let redriver = Redriver::new(lot, redrive_producer(&settings)?, settings.metadata_format);
            let results = match (ids.is_empty(), filter.is_empty() && !all) {
                (false, true) => redriver.redrive_many(&ids, &who.actor, reason.as_deref(), rate).await,
                (true, false) => {
                    let filter = filter.to_filter(None, Some(MAX_FILTERED_REDRIVE));
                    redriver.redrive_matching(&filter, &who.actor, reason.as_deref(), rate).await?
                }
                (true, true) => {
                    anyhow::bail!("give ids, a filter (--topic, --error-kind, --park-reason, --since) or --all")
                }
                (false, false) => anyhow::bail!("give either ids or a filter, not both"),
            };
            for (id, result) in results {
                match result {
                    Ok(RedriveOutcome::Redriven { topic, partition, offset, .. }) => {
                        println!("{id}\tredriven\t{topic}/{partition}@{offset}")
                    }
                    Ok(RedriveOutcome::NotParked { state, .. }) => println!("{id}\tskipped\talready {state}"),
                    Err(e) => {
                        failed = true;
                        println!("{id}\tfailed\t{e}");
                    }
                }
            }
        }
        ParkedCommand::Discard { ids, reason, who } => {
            if reason.trim().is_empty() {
                anyhow::bail!("a discard needs a --reason");
            }
            let mut seen = std::collections::HashSet::new();
            for id in ids.into_iter().filter(|id| seen.insert(*id)) {
                match lot.discard(id, &who.actor, &reason).await {
                    Ok(DiscardOutcome::Discarded) => println!("{id}\tdiscarded"),
                    Ok(DiscardOutcome::NotParked(state)) => println!("{id}\tskipped\talready {state}"),
                    Err(e) => {
                        failed = true;
                        println!("{id}\tfailed\t{e}");
                    }
                }
            }
        }
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

fn print_table(items: &[ParkedSummary]) {
    println!(
        "{:>8}  {:<10}  {:<24}  {:<17}  {:<9}  {:>7}  {:<24}  ERROR",
        "ID", "STATE", "TOPIC", "REASON", "KIND", "RETRIES", "PARKED AT"
    );
    for i in items {
        let error = i.error_message.as_deref().unwrap_or("").replace('\n', " ");
        println!(
            "{:>8}  {:<10}  {:<24}  {:<17}  {:<9}  {:>7}  {:<24}  {}",
            i.id,
            i.state.as_str(),
            i.source_topic,
            i.reason,
            i.error_kind,
            i.retry_count,
            reliable_messaging::message::retry_metadata::rfc3339(i.parked_at),
            error.chars().take(120).collect::<String>()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("dlq-worker").chain(args.iter().copied()))
    }

    #[test]
    fn no_subcommand_runs_the_worker() {
        assert!(parse(&[]).unwrap().command.is_none());
    }

    #[test]
    fn list_takes_filters() {
        let cli =
            parse(&["parked", "list", "--topic", "orders", "--since", "2026-11-26T10:00:00Z", "--state", "parked"])
                .unwrap();
        match cli.command {
            Some(Command::Parked(ParkedCommand::List { filter, state, .. })) => {
                assert_eq!(filter.topic.as_deref(), Some("orders"));
                assert!(filter.since.is_some());
                assert_eq!(state, Some(ParkedState::Parked));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(parse(&["parked", "list", "--since", "yesterday"]).is_err());
    }

    #[test]
    fn redrive_takes_ids_actor_and_rate() {
        let cli = parse(&["parked", "redrive", "3", "4", "--actor", "alice", "--rate", "10/s"]).unwrap();
        match cli.command {
            Some(Command::Parked(ParkedCommand::Redrive { ids, who, rate, .. })) => {
                assert_eq!(ids, vec![3, 4]);
                assert_eq!(who.actor, "alice");
                assert_eq!(rate, "10/s".parse().unwrap());
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn discard_requires_a_reason_and_ids() {
        assert!(parse(&["parked", "discard", "3"]).is_err());
        assert!(parse(&["parked", "discard", "--reason", "junk"]).is_err());
        assert!(parse(&["parked", "discard", "3", "--reason", "junk"]).is_ok());
    }
}

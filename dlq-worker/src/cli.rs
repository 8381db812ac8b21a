//! The command line: `dlq-worker` runs the worker, `dlq-worker parked ...` operates the parking
//! lot (list, show, redrive, discard) against the same database and broker.

use std::process::ExitCode;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use reliable_messaging::parking::{
    CanaryPlan, OutcomeJudge, ParkedFilter, ParkedState, ParkedSummary, ParkingLot, Rate, Redriver, StatusJudge,
};

use reliable_messaging::service;

use crate::canary_judge::StatusUrlJudge;
use crate::configuration::{Settings, WorkerArgs, DEFAULTS};
use crate::operations::{ItemResult, Operator, RedriveRequest, Selection};
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
// Parsed once per process: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Inspect, redrive or discard parked messages.
    #[command(subcommand)]
    Parked(ParkedCommand),
    /// Erase every account of an address (audited; published on ERASURE_TOPIC with acks=all).
    Erase {
        /// The address, in any spelling; its canonical form is erased.
        email: String,
        /// Why, for the audit row (1 to 200 characters).
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        who: ActorArgs,
    },
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
    /// Parked messages grouped by failure signature (topic, error kind, normalised message).
    Groups {
        #[command(flatten)]
        filter: FilterArgs,
        /// parked (default), redriven or discarded.
        #[arg(long, default_value = "parked")]
        state: ParkedState,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
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
        /// Redrive the first N as a canary, wait for their outcomes, go on only if all succeeded
        /// (needs CANARY_STATUS_URL).
        #[arg(long, value_name = "N")]
        canary: Option<usize>,
        /// After the canary, stop once more than this many redriven messages failed again.
        #[arg(long, default_value_t = 0)]
        max_failures: usize,
        /// Seconds to wait for the canary's outcomes.
        #[arg(long, default_value_t = 60)]
        canary_wait: u64,
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
    /// Parked before this RFC 3339 time.
    #[arg(long, value_parser = parse_time)]
    pub until: Option<DateTime<Utc>>,
    /// A failure signature (see `parked groups`).
    #[arg(long)]
    pub signature: Option<String>,
    /// The request id (`x-request-id`).
    #[arg(long)]
    pub request_id: Option<uuid::Uuid>,
    /// The record key.
    #[arg(long)]
    pub key: Option<String>,
}

impl FilterArgs {
    fn is_empty(&self) -> bool {
        self.topic.is_none()
            && self.error_kind.is_none()
            && self.park_reason.is_none()
            && self.since.is_none()
            && self.until.is_none()
            && self.signature.is_none()
            && self.request_id.is_none()
            && self.key.is_none()
    }

    fn to_filter(&self, state: Option<ParkedState>, limit: Option<u32>) -> ParkedFilter {
        ParkedFilter {
            source_topic: self.topic.clone(),
            error_kind: self.error_kind.clone(),
            reason: self.park_reason.clone(),
            since: self.since,
            until: self.until,
            state,
            limit,
            request_id: self.request_id,
            key: self.key.clone(),
            signature: self.signature.clone(),
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
        ParkedCommand::Groups { filter, state, json } => {
            let groups = lot.signature_groups(&filter.to_filter(Some(state), None)).await?;
            for g in &groups {
                if json {
                    println!("{}", serde_json::to_string(g)?);
                } else {
                    println!(
                        "{}\t{}\t{}\t{}\t{} .. {}\t{}\t{}",
                        g.signature,
                        g.count,
                        g.source_topic,
                        g.error_kind,
                        reliable_messaging::message::retry_metadata::rfc3339(g.first_seen),
                        reliable_messaging::message::retry_metadata::rfc3339(g.last_seen),
                        if g.failed_by.is_empty() { "-".to_owned() } else { g.failed_by.join(",") },
                        g.pattern
                    );
                }
            }
        }
        ParkedCommand::Redrive { ids, filter, all, who, reason, rate, canary, max_failures, canary_wait } => {
            let selection = match (ids.is_empty(), filter.is_empty() && !all) {
                (false, true) => Selection::Ids(ids),
                (true, false) => Selection::Matching(filter.to_filter(None, None)),
                (true, true) => anyhow::bail!(
                    "give ids, a filter (--topic, --error-kind, --park-reason, --since, --until, --signature, ...) or --all"
                ),
                (false, false) => anyhow::bail!("give either ids or a filter, not both"),
            };
            let canary = canary.map(|n| CanaryPlan {
                canary: n.max(1),
                max_failures,
                wait: std::time::Duration::from_secs(canary_wait.max(1)),
                ..CanaryPlan::default()
            });
            let operator = operator(lot, &settings)?;
            let request = RedriveRequest { selection, actor: who.actor, reason, rate, canary };
            let report = operator.redrive(request).await?;
            failed = print_results(&report.results);
            if let Some(why) = report.stopped {
                failed = true;
                println!("stopped: {why}");
            }
        }
        ParkedCommand::Discard { ids, reason, who } => {
            let operator = operator(lot, &settings)?;
            failed = print_results(&operator.discard(&ids, &who.actor, &reason).await?);
        }
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// Runs `erase`: prints the accepted erasure as JSON on stdout.
pub async fn erase(email: &str, reason: &str, actor: &str, settings: Settings) -> anyhow::Result<ExitCode> {
    let erasures = crate::erasure::Erasures {
        pool: connect(&settings).await?,
        producer: redrive_producer(&settings)?,
        topic: settings.operator.erasure_topic.clone(),
    };
    let accepted = erasures.erase(email, reason, actor).await?;
    println!("{}", serde_json::to_string(&accepted)?);
    Ok(ExitCode::SUCCESS)
}

/// The operations the CLI shares with the admin API and the console.
fn operator(lot: ParkingLot, settings: &Settings) -> anyhow::Result<Operator> {
    let judge: Option<std::sync::Arc<dyn OutcomeJudge>> = match &settings.operator.canary_status_url {
        Some(url) => Some(std::sync::Arc::new(StatusUrlJudge::new(StatusJudge::new(lot.pool().clone()), url.clone())?)),
        None => None,
    };
    Ok(Operator {
        redriver: Redriver::new(lot.clone(), redrive_producer(settings)?, settings.metadata_format),
        parking: lot,
        judge,
        default_rate: settings.redrive_rate,
        metrics: Default::default(),
    })
}

/// One line per item: `id<TAB>outcome<TAB>detail`; true when any failed.
fn print_results(results: &[ItemResult]) -> bool {
    for r in results {
        let detail = match (&r.topic, r.partition, r.offset) {
            (Some(topic), Some(partition), Some(offset)) => format!("{topic}/{partition}@{offset}"),
            _ => r.detail.clone().unwrap_or_default(),
        };
        // The CLI's words, as before the operations were shared: skipped, failed.
        let (outcome, detail) = match r.outcome {
            "not_parked" => ("skipped", detail),
            "not_found" => ("failed", format!("parked message {} does not exist", r.id)),
            other => (other, detail),
        };
        match &r.after {
            Some(after) => {
                println!("{}\t{outcome}\t{detail}\t{}", r.id, serde_json::to_string(after).unwrap_or_default())
            }
            None if detail.is_empty() => println!("{}\t{outcome}", r.id),
            None => println!("{}\t{outcome}\t{detail}", r.id),
        }
    }
    results.iter().any(ItemResult::is_failure)
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
        let cli = parse(&[
            "parked",
            "list",
            "--topic",
            "orders",
            "--since",
            "2026-11-26T10:00:00Z",
            "--until",
            "2026-11-26T11:00:00Z",
            "--state",
            "parked",
        ])
        .unwrap();
        match cli.command {
            Some(Command::Parked(ParkedCommand::List { filter, state, .. })) => {
                assert_eq!(filter.topic.as_deref(), Some("orders"));
                assert!(filter.since.is_some());
                assert_eq!(filter.until.map(|t| t.to_rfc3339()).as_deref(), Some("2026-11-26T11:00:00+00:00"));
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

//! The scenarios. Each builds its own cluster (own topic, own database), injects its faults
//! under load, lets the system settle and holds it to the ledger. This file lists them and holds
//! the steps they share; the scenarios are grouped by fault: process kills ([`kills`]), a
//! dependency taken away ([`outages`]), instances added, removed and stopped ([`instances`]).

mod instances;
mod kills;
mod outages;

use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use rand::Rng;

use crate::bad_input;
use crate::idempotency;
use crate::load::{Load, LoadStats};
use crate::report::ScenarioResult;
use crate::Options;
use instances::{graceful_shutdown, three_instances};
use integration_tests::cluster::Cluster;
use kills::{dlq_worker_kills, negative_control, registration_kills};
use outages::{broker_restart, db_outage_10s, db_outage_any_length, row_lock_parks_one};

pub struct Scenario {
    pub name: &'static str,
    pub what: &'static str,
    pub run: fn(Options) -> BoxFuture<'static, ScenarioResult>,
}

pub fn all() -> Vec<Scenario> {
    vec![
        Scenario { name: "registration-kills", what: "SIGKILL of the registration-service under load, each on polled records it could not store yet: at a random point of the stream and right after a restart", run: |o| registration_kills(o).boxed() },
        Scenario { name: "negative-control-auto-commit", what: "the same kills with Kafka auto-commit, each after it committed records not stored: the ledger MUST report loss", run: |o| negative_control(o).boxed() },
        Scenario { name: "dlq-worker-kills", what: "SIGKILL of the dlq-worker while messages are scheduled for retry", run: |o| dlq_worker_kills(o).boxed() },
        Scenario { name: "db-outage-10s", what: "database unreachable for 10 s under load (the article's scenario): everything stored", run: |o| db_outage_10s(o).boxed() },
        Scenario { name: "db-outage-any-length", what: "database unreachable far longer than the whole retry budget (CHAOS_OUTAGE_SECS, default 20 short / 60 long): consumers pause, 0 dead-lettered, 0 parked, nothing lost", run: |o| db_outage_any_length(o).boxed() },
        Scenario { name: "row-lock-parks-one", what: "one sign-up's row locked by another transaction throughout: that one is parked after exactly 5 retries, everything around it stored", run: |o| row_lock_parks_one(o).boxed() },
        Scenario { name: "broker-restart", what: "Kafka restarted under load: 503 while down, never a 202 the broker did not take", run: |o| broker_restart(o).boxed() },
        Scenario { name: "three-instances", what: "three registration-service instances: one killed, one added, under load", run: |o| three_instances(o).boxed() },
        Scenario { name: "graceful-shutdown", what: "SIGTERM under load: clean exit, no stored-but-uncommitted gap larger than one batch", run: |o| graceful_shutdown(o).boxed() },
        Scenario { name: "idempotency-key-reuse", what: "Idempotency-Keys reused with another body across a gateway restart and two instances: 409, same id for retries, every row as sent", run: |o| idempotency::key_reuse(o).boxed() },
        Scenario { name: "negative-control-idempotency-key-reuse", what: "the old gateway's answer to a reused key (another body, same id, 202) replayed: the ledger MUST catch it", run: |o| idempotency::key_reuse_negative_control(o).boxed() },
        Scenario { name: "bad-input-http", what: "malformed and schema-fuzzed HTTP requests: 4xx problem documents or 202, never 5xx or a dropped connection", run: |o| bad_input::http(o).boxed() },
        Scenario { name: "bad-input-kafka", what: "poison records on the topic and on its DLQ: each parked with a readable reason, good records keep flowing", run: |o| bad_input::kafka(o).boxed() },
    ]
}

/// How long the system may take to settle after the faults stop.
const SETTLE: Duration = Duration::from_secs(150);

async fn pause(ms: std::ops::Range<u64>) {
    let ms = rand::thread_rng().gen_range(ms);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// Starts the background load and lets it run a moment before faults are injected.
async fn start_load(cluster: &Cluster, rate: u32) -> Load {
    let load = Load::start(&cluster.gateway_url, rate);
    tokio::time::sleep(Duration::from_secs(2)).await;
    load
}

/// Lets the load run a moment after the faults, then stops it and waits for its retries.
async fn stop_load(load: Load) -> LoadStats {
    tokio::time::sleep(Duration::from_secs(2)).await;
    load.stop().await
}

/// Turns the load's outcome and the ledger into a scenario result with the common checks.
async fn conclude(
    name: &'static str,
    cluster: Cluster,
    stats: LoadStats,
    faults: u32,
    settle: Duration,
) -> (ScenarioResult, Cluster) {
    let ledger = cluster.settle(&stats.accepted, settle).await;
    let mut result = ScenarioResult::new(name, ledger, faults, stats.refused);
    result.require(
        stats.unexpected.is_empty(),
        format!("unexpected answers to valid sign-ups: {:?}", stats.unexpected.iter().take(3).collect::<Vec<_>>()),
    );
    result.require(stats.gave_up == 0, format!("{} sign-ups never accepted", stats.gave_up));
    (result, cluster)
}

pub(crate) async fn finish(mut result: ScenarioResult, cluster: Cluster) -> ScenarioResult {
    let unclean = cluster.stop().await;
    result.require(unclean.is_empty(), format!("did not exit cleanly on SIGTERM: {unclean:?}"));
    result
}

/// Adds `note` to the result's note without hiding why it failed.
fn add_note(result: &mut ScenarioResult, note: String) {
    if !result.note.is_empty() {
        result.note.push_str("; ");
    }
    result.note.push_str(&note);
}

/// Records that went through the DLQ (end offsets of the DLQ topic).
async fn dead_lettered(cluster: &Cluster) -> i64 {
    cluster.env.end_offsets(&reliable_messaging::dead_letter::dead_letter_topic(&cluster.topic)).values().sum()
}

/// Runs `scripts/local-services.sh <command>` (database and broker stops and starts).
pub(crate) async fn local_services(command: &str) {
    if let Err(e) = test_support::local_services::LocalServices::of_checkout().run(&[command]).await {
        panic!("{e}");
    }
}

//! The scenarios. Each builds its own cluster (own topic, own database), injects its faults
//! under load, lets the system settle and holds it to the ledger.

use std::collections::HashSet;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use rand::Rng;
use uuid::Uuid;

use crate::bad_input;
use integration_tests::cluster::{Cluster, ClusterConfig};
use crate::load::{Load, LoadStats};
use crate::report::ScenarioResult;
use crate::Options;

pub struct Scenario {
    pub name: &'static str,
    pub what: &'static str,
    pub run: fn(Options) -> BoxFuture<'static, ScenarioResult>,
}

pub fn all() -> Vec<Scenario> {
    vec![
        Scenario { name: "registration-kills", what: "SIGKILL of the registration-service under load: mid-batch, with the database stalled under a batch, and during the group rebalance after a restart", run: |o| registration_kills(o).boxed() },
        Scenario { name: "negative-control-auto-commit", what: "the same kills with Kafka auto-commit: the ledger MUST report loss", run: |o| negative_control(o).boxed() },
        Scenario { name: "dlq-worker-kills", what: "SIGKILL of the dlq-worker while messages are scheduled for retry", run: |o| dlq_worker_kills(o).boxed() },
        Scenario { name: "db-outage-10s", what: "database unreachable for 10 s under load (the article's scenario): everything stored", run: |o| db_outage_10s(o).boxed() },
        Scenario { name: "db-outage-beyond-retry-budget", what: "database unreachable longer than the whole retry budget: parked after exactly 5 retries, nothing lost", run: |o| db_outage_beyond_budget(o).boxed() },
        Scenario { name: "broker-restart", what: "Kafka restarted under load: 503 while down, never a 202 the broker did not take", run: |o| broker_restart(o).boxed() },
        Scenario { name: "three-instances", what: "three registration-service instances: one killed, one added, under load", run: |o| three_instances(o).boxed() },
        Scenario { name: "graceful-shutdown", what: "SIGTERM under load: clean exit, no stored-but-uncommitted gap larger than one batch", run: |o| graceful_shutdown(o).boxed() },
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
async fn conclude(name: &'static str, cluster: Cluster, stats: LoadStats, faults: u32, settle: Duration) -> (ScenarioResult, Cluster) {
    let ledger = cluster.settle(&stats.accepted, settle).await;
    let mut result = ScenarioResult::new(name, ledger, faults, stats.refused);
    result.require(stats.unexpected.is_empty(), format!("unexpected answers to valid sign-ups: {:?}", stats.unexpected.iter().take(3).collect::<Vec<_>>()));
    result.require(stats.gave_up == 0, format!("{} sign-ups never accepted", stats.gave_up));
    (result, cluster)
}

async fn finish(mut result: ScenarioResult, cluster: Cluster) -> ScenarioResult {
    let unclean = cluster.stop().await;
    result.require(unclean.is_empty(), format!("did not exit cleanly on SIGTERM: {unclean:?}"));
    result
}

/// The kill loop shared by the scenario and its negative control. Three kinds of kill, in
/// turn: at a random moment of processing; after the database stalled under a polled batch
/// (between poll and write); and right after a restart, while the group rebalances.
async fn kill_registration_repeatedly(cluster: &mut Cluster, kills: u32) -> u32 {
    let mut injected = 0;
    while injected < kills {
        // A restarted member gets partitions only after the killed one's session expires;
        // a kill before that would hit an idle process and prove nothing.
        cluster.wait_registration_assigned(0).await;
        match injected % 3 {
            0 => pause(300..2_000).await,
            1 => {
                // Inside the in-place retry window, after auto-commit's 100 ms interval.
                cluster.proxy.cut();
                tokio::time::sleep(Duration::from_millis(1_000)).await;
            }
            _ => {
                // Kill, restart, and kill again while the new member joins the group.
                cluster.kill_registration(0).await;
                cluster.restart_registration(0);
                injected += 1;
                pause(200..800).await;
            }
        }
        cluster.kill_registration(0).await;
        cluster.proxy.restore();
        cluster.restart_registration(0);
        injected += 1;
    }
    injected
}

async fn registration_kills(o: Options) -> ScenarioResult {
    let mut cluster = Cluster::start(ClusterConfig::default()).await;
    let kills = o.kills();
    let load = start_load(&cluster, o.rate).await;
    let faults = kill_registration_repeatedly(&mut cluster, kills).await;
    let stats = stop_load(load).await;
    let (mut result, cluster) = conclude("registration-kills", cluster, stats, faults, SETTLE).await;
    result.require_clean_ledger();
    finish(result, cluster).await
}

async fn negative_control(o: Options) -> ScenarioResult {
    let config = ClusterConfig { commit_policy: "unsafe-auto-commit", ..ClusterConfig::default() };
    let mut cluster = Cluster::start(config).await;
    // At least two kills so one lands with the database stalled under a polled batch.
    let kills = o.kills().max(2);
    let load = start_load(&cluster, o.rate).await;
    let faults = kill_registration_repeatedly(&mut cluster, kills).await;
    let stats = stop_load(load).await;
    let (mut result, cluster) = conclude("negative-control-auto-commit", cluster, stats, faults, Duration::from_secs(30)).await;
    let detected = !result.ledger.lost.is_empty();
    result.require(detected, "auto-commit lost nothing detectable: the ledger check proves nothing");
    if detected {
        result.note = format!("loss detected as it must be ({} lost)", result.ledger.lost.len());
    }
    finish(result, cluster).await
}

async fn dlq_worker_kills(o: Options) -> ScenarioResult {
    // No in-place retries and a short connection timeout: while the database is cut, every
    // batch goes to the DLQ at once, so the worker has plenty scheduled when it is killed.
    let config = ClusterConfig {
        extra_env: vec![("IN_PLACE_RETRIES", "0".into()), ("DATABASE_ACQUIRE_TIMEOUT_MS", "300".into())],
        ..ClusterConfig::default()
    };
    let mut cluster = Cluster::start(config).await;
    let kills = o.kills();
    let load = start_load(&cluster, o.rate).await;
    let faults = {
        let c = &mut cluster;
        // Fill the DLQ: the database goes away long enough for batches to be dead-lettered.
        c.proxy.cut();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let mut injected = 1;
        for k in 0..kills {
            pause(500..2_000).await;
            c.kill_dlq_worker().await;
            if k == kills / 2 {
                c.proxy.restore();
            }
            c.restart_dlq_worker();
            injected += 1;
        }
        c.proxy.restore();
        injected
    };
    let stats = stop_load(load).await;
    let (mut result, cluster) = conclude("dlq-worker-kills", cluster, stats, faults, SETTLE).await;
    result.require_clean_ledger();
    let dead_lettered = dead_lettered(&cluster).await;
    result.require(dead_lettered > 0, "nothing went through the DLQ, so the worker kills tested nothing");
    result.note = format!("{dead_lettered} records went through the DLQ");
    finish(result, cluster).await
}

async fn db_outage_10s(o: Options) -> ScenarioResult {
    let mut cluster = Cluster::start(ClusterConfig::default()).await;
    let load = start_load(&cluster, o.rate).await;
    let faults = {
        let c = &mut cluster;
        c.proxy.cut();
        tokio::time::sleep(Duration::from_secs(10)).await;
        c.proxy.restore();
        tokio::time::sleep(Duration::from_secs(3)).await;
        1
    };
    let stats = stop_load(load).await;
    let (mut result, cluster) = conclude("db-outage-10s", cluster, stats, faults, SETTLE).await;
    result.require_clean_ledger();
    result.require(result.ledger.parked == 0, format!("{} registrations parked: a 10 s outage must be bridged by retries", result.ledger.parked));
    finish(result, cluster).await
}

async fn db_outage_beyond_budget(o: Options) -> ScenarioResult {
    // A short budget: no in-place retries, a 300 ms connection timeout and 300 ms between DLQ
    // rounds make the six attempts take about 4 s, well inside the 12 s outage.
    let config = ClusterConfig {
        retry_backoff: ("constant", 300),
        extra_env: vec![("IN_PLACE_RETRIES", "0".into()), ("DATABASE_ACQUIRE_TIMEOUT_MS", "300".into())],
        ..ClusterConfig::default()
    };
    let mut cluster = Cluster::start(config).await;
    let load = start_load(&cluster, o.rate).await;
    let faults = {
        let c = &mut cluster;
        c.proxy.cut();
        tokio::time::sleep(Duration::from_secs(12)).await;
        c.proxy.restore();
        1
    };
    let stats = stop_load(load).await;
    let (mut result, cluster) = conclude("db-outage-beyond-retry-budget", cluster, stats, faults, SETTLE).await;
    result.require_clean_ledger();
    result.require(result.ledger.parked > 0, "nothing was parked although the outage outlasted the retry budget");
    let wrong_counts: i64 = cluster
        .db
        .count("SELECT COUNT(*) FROM parked_messages WHERE error_kind = 'transient' AND retry_count <> 5")
        .await;
    result.require(wrong_counts == 0, format!("{wrong_counts} parked messages with a retry count other than 5"));
    finish(result, cluster).await
}

async fn broker_restart(o: Options) -> ScenarioResult {
    let mut cluster = Cluster::start(ClusterConfig::default()).await;
    let load = start_load(&cluster, o.rate).await;
    let faults = {
        let _c = &mut cluster;
        local_services("kafka-stop").await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        local_services("kafka-start").await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        1
    };
    let stats = stop_load(load).await;
    let (mut result, cluster) = conclude("broker-restart", cluster, stats, faults, SETTLE).await;
    result.require_clean_ledger();
    result.require(result.refused > 0, "the gateway never refused while the broker was down: the restart did not bite");
    finish(result, cluster).await
}

async fn three_instances(o: Options) -> ScenarioResult {
    let config = ClusterConfig { registration_instances: 3, ..ClusterConfig::default() };
    let mut cluster = Cluster::start(config).await;
    let load = start_load(&cluster, o.rate).await;
    let faults = {
        let c = &mut cluster;
        pause(1_000..3_000).await;
        c.kill_registration(0).await;
        pause(2_000..4_000).await;
        c.add_registration_instance();
        tokio::time::sleep(Duration::from_secs(8)).await;
        2
    };
    let stats = stop_load(load).await;
    let (mut result, cluster) = conclude("three-instances", cluster, stats, faults, SETTLE).await;
    result.require_clean_ledger();
    finish(result, cluster).await
}

async fn graceful_shutdown(o: Options) -> ScenarioResult {
    let config = ClusterConfig::default();
    let batch = i64::from(config.batch_size);
    let mut cluster = Cluster::start(config).await;
    let gap: i64;
    let clean_exit: bool;
    let load = start_load(&cluster, o.rate).await;
    let faults = {
        let c = &mut cluster;
        pause(1_000..3_000).await;
        clean_exit = c.terminate_registration(0).await;
        // Stored but not committed = records after the committed offsets already in `users`.
        let committed = c.env.committed_offsets("registration-service", &c.topic);
        let after = c.env.records_after(&c.topic, &committed).await;
        let stored: HashSet<Uuid> = c.db.user_rows_by_request().await.into_keys().collect();
        gap = after
            .iter()
            .filter_map(|d| d.header_str("x-request-id").and_then(|s| Uuid::parse_str(s).ok()))
            .filter(|id| stored.contains(id))
            .count() as i64;
        c.restart_registration(0);
        1
    };
    let stats = stop_load(load).await;
    let (mut result, cluster) = conclude("graceful-shutdown", cluster, stats, faults, SETTLE).await;
    result.require_clean_ledger();
    result.require(clean_exit, "SIGTERM did not end the registration-service cleanly");
    result.require(gap <= batch, format!("{gap} stored-but-uncommitted records after SIGTERM (batch is {batch})"));
    if result.note.is_empty() {
        result.note = format!("stored-but-uncommitted after SIGTERM: {gap}");
    }
    finish(result, cluster).await
}

/// Records that went through the DLQ (end offsets of the DLQ topic).
async fn dead_lettered(cluster: &Cluster) -> i64 {
    cluster.env.end_offsets(&reliable_messaging::dead_letter::dead_letter_topic(&cluster.topic)).values().sum()
}

/// Runs `scripts/local-services.sh <command>` (broker restarts).
async fn local_services(command: &str) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/local-services.sh");
    let status = tokio::process::Command::new("bash").arg(script).arg(command).status().await.expect("run local-services.sh");
    assert!(status.success(), "local-services.sh {command} failed");
}

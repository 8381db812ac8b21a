//! The scenarios. Each builds its own cluster (own topic, own database), injects its faults
//! under load, lets the system settle and holds it to the ledger.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use rand::Rng;
use uuid::Uuid;

use crate::bad_input;
use crate::idempotency;
use crate::load::{Load, LoadStats};
use crate::report::ScenarioResult;
use crate::Options;
use integration_tests::cluster::{Cluster, ClusterConfig};
use integration_tests::{metrics, wait};
use registration_events::REQUEST_ID_HEADER;
use reliable_messaging::dead_letter::dead_letter_topic;
use reliable_messaging::Delivery;

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

async fn finish(mut result: ScenarioResult, cluster: Cluster) -> ScenarioResult {
    let unclean = cluster.stop().await;
    result.require(unclean.is_empty(), format!("did not exit cleanly on SIGTERM: {unclean:?}"));
    result
}

/// The kill loop shared by the scenario and its negative control. Every kill is placed on
/// in-flight work (see [`kill_with_work_in_flight`]); two kinds in turn: at a random point of
/// the stream, and right after a restart, once the new incarnation holds work. Returns the
/// kills injected and why any of them did not land on in-flight work.
async fn kill_registration_repeatedly(cluster: &mut Cluster, kills: u32, auto_commit: bool) -> (u32, Vec<String>) {
    let mut injected = 0;
    let mut missed = Vec::new();
    while injected < kills {
        let right_after_restart = injected % 2 == 1;
        if !right_after_restart {
            pause(300..2_000).await;
        }
        if let Err(why) = kill_with_work_in_flight(cluster, auto_commit).await {
            missed.push(format!("kill {}: {why}", injected + 1));
        }
        injected += 1;
    }
    (injected, missed)
}

/// SIGKILL of registration-service instance 0 while it holds polled records without a durable
/// outcome, then restore and restart. The database is cut first; the kill waits until the
/// instance's `/metrics` shows records in flight, and with `auto_commit` also until the
/// broker has committed records that are not durable (what auto-commit loses). While the
/// database is cut, work becomes durable only through the DLQ, so an unchanged DLQ from
/// before the observation to after the kill proves the records were still in flight. `Err`
/// says why the kill did not land on such work.
async fn kill_with_work_in_flight(cluster: &mut Cluster, auto_commit: bool) -> Result<(), String> {
    // A restarted member gets partitions only after the killed one's session expires.
    cluster.wait_registration_assigned(0).await;
    let committed_at_cut = cluster.env.committed_offsets(&cluster.registration_group(), &cluster.topic);
    cluster.proxy.cut();
    let port = cluster.registration_port(0);
    let dead_lettered_before = dead_lettered(cluster).await;
    let held = wait::within(Duration::from_secs(30), || async {
        metrics::read(port, "registration_service_in_flight").await.is_some_and(|n| n > 0.0)
    })
    .await;
    let committed_unsafely = if held && auto_commit {
        let c: &Cluster = cluster;
        wait::within(Duration::from_secs(30), || async { committed_but_not_durable(c, &committed_at_cut).await > 0 })
            .await
    } else {
        true
    };
    cluster.kill_registration(0).await;
    let dead_lettered_after = dead_lettered(cluster).await;
    cluster.proxy.restore();
    cluster.restart_registration(0);
    if !held {
        return Err("the instance never held polled records it could not store".into());
    }
    if !committed_unsafely {
        return Err("auto-commit never committed a record that was not durable".into());
    }
    if dead_lettered_after != dead_lettered_before {
        return Err(format!("{} records reached the DLQ before the kill", dead_lettered_after - dead_lettered_before));
    }
    Ok(())
}

/// Records the group committed since `from` whose outcome is not durable: in no table and
/// not on the DLQ. A crash loses exactly these; only auto-commit can produce them.
async fn committed_but_not_durable(cluster: &Cluster, from: &HashMap<i32, i64>) -> usize {
    let committed = cluster.env.committed_offsets(&cluster.registration_group(), &cluster.topic);
    let candidates: Vec<Uuid> = cluster
        .env
        .records_after(&cluster.topic, from)
        .await
        .iter()
        .filter(|r| committed.get(&r.partition).is_some_and(|&next| r.offset < next))
        .filter_map(request_id)
        .collect();
    if candidates.is_empty() {
        return 0;
    }
    let mut durable: HashSet<Uuid> = cluster.db.user_rows_by_request().await.into_keys().collect();
    let settled: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT request_id FROM request_status WHERE status IN ('rejected', 'parked')")
            .fetch_all(&cluster.db.pool)
            .await
            .unwrap_or_default();
    durable.extend(settled.iter().filter_map(|b| Uuid::from_slice(b).ok()));
    let dlq = dead_letter_topic(&cluster.topic);
    let on_dlq: i64 = cluster.env.end_offsets(&dlq).values().sum();
    let on_dlq = cluster.env.read_topic(&dlq, usize::try_from(on_dlq).unwrap_or(0), Duration::from_secs(10)).await;
    durable.extend(on_dlq.iter().filter_map(request_id));
    candidates.iter().filter(|id| !durable.contains(id)).count()
}

fn request_id(record: &Delivery) -> Option<Uuid> {
    record.header_str(REQUEST_ID_HEADER).and_then(|s| Uuid::parse_str(s).ok())
}

async fn registration_kills(o: Options) -> ScenarioResult {
    let mut cluster = Cluster::start(ClusterConfig::default()).await;
    let kills = o.kills();
    let load = start_load(&cluster, o.rate).await;
    let (faults, missed) = kill_registration_repeatedly(&mut cluster, kills, false).await;
    let stats = stop_load(load).await;
    let (mut result, cluster) = conclude("registration-kills", cluster, stats, faults, SETTLE).await;
    result.require_clean_ledger();
    result.require(missed.is_empty(), format!("kills that hit no in-flight work prove nothing: {missed:?}"));
    finish(result, cluster).await
}

async fn negative_control(o: Options) -> ScenarioResult {
    let config = ClusterConfig { commit_policy: "unsafe-auto-commit", ..ClusterConfig::default() };
    let mut cluster = Cluster::start(config).await;
    // Every kill waits until auto-commit has committed records that are not durable, so each
    // one loses registrations; the ledger must see it.
    let kills = o.kills();
    let load = start_load(&cluster, o.rate).await;
    let (faults, missed) = kill_registration_repeatedly(&mut cluster, kills, true).await;
    let stats = stop_load(load).await;
    let (mut result, cluster) =
        conclude("negative-control-auto-commit", cluster, stats, faults, Duration::from_secs(30)).await;
    result.require(missed.is_empty(), format!("kills that could not lose anything prove nothing: {missed:?}"));
    let detected = !result.ledger.lost.is_empty();
    result.require(detected, "auto-commit lost nothing detectable: the ledger check proves nothing");
    if detected {
        let lost = result.ledger.lost.len();
        add_note(&mut result, format!("loss detected as it must be ({lost} lost)"));
    }
    finish(result, cluster).await
}

async fn dlq_worker_kills(o: Options) -> ScenarioResult {
    // No in-place retries and a short connection timeout: while the database is cut, every
    // batch goes to the DLQ at once, so the worker has plenty scheduled when it is killed.
    // DEPENDENCY_OUTAGE=dead-letter: the article's original path, where a cut database sends
    // batches to the DLQ (the default pauses instead), so the worker has work to be killed on.
    let config = ClusterConfig {
        extra_env: vec![
            ("IN_PLACE_RETRIES", "0".into()),
            ("DATABASE_ACQUIRE_TIMEOUT_MS", "300".into()),
            ("DEPENDENCY_OUTAGE", "dead-letter".into()),
        ],
        ..ClusterConfig::default()
    };
    let mut cluster = Cluster::start(config).await;
    let kills = o.kills();
    let load = start_load(&cluster, o.rate).await;
    let mut missed = Vec::new();
    let faults = {
        let c = &mut cluster;
        // Fill the DLQ: the database goes away long enough for batches to be dead-lettered.
        c.proxy.cut();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let port = c.dlq_worker_port();
        let group = format!("dlq-worker-{}", c.topic);
        let dlq = reliable_messaging::dead_letter::dead_letter_topic(&c.topic);
        let mut injected = 1;
        for k in 0..kills {
            if k > 0 {
                // The restarted worker runs its migrations before it consumes, so it needs the
                // database: a kill while it waits for it would hit an idle process. The
                // database is back until the worker owns the DLQ's partitions (re-sends
                // succeed meanwhile), then cut again so new dead letters arrive.
                c.proxy.restore();
                let consuming = wait::within(Duration::from_secs(60), || async {
                    metrics::read(port, "dlq_assigned_partitions").await.is_some_and(|n| n > 0.0)
                })
                .await;
                c.proxy.cut();
                if !consuming {
                    missed.push(format!("kill {}: the restarted worker never owned partitions", k + 1));
                }
            }
            pause(500..2_000).await;
            // The kill must land on messages the worker polled and has not committed: it holds
            // some scheduled or being re-sent, and the broker has not committed them.
            let held = wait::within(Duration::from_secs(30), || async {
                let page = metrics::scrape(port).await.unwrap_or_default();
                let held = |name| metrics::value(&page, name).unwrap_or(0.0);
                held("dlq_scheduled") + held("dlq_in_flight") > 0.0
            })
            .await;
            c.kill_dlq_worker().await;
            let committed: i64 = c.env.committed_offsets(&group, &dlq).values().sum();
            let written: i64 = c.env.end_offsets(&dlq).values().sum();
            if !held {
                missed.push(format!("kill {}: the worker held no scheduled message", k + 1));
            } else if committed >= written {
                missed.push(format!("kill {}: every DLQ record was committed", k + 1));
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
    result.require(missed.is_empty(), format!("kills that hit no in-flight work prove nothing: {missed:?}"));
    let dead_lettered = dead_lettered(&cluster).await;
    result.require(dead_lettered > 0, "nothing went through the DLQ, so the worker kills tested nothing");
    add_note(&mut result, format!("{dead_lettered} records went through the DLQ"));
    finish(result, cluster).await
}

/// Whether every registration-service instance of the cluster reports itself paused for the
/// database within `within`: the outage landed on consumers holding work.
async fn consumers_paused(c: &Cluster, within: Duration) -> bool {
    let port = c.registration_port(0);
    wait::within(within, || async move { metrics::read(port, "registration_service_paused").await == Some(1.0) }).await
}

async fn db_outage_10s(o: Options) -> ScenarioResult {
    let mut cluster = Cluster::start(ClusterConfig::default()).await;
    let load = start_load(&cluster, o.rate).await;
    let (hit_work, dead_lettered_during);
    let faults = {
        let c = &mut cluster;
        let dead_lettered_before = dead_lettered(c).await;
        c.proxy.cut();
        let outage = tokio::time::Instant::now();
        // The consumer paused on sign-ups it had polled and could not store.
        hit_work = consumers_paused(c, Duration::from_secs(10)).await;
        tokio::time::sleep_until(outage + Duration::from_secs(10)).await;
        dead_lettered_during = dead_lettered(c).await - dead_lettered_before;
        c.proxy.restore();
        tokio::time::sleep(Duration::from_secs(3)).await;
        1
    };
    let stats = stop_load(load).await;
    let (mut result, cluster) = conclude("db-outage-10s", cluster, stats, faults, SETTLE).await;
    result.require_clean_ledger();
    result.require(hit_work, "the outage hit no work: the consumer never paused");
    result.require(dead_lettered_during == 0, format!("{dead_lettered_during} records dead-lettered for an outage"));
    result.require(
        result.ledger.parked == 0,
        format!("{} registrations parked: an outage must be waited out", result.ledger.parked),
    );
    finish(result, cluster).await
}

/// How long `db-outage-any-length` keeps the database away: `CHAOS_OUTAGE_SECS`, else 20 s
/// (short) or 60 s. The 3- and 10-minute figures in docs/chaos.md are this with 180 and 600.
fn outage_secs(o: &Options) -> u64 {
    std::env::var("CHAOS_OUTAGE_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(if o.short { 20 } else { 60 })
}

async fn db_outage_any_length(o: Options) -> ScenarioResult {
    // The old retry budget: no in-place retries, a 300 ms connection timeout and 300 ms
    // between DLQ rounds made six attempts take about 4 s; before the pause, every sign-up
    // that arrived during a longer outage was parked.
    let config = ClusterConfig {
        retry_backoff: ("constant", 300),
        extra_env: vec![("IN_PLACE_RETRIES", "0".into()), ("DATABASE_ACQUIRE_TIMEOUT_MS", "300".into())],
        ..ClusterConfig::default()
    };
    let secs = outage_secs(&o);
    // CHAOS_OUTAGE_BY=db-stop stops the MariaDB server itself (`local-services.sh db-stop`)
    // instead of cutting the proxy: every client of it sees the outage. Not for CI, which
    // shares the server with nothing else but runs scenarios one after another anyway.
    let stop_the_server = std::env::var("CHAOS_OUTAGE_BY").is_ok_and(|v| v == "db-stop");
    let mut cluster = Cluster::start(config).await;
    let load = start_load(&cluster, o.rate).await;
    let (hit_work, dead_lettered_during, drain_secs, backlog, drained);
    let faults = {
        let c = &mut cluster;
        let dead_lettered_before = dead_lettered(c).await;
        if stop_the_server {
            local_services("db-stop").await;
        } else {
            c.proxy.cut();
        }
        let outage = tokio::time::Instant::now();
        hit_work = consumers_paused(c, Duration::from_secs(10)).await;
        tokio::time::sleep_until(outage + Duration::from_secs(secs)).await;
        dead_lettered_during = dead_lettered(c).await - dead_lettered_before;
        let port = c.registration_port(0);
        backlog = metrics::read(port, "registration_service_consumer_lag").await.unwrap_or(0.0);
        if stop_the_server {
            local_services("db-start").await;
        } else {
            c.proxy.restore();
        }
        let restored = tokio::time::Instant::now();
        // Drained when the consumer has resumed and its lag is back to what the steady load
        // keeps in flight (one batch or so), not when every record ever produced is gone.
        drained = wait::within(Duration::from_secs(120), || async move {
            metrics::read(port, "registration_service_paused").await == Some(0.0)
                && metrics::read(port, "registration_service_consumer_lag").await.is_some_and(|lag| lag < 100.0)
        })
        .await;
        drain_secs = restored.elapsed().as_secs_f64();
        1
    };
    let stats = stop_load(load).await;
    let (mut result, cluster) =
        conclude("db-outage-any-length", cluster, stats, faults, SETTLE + Duration::from_secs(secs)).await;
    result.require_clean_ledger();
    result.require(hit_work, "the outage hit no work: the consumer never paused");
    result.require(dead_lettered_during == 0, format!("{dead_lettered_during} records dead-lettered for an outage"));
    result.require(result.ledger.parked == 0, format!("{} registrations parked for an outage", result.ledger.parked));
    result.require(drained, "the backlog did not drain within 120 s of the restore");
    add_note(
        &mut result,
        format!(
            "{secs} s outage ({}); backlog {backlog:.0} drained {drain_secs:.1} s after the restore ({:.0}/s)",
            if stop_the_server { "server stopped" } else { "proxy cut" },
            backlog / drain_secs.max(0.001)
        ),
    );
    finish(result, cluster).await
}

/// The per-message path under load: one address's unique-key entry is held by another
/// transaction for the whole scenario, so its sign-up fails on its own (lock wait timeout),
/// goes through the DLQ, is re-sent with backoff and parked after exactly five retries. The
/// sign-ups around it are stored, nothing else is parked.
async fn row_lock_parks_one(o: Options) -> ScenarioResult {
    let config = ClusterConfig {
        retry_backoff: ("constant", 300),
        extra_env: vec![("IN_PLACE_RETRIES", "0".into()), ("DATABASE_LOCK_WAIT_TIMEOUT_SECS", "1".into())],
        ..ClusterConfig::default()
    };
    let cluster = Cluster::start(config).await;
    let locked_email = format!("locked-{}@example.com", Uuid::new_v4().simple());
    let holder = cluster.db.hold_email_lock(&locked_email).await;
    let load = start_load(&cluster, o.rate).await;
    let locked = crate::load::sign_up_once(&cluster.gateway_url, &locked_email).await;
    let db = &cluster.db;
    let parked =
        wait::within(
            Duration::from_secs(90),
            || async move { db.count("SELECT COUNT(*) FROM parked_messages").await >= 1 },
        )
        .await;
    let mut stats = stop_load(load).await;
    let _ = holder.rollback().await;
    let locked_id = locked.as_ref().map(|e| e.request_id);
    stats.accepted.extend(locked);
    let (mut result, cluster) = conclude("row-lock-parks-one", cluster, stats, 1, SETTLE).await;
    result.require_clean_ledger();
    result.require(locked_id.is_some(), "the locked sign-up was not accepted");
    result.require(parked, "the locked sign-up was never parked");
    result.require(
        result.ledger.parked == 1,
        format!("{} parked, expected exactly the locked one", result.ledger.parked),
    );
    let five: i64 = cluster
        .db
        .count(
            "SELECT COUNT(*) FROM parked_messages WHERE retry_count = 5 AND error_message LIKE '%Lock wait timeout%'",
        )
        .await;
    result.require(five == 1, "the locked sign-up was not parked after exactly 5 retries with its lock-wait error");
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
        let committed = c.env.committed_offsets(&c.registration_group(), &c.topic);
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

/// Runs `scripts/local-services.sh <command>` (broker restarts).
async fn local_services(command: &str) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/local-services.sh");
    let status =
        tokio::process::Command::new("bash").arg(script).arg(command).status().await.expect("run local-services.sh");
    assert!(status.success(), "local-services.sh {command} failed");
}

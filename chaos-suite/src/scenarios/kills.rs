//! Scenarios that kill a process under load (the registration-service, the dlq-worker), each
//! kill placed on work the process holds in flight, and the negative control that must lose.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use integration_tests::cluster::{Cluster, ClusterConfig};
use integration_tests::{metrics, wait};
use reliable_messaging::dead_letter::dead_letter_topic;
use reliable_messaging::message::REQUEST_ID_HEADER;
use reliable_messaging::Delivery;
use uuid::Uuid;

use crate::report::ScenarioResult;
use crate::Options;

use super::{add_note, conclude, dead_lettered, finish, pause, start_load, stop_load, SETTLE};

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

pub(super) async fn registration_kills(o: Options) -> ScenarioResult {
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

pub(super) async fn negative_control(o: Options) -> ScenarioResult {
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

pub(super) async fn dlq_worker_kills(o: Options) -> ScenarioResult {
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

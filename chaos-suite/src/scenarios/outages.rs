//! Scenarios that take a dependency away under load: the database (10 s, or longer than the
//! whole retry budget), one row's lock, the broker.

use std::time::Duration;

use integration_tests::cluster::{Cluster, ClusterConfig};
use integration_tests::{metrics, wait};
use uuid::Uuid;

use crate::report::ScenarioResult;
use crate::Options;

use super::{add_note, conclude, dead_lettered, finish, local_services, start_load, stop_load, SETTLE};

/// Whether every registration-service instance of the cluster reports itself paused for the
/// database within `within`: the outage landed on consumers holding work.
async fn consumers_paused(c: &Cluster, within: Duration) -> bool {
    let port = c.registration_port(0);
    wait::within(within, || async move { metrics::read(port, "registration_service_paused").await == Some(1.0) }).await
}

pub(super) async fn db_outage_10s(o: Options) -> ScenarioResult {
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

pub(super) async fn db_outage_any_length(o: Options) -> ScenarioResult {
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
pub(super) async fn row_lock_parks_one(o: Options) -> ScenarioResult {
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

pub(super) async fn broker_restart(o: Options) -> ScenarioResult {
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

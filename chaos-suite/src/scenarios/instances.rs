//! Scenarios that change the registration-service's instances under load: one killed and one
//! added among three, and a graceful stop.

use std::collections::HashSet;
use std::time::Duration;

use integration_tests::cluster::{Cluster, ClusterConfig};
use uuid::Uuid;

use crate::report::ScenarioResult;
use crate::Options;

use super::{conclude, finish, pause, start_load, stop_load, SETTLE};

pub(super) async fn three_instances(o: Options) -> ScenarioResult {
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

pub(super) async fn graceful_shutdown(o: Options) -> ScenarioResult {
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

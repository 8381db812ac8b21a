//! How a replicated scenario ends: the background load stopped, the system settled, and the
//! ledger, the records per request id and the failover figures turned into its result.

use std::collections::HashMap;
use std::time::Duration;

use integration_tests::cluster::Cluster;
use reliable_messaging::message::retry_metadata::header::RETRY_COUNT;
use reliable_messaging::message::REQUEST_ID_HEADER;
use uuid::Uuid;

use crate::load::{Load, LoadStats};
use crate::report::ScenarioResult;

use super::rig::Rig;
use super::SETTLE;

/// Each accepted request's records on `topic`, as first published (dead-letter re-sends carry
/// a retry count and are left out): at least one, since the 202 promised it; more only when the
/// client sent the request more than once (a 503 or a lost answer, then a retry), never more
/// records than attempts. More would be the producer duplicating a write across a leader
/// change, which idempotence exists to prevent. Returns (records read, explained extra records,
/// violations).
async fn count_records_per_request(cluster: &Cluster, stats: &LoadStats) -> (usize, usize, Vec<String>) {
    let total: i64 = cluster.env.end_offsets(&cluster.topic).values().sum();
    let records =
        cluster.env.read_topic(&cluster.topic, usize::try_from(total).unwrap_or(0), Duration::from_secs(60)).await;
    let mut counts: HashMap<Uuid, u32> = HashMap::new();
    for r in records.iter().filter(|r| r.header_str(RETRY_COUNT).is_none()) {
        if let Some(id) = r.header_str(REQUEST_ID_HEADER).and_then(|s| Uuid::parse_str(s).ok()) {
            *counts.entry(id).or_default() += 1;
        }
    }
    let mut explained = 0;
    let mut violations = Vec::new();
    for (id, attempts) in &stats.attempts {
        let n = counts.get(id).copied().unwrap_or(0);
        if n == 0 {
            violations.push(format!("{id}: accepted, not on the topic"));
        } else if n > *attempts {
            violations.push(format!("{id}: {n} records for {attempts} attempt(s)"));
        } else {
            explained += (n - 1) as usize;
        }
    }
    (records.len(), explained, violations)
}

fn rig_note(result: &mut ScenarioResult, note: String) {
    if !result.note.is_empty() {
        result.note.push_str("; ");
    }
    result.note.push_str(&note);
}

pub(super) async fn start_load(rig: &Rig, rate: u32) -> Load {
    let load = Load::start(&rig.cluster.gateway_url, rate);
    tokio::time::sleep(Duration::from_secs(3)).await;
    load
}

/// Lets the load run a moment after the last fault, stops it and waits for its retries.
pub(super) async fn stop_load(load: Load) -> LoadStats {
    tokio::time::sleep(Duration::from_secs(2)).await;
    load.stop().await
}

/// Settles, holds the cluster to the ledger and the record count (with `require_clean`; the
/// negative control only reports them), stops the services.
pub(super) async fn conclude(
    name: &'static str,
    rig: Rig,
    stats: LoadStats,
    faults: u32,
    require_clean: bool,
) -> ScenarioResult {
    let ledger = rig.cluster.settle(&stats.accepted, SETTLE).await;
    let mut result = ScenarioResult::new(name, ledger, faults, stats.refused);
    result.require(
        stats.unexpected.is_empty(),
        format!("unexpected answers to valid sign-ups: {:?}", stats.unexpected.iter().take(3).collect::<Vec<_>>()),
    );
    result.require(stats.gave_up == 0, format!("{} sign-ups never accepted", stats.gave_up));
    for p in &rig.problems {
        result.require(false, p.clone());
    }
    let acked_alone: usize = rig
        .followers_behind
        .iter()
        .map(|(from, to)| stats.answers_between(*from, *to).filter(|a| a.status == Some(202)).count())
        .sum();
    if !rig.followers_behind.is_empty() {
        rig_note(&mut result, format!("202s while the leader's followers were cut off: {acked_alone}"));
        if require_clean {
            result.require(
                acked_alone == 0,
                format!("{acked_alone} sign-ups acknowledged while no follower could copy them"),
            );
        }
    }
    let (records, explained, violations) = count_records_per_request(&rig.cluster, &stats).await;
    if require_clean {
        result.require_clean_ledger();
        result.require(
            violations.is_empty(),
            format!(
                "records per request id not explained by client retries: {:?}",
                violations.iter().take(5).collect::<Vec<_>>()
            ),
        );
    }
    let mut note = format!(
        "{records} records on the topic for {} accepted requests, {explained} extra record(s) each from a client retry, {} not explained",
        stats.attempts.len(),
        violations.len()
    );
    for n in std::iter::once(rig.failover_summary(&stats)).chain(rig.notes.iter().cloned()).filter(|n| !n.is_empty()) {
        note.push_str("; ");
        note.push_str(&n);
    }
    let unclean = rig.cluster.stop().await;
    result.require(unclean.is_empty(), format!("did not exit cleanly on SIGTERM: {unclean:?}"));
    result.note = if result.note.is_empty() { note } else { format!("{}; {note}", result.note) };
    result
}

//! The replicated scenarios themselves: which faults each injects, in what order, under the
//! background load, and what each must observe on top of the ledger.

use std::time::{Duration, Instant};

use integration_tests::{metrics, wait};
use test_support::local_services::LocalServices;

use crate::load::Answer;
use crate::report::ScenarioResult;
use crate::Options;

use super::conclude::{conclude, start_load, stop_load};
use super::rig::{progress, Rig};

macro_rules! rig_or_fail {
    ($name:expr, $rig:expr) => {
        match $rig {
            Ok(rig) => rig,
            Err(why) => return ScenarioResult::failed($name, why),
        }
    };
}

pub(super) async fn leader_kill(o: Options) -> ScenarioResult {
    const NAME: &str = "replicated-leader-kill";
    let mut rig = rig_or_fail!(NAME, Rig::start(Vec::new(), ("exponential", 1_000)).await);
    let load = start_load(&rig, o.rate).await;
    let topic = rig.cluster.topic.clone();
    rig.kill_loaded_leader("leader kill", &topic).await;
    rig.kill_active_controller().await;
    let mut faults = 2;
    if !o.short {
        rig.kill_leader_with_followers_behind().await;
        faults += 1;
    }
    let stats = stop_load(load).await;
    conclude(NAME, rig, stats, faults, true).await
}

/// The leader kills with `PRODUCER_ACKS=unsafe-1`: acknowledged by the leader alone, records
/// the followers had not copied die with it. The kill with its followers behind makes such
/// records certain to exist at the kill; without it the window is a few milliseconds of
/// replication lag and the loss a matter of luck.
pub(super) async fn negative_control_acks_1(o: Options) -> ScenarioResult {
    const NAME: &str = "negative-control-replicated-acks-1";
    let mut rig =
        rig_or_fail!(NAME, Rig::start(vec![("PRODUCER_ACKS", "unsafe-1".into())], ("exponential", 1_000)).await);
    let load = start_load(&rig, o.rate).await;
    let topic = rig.cluster.topic.clone();
    rig.kill_loaded_leader("leader kill", &topic).await;
    rig.kill_leader_with_followers_behind().await;
    let stats = stop_load(load).await;
    let mut result = conclude(NAME, rig, stats, 2, false).await;
    let lost = result.ledger.lost.len();
    result.require(lost > 0, "acks=1 lost nothing across the leader kills: the check proves nothing");
    if lost > 0 {
        result.note = format!("acknowledged sign-ups lost as they must be ({lost} lost); {}", result.note);
    }
    result
}

pub(super) async fn leader_isolated(o: Options) -> ScenarioResult {
    const NAME: &str = "replicated-leader-isolated";
    let mut rig = rig_or_fail!(NAME, Rig::start(Vec::new(), ("exponential", 1_000)).await);
    let load = start_load(&rig, o.rate).await;
    let topic = rig.cluster.topic.clone();
    match rig.loaded_leader(&topic, &[]).await {
        Ok((victim, partitions)) => {
            let (at, wall) = (Instant::now(), chrono::Local::now().naive_local());
            rig.brokers.isolate(victim).await;
            progress(&format!("broker {victim}, leader of loaded partitions {partitions:?}, isolated"));
            rig.follow_failover("leader isolated", &topic, victim, partitions, at, wall).await;
            tokio::time::sleep(Duration::from_secs(30).saturating_sub(at.elapsed())).await;
            rig.brokers.heal(victim).await;
            progress(&format!("broker {victim} healed"));
            rig.notes.push(format!("broker {victim} isolated for {:.0} s", at.elapsed().as_secs_f64()));
            rig.restore(&[]).await;
            // What the old leader had appended alone and dropped on rejoining, by its own log.
            let truncated = rig.brokers.log_lines(wall, &[&format!("partition={topic}-"), "Truncating to offset"]);
            rig.notes
                .push(format!("log truncations of the topic's partitions after the partition: {}", truncated.len()));
        }
        Err(e) => rig.problems.push(e),
    }
    let stats = stop_load(load).await;
    conclude(NAME, rig, stats, 1, true).await
}

pub(super) async fn below_min_isr(o: Options) -> ScenarioResult {
    const NAME: &str = "replicated-below-min-isr";
    let mut rig = rig_or_fail!(NAME, Rig::start(Vec::new(), ("exponential", 1_000)).await);
    let load = start_load(&rig, o.rate).await;
    let topic = rig.cluster.topic.clone();
    let (first, _) = match rig.loaded_leader(&topic, &[]).await {
        Ok(v) => v,
        Err(e) => {
            rig.problems.push(e);
            let stats = stop_load(load).await;
            return conclude(NAME, rig, stats, 0, true).await;
        }
    };
    let second = *rig.brokers.ids.iter().find(|&&id| id != first).expect("three brokers");
    rig.brokers.kill(first).await;
    rig.brokers.kill(second).await;
    rig.faults_at.push(Instant::now());
    progress(&format!("kill -9 of brokers {first} (leader of loaded partitions) and {second}"));
    // A write the survivor acknowledged just before the second kill may still be answered;
    // one second is far more than an acknowledgement takes to become a 202.
    let from = Instant::now() + Duration::from_secs(1);
    tokio::time::sleep(Duration::from_secs(20)).await;
    let to = Instant::now();
    progress("restarting both");
    rig.restore(&[first, second]).await;
    let back = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let stats = stop_load(load).await;
    let in_window: Vec<_> = stats.answers_between(from, to).collect();
    let count = |f: &dyn Fn(&Answer) -> bool| in_window.iter().filter(|a| f(a)).count();
    let accepted = count(&|a| a.status == Some(202));
    let refused = count(&|a| a.status == Some(503));
    let without_retry_after = count(&|a| a.status == Some(503) && !a.retry_after);
    let other = count(&|a| !matches!(a.status, Some(202 | 503)));
    rig.notes.push(format!(
        "brokers {first} and {second} down {:.0} s: {refused} × 503, {accepted} × 202, {other} other answers in that window",
        (to - from).as_secs_f64() + 1.0
    ));
    if accepted > 0 {
        rig.problems
            .push(format!("{accepted} sign-ups answered 202 while one replica was up and min.insync.replicas is 2"));
    }
    if refused == 0 {
        rig.problems.push("no 503 while two brokers were down: the fault did not bite".into());
    }
    if without_retry_after > 0 {
        rig.problems.push(format!("{without_retry_after} × 503 without Retry-After"));
    }
    if !stats.answers.iter().any(|a| a.at >= back && a.status == Some(202)) {
        rig.problems.push("no 202 after the replicas returned".into());
    }
    conclude(NAME, rig, stats, 2, true).await
}

pub(super) async fn rolling_restart(o: Options) -> ScenarioResult {
    const NAME: &str = "replicated-rolling-restart";
    let mut rig = rig_or_fail!(NAME, Rig::start(Vec::new(), ("exponential", 1_000)).await);
    let load = start_load(&rig, o.rate).await;
    let topic = rig.cluster.topic.clone();
    let mut done: Vec<i32> = Vec::new();
    let ids = rig.brokers.ids.clone();
    for _ in &ids {
        // The next broker: one not restarted yet that leads loaded partitions; leadership moved
        // away from restarted ones, so bring it back to the preferred replicas when needed.
        let mut pick = rig.loaded_leader(&topic, &done).await;
        if pick.is_err() {
            rig.brokers.elect_preferred_leaders().await;
            pick = rig.loaded_leader(&topic, &done).await;
        }
        let (victim, partitions) = match pick {
            Ok(v) => v,
            Err(e) => {
                rig.problems.push(format!("rolling restart after {done:?}: {e}"));
                break;
            }
        };
        let leaders = rig.brokers.leaders(&topic).await;
        if !partitions.iter().any(|p| leaders.get(p) == Some(&victim)) {
            rig.problems.push(format!(
                "rolling restart: broker {victim} no longer led {partitions:?} right before its stop ({leaders:?})"
            ));
        }
        let (at, wall) = (Instant::now(), chrono::Local::now().naive_local());
        rig.brokers.stop(victim).await;
        progress(&format!("broker {victim} stopped (SIGTERM), leader of loaded partitions {partitions:?}"));
        // A controlled shutdown moves leadership before the broker exits.
        rig.follow_failover_checked("controlled stop", &topic, victim, partitions, at, wall, true).await;
        rig.restore(&[victim]).await;
        done.push(victim);
    }
    rig.notes.push(format!("restarted in the order {done:?}"));
    let faults = u32::try_from(done.len()).unwrap_or(0);
    let stats = stop_load(load).await;
    conclude(NAME, rig, stats, faults, true).await
}

pub(super) async fn dlq_failover(o: Options) -> ScenarioResult {
    const NAME: &str = "replicated-dlq-failover";
    // No in-place retries and a short connection timeout: while the database is cut, every
    // batch is dead-lettered at once.
    // DEPENDENCY_OUTAGE=dead-letter: the consumer sends batches to the DLQ when the database
    // is cut (by default it pauses, and the DLQ would see nothing).
    let env = vec![
        ("IN_PLACE_RETRIES", "0".into()),
        ("DATABASE_ACQUIRE_TIMEOUT_MS", "300".into()),
        ("DEPENDENCY_OUTAGE", "dead-letter".into()),
    ];
    let mut rig = rig_or_fail!(NAME, Rig::start(env, ("exponential", 1_000)).await);
    let load = start_load(&rig, o.rate).await;
    let [topic, dlq] = rig.topics();
    rig.cluster.proxy.cut();
    // The registration-service's DLQ writes: kill the leader of DLQ partitions being written.
    let writing = wait::within(Duration::from_secs(30), || async {
        !rig.brokers.partitions_receiving(&dlq, Duration::from_millis(500)).await.is_empty()
    })
    .await;
    if !writing {
        rig.problems.push("nothing was dead-lettered while the database was cut".into());
    }
    rig.kill_loaded_leader("DLQ leader kill", &dlq).await;
    // The dlq-worker's re-sends: with the database back they flow to the registrations topic;
    // kill that topic's loaded leader while the worker is re-sending.
    rig.cluster.proxy.restore();
    let port = rig.cluster.dlq_worker_port();
    let before = metrics::read(port, "dlq_redriven_total").await.unwrap_or(0.0);
    let resending = wait::within(Duration::from_secs(30), || async {
        let page = metrics::scrape(port).await.unwrap_or_default();
        let v = |n| metrics::value(&page, n).unwrap_or(0.0);
        v("dlq_redriven_total") > before && v("dlq_scheduled") + v("dlq_in_flight") > 0.0
    })
    .await;
    if !resending {
        rig.problems.push("the dlq-worker was not re-sending when its target's leader was to be killed".into());
    }
    rig.kill_loaded_leader("re-send target leader kill", &topic).await;
    let redriven = metrics::read(port, "dlq_redriven_total").await.unwrap_or(0.0);
    rig.notes.push(format!("{redriven} re-sends by the dlq-worker"));
    let stats = stop_load(load).await;
    conclude(NAME, rig, stats, 2, true).await
}

/// Restarts the machine's MariaDB (`local-services.sh db-stop`, `db-start`) while the
/// registration-service holds polled records without an outcome. Every database user on the
/// machine sees the restart: run only when nobody else is testing.
pub(super) async fn db_server_restart(o: Options) -> ScenarioResult {
    const NAME: &str = "replicated-db-server-restart";
    let mut rig = rig_or_fail!(NAME, Rig::start(Vec::new(), ("exponential", 1_000)).await);
    let load = start_load(&rig, o.rate).await;
    let port = rig.cluster.registration_port(0);
    let held = wait::within(Duration::from_secs(30), || async {
        metrics::read(port, "registration_service_in_flight").await.is_some_and(|n| n > 0.0)
    })
    .await;
    if !held {
        rig.problems.push("the registration-service never held a batch to restart the database under".into());
    }
    let at = Instant::now();
    if let Err(e) = local_services(&["db-stop"]).await {
        rig.problems.push(e);
    }
    if let Err(e) = local_services(&["db-start"]).await {
        rig.problems.push(e);
    }
    rig.notes.push(format!("MariaDB restarted in {:.1} s with records in flight", at.elapsed().as_secs_f64()));
    let stats = stop_load(load).await;
    conclude(NAME, rig, stats, 1, true).await
}

async fn local_services(args: &[&str]) -> Result<(), String> {
    LocalServices::of_checkout().run(args).await.map(drop).map_err(|e| e.to_string())
}

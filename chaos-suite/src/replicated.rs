//! Scenarios on a replicated Kafka cluster (`scripts/chaos.sh --replicated`): the local
//! three-broker KRaft cluster of `scripts/local-services.sh up --brokers 3`, topics declared the
//! way the services declare them (replication factor 3, `min.insync.replicas` 2, no unclean
//! election), and broker faults placed on the broker that matters at that moment: the current
//! leader of partitions that are receiving the load, the active controller. Every fault is
//! checked to have landed (the victim led loaded partitions when it was hit), every scenario
//! ends with the ledger and with a count of each accepted request id's records on the topic
//! (the idempotent producer wrote each once; any extra record is a client retry).
//!
//! Failover figures (the 503 window after a kill, the leader election time from the broker's
//! own log) are printed in each scenario's note; BENCHMARKS.md records them.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::FutureExt;
use integration_tests::brokers::Brokers;
use integration_tests::cluster::{Cluster, ClusterConfig};
use integration_tests::{metrics, test_env, wait};
use registration_events::REQUEST_ID_HEADER;
use reliable_messaging::dead_letter::dead_letter_topic;
use reliable_messaging::retry_metadata::header::RETRY_COUNT;
use reliable_messaging::topics::{check_durability, TopicPolicy};
use reliable_messaging::KafkaSettings;
use uuid::Uuid;

use crate::load::{Answer, Load, LoadStats};
use crate::report::ScenarioResult;
use crate::scenarios::Scenario;
use crate::Options;

/// The replicated scenarios; the MariaDB restart only with `--restart-database` (it restarts
/// the machine's shared database server, so nobody else may be testing).
pub fn all(options: &Options) -> Vec<Scenario> {
    let mut list = vec![
        Scenario { name: "replicated-leader-kill", what: "kill -9 of the leader of loaded partitions, then of the active controller, then of a leader whose followers are 3 s behind; each broker restarted", run: |o| leader_kill(o).boxed() },
        Scenario { name: "negative-control-replicated-acks-1", what: "the same leader kills with the producer at acks=1: the ledger MUST report acknowledged sign-ups lost", run: |o| negative_control_acks_1(o).boxed() },
        Scenario { name: "replicated-leader-isolated", what: "the leader of loaded partitions cut off from the other brokers and the clients for 30 s, then healed", run: |o| leader_isolated(o).boxed() },
        Scenario { name: "replicated-below-min-isr", what: "two of three brokers down: fewer in-sync replicas than min.insync.replicas, 503 with Retry-After and never 202 until they return", run: |o| below_min_isr(o).boxed() },
        Scenario { name: "replicated-rolling-restart", what: "each broker stopped and restarted in turn, each while it leads loaded partitions", run: |o| rolling_restart(o).boxed() },
        Scenario { name: "replicated-dlq-failover", what: "kill -9 of the DLQ's leader while the registration-service dead-letters, then of the leader the dlq-worker re-sends to", run: |o| dlq_failover(o).boxed() },
    ];
    if options.restart_database {
        list.push(Scenario {
            name: "replicated-db-server-restart",
            what: "the MariaDB server restarted (stopped, started) while the registration-service holds a batch",
            run: |o| db_server_restart(o).boxed(),
        });
    }
    list
}

/// How long the system may take to settle after the faults stop.
const SETTLE: Duration = Duration::from_secs(150);
/// A killed broker is fenced after `broker.session.timeout.ms` (9 s); generous beyond that.
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(60);
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(120);

/// One fault and what it did.
struct Failover {
    label: String,
    victim: i32,
    at: Instant,
    /// The victim's loaded partitions: the ones whose new leader's start we look up.
    partitions: Vec<i32>,
    topic: String,
    /// Kill → metadata shows other leaders (what clients can learn).
    moved_after: Option<Duration>,
    /// Kill → the first new leader's "starts at leader epoch" line in the broker logs.
    elected_after: Option<Duration>,
}

/// A system cluster on the replicated brokers, and what the scenario observed.
struct Rig {
    cluster: Cluster,
    brokers: Brokers,
    failovers: Vec<Failover>,
    /// Faults that did not land where they had to, or steps that failed: each fails the scenario.
    problems: Vec<String>,
    notes: Vec<String>,
    /// When each fault was injected, failover or not.
    faults_at: Vec<Instant>,
    /// Windows in which a leader's followers were cut off (acknowledgements impossible with acks=all).
    followers_behind: Vec<(Instant, Instant)>,
}

impl Rig {
    /// Every broker running and reachable, then a system cluster whose topics are declared with
    /// the production policy, checked to have it.
    async fn start(extra_env: Vec<(&'static str, String)>, retry_backoff: (&'static str, u64)) -> Result<Rig, String> {
        let brokers = Brokers::local().await;
        let env = test_env().await;
        if env.kafka_bootstrap != brokers.bootstrap {
            return Err(format!(
                "KAFKA_BOOTSTRAP_SERVERS is {} but the local cluster is {}: run scripts/chaos.sh --replicated",
                env.kafka_bootstrap, brokers.bootstrap
            ));
        }
        // A scenario that failed half-way may have left a broker down or cut off.
        brokers.restore_all().await?;
        let config = ClusterConfig { production_topics: true, extra_env, retry_backoff, ..ClusterConfig::default() };
        let cluster = Cluster::start(config).await;
        let dlq = dead_letter_topic(&cluster.topic);
        let kafka = KafkaSettings::new(brokers.bootstrap.clone(), "chaos-replicated");
        let weak = check_durability(&kafka, &[&cluster.topic, &dlq], &TopicPolicy::default())
            .await
            .map_err(|e| format!("could not describe the topics: {e}"))?;
        let replicas =
            brokers.partitions(&cluster.topic).await.unwrap_or_default().iter().map(|p| p.replicas.len()).min();
        if !weak.is_empty() || replicas != Some(3) {
            return Err(format!("the topics are not declared for production: {weak:?}, replicas {replicas:?}"));
        }
        if !brokers.wait_fully_replicated(&[&cluster.topic, &dlq, "__consumer_offsets"], CATCH_UP_TIMEOUT).await {
            return Err("the topics never had every replica in sync".into());
        }
        Ok(Rig {
            cluster,
            brokers,
            failovers: Vec::new(),
            problems: Vec::new(),
            notes: Vec::new(),
            faults_at: Vec::new(),
            followers_behind: Vec::new(),
        })
    }

    fn topics(&self) -> [String; 2] {
        [self.cluster.topic.clone(), dead_letter_topic(&self.cluster.topic)]
    }

    /// The broker leading the most partitions of `topic` that received records in the last
    /// second, with those partitions; `Err` when no partition received any.
    async fn loaded_leader(&self, topic: &str, exclude: &[i32]) -> Result<(i32, Vec<i32>), String> {
        let growing = self.brokers.partitions_receiving(topic, Duration::from_secs(1)).await;
        let leaders = self.brokers.leaders(topic).await;
        let mut by_leader: HashMap<i32, Vec<i32>> = HashMap::new();
        for p in &growing {
            if let Some(&l) = leaders.get(p).filter(|l| **l >= 0 && !exclude.contains(l)) {
                by_leader.entry(l).or_default().push(*p);
            }
        }
        by_leader.into_iter().max_by_key(|(id, ps)| (ps.len(), -id)).ok_or_else(|| {
            format!("no partition of {topic} received records (growing: {growing:?}, leaders: {leaders:?})")
        })
    }

    /// After a fault on `victim` (at `at`): checks it still led `partitions` when it was hit
    /// (after a crash or a partition only the controller moves leadership, and it needs
    /// seconds to notice; a controlled stop hands leadership over before the process exits, so
    /// its caller checks before the stop and passes `led_checked`), then waits until they
    /// moved and reads the election time from the broker logs.
    async fn follow_failover(
        &mut self,
        label: &str,
        topic: &str,
        victim: i32,
        partitions: Vec<i32>,
        at: Instant,
        wall: chrono::NaiveDateTime,
    ) {
        self.follow_failover_checked(label, topic, victim, partitions, at, wall, false).await;
    }

    #[allow(clippy::too_many_arguments)]
    async fn follow_failover_checked(
        &mut self,
        label: &str,
        topic: &str,
        victim: i32,
        partitions: Vec<i32>,
        at: Instant,
        wall: chrono::NaiveDateTime,
        led_checked: bool,
    ) {
        let leaders = self.brokers.leaders(topic).await;
        let still_led = partitions.iter().filter(|p| leaders.get(p) == Some(&victim)).count();
        if still_led == 0 && !led_checked {
            self.problems.push(format!(
                "{label}: broker {victim} no longer led partitions {partitions:?} of {topic} when hit ({leaders:?})"
            ));
        }
        let moved = self.brokers.wait_leadership_moved(topic, victim, FAILOVER_TIMEOUT).await.map(|_| at.elapsed());
        if moved.is_none() {
            self.problems.push(format!("{label}: leadership of {topic} never left broker {victim}"));
        }
        // The new leader logs its start a moment after the metadata may already show it.
        let mut elected = None;
        for _ in 0..50 {
            elected = partitions
                .iter()
                .filter_map(|p| self.brokers.leader_started(topic, *p, wall))
                .map(|(stamp, _)| stamp)
                .min()
                .and_then(|stamp| (stamp - wall).to_std().ok());
            if elected.is_some() || moved.is_none() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.faults_at.push(at);
        self.failovers.push(Failover {
            label: label.to_owned(),
            victim,
            at,
            partitions,
            topic: topic.to_owned(),
            moved_after: moved,
            elected_after: elected,
        });
    }

    /// Restarts `ids` and waits until every replica of the topics and the group offsets is
    /// back in sync, so the next fault meets a whole cluster.
    async fn restore(&mut self, ids: &[i32]) {
        for &id in ids {
            self.brokers.start(id).await;
        }
        let [topic, dlq] = self.topics();
        if !self.brokers.wait_fully_replicated(&[&topic, &dlq, "__consumer_offsets"], CATCH_UP_TIMEOUT).await {
            self.problems.push(format!("replicas not back in sync {CATCH_UP_TIMEOUT:?} after restarting {ids:?}"));
        }
    }

    /// kill -9 of the leader of the loaded partitions of `topic`, failover, restart.
    async fn kill_loaded_leader(&mut self, label: &str, topic: &str) {
        let (victim, partitions) = match self.loaded_leader(topic, &[]).await {
            Ok(v) => v,
            Err(e) => return self.problems.push(format!("{label}: {e}")),
        };
        let (at, wall) = (Instant::now(), chrono::Local::now().naive_local());
        self.brokers.kill(victim).await;
        progress(&format!(
            "{label}: kill -9 of broker {victim}, leader of loaded partitions {partitions:?} of {topic}"
        ));
        self.follow_failover(label, topic, victim, partitions, at, wall).await;
        self.restore(&[victim]).await;
    }

    /// kill -9 of the active controller (checked to be active right before), restart.
    async fn kill_active_controller(&mut self) {
        let topic = self.cluster.topic.clone();
        if let Err(e) = self.loaded_leader(&topic, &[]).await {
            return self.problems.push(format!("controller kill: {e}"));
        }
        let Some(controller) = self.brokers.active_controller().await else {
            return self.problems.push("controller kill: the quorum reported no active controller".into());
        };
        let leaders = self.brokers.leaders(&topic).await;
        let led: Vec<i32> = leaders.iter().filter(|(_, l)| **l == controller).map(|(p, _)| *p).collect();
        let (at, wall) = (Instant::now(), chrono::Local::now().naive_local());
        self.brokers.kill(controller).await;
        self.faults_at.push(at);
        progress(&format!("kill -9 of broker {controller}, the active controller (leading partitions {led:?})"));
        let brokers = &self.brokers;
        let moved = wait::within(FAILOVER_TIMEOUT, || async {
            brokers.active_controller().await.is_some_and(|c| c != controller)
        })
        .await;
        if moved {
            self.notes.push(format!(
                "controller {controller} killed: a new one active after {:.1} s",
                at.elapsed().as_secs_f64()
            ));
        } else {
            self.problems
                .push(format!("no new active controller within {FAILOVER_TIMEOUT:?} after killing {controller}"));
        }
        if !led.is_empty() {
            self.follow_failover("controller kill", &topic, controller, led, at, wall).await;
        }
        self.restore(&[controller]).await;
    }

    /// The followers of the loaded leader cut off for 3 s (the leader keeps taking writes; with
    /// acks=all it cannot acknowledge them), then the leader killed and the followers healed:
    /// they elect a new leader among themselves that lacks whatever the old one took alone.
    async fn kill_leader_with_followers_behind(&mut self) {
        let topic = self.cluster.topic.clone();
        let (victim, partitions) = match self.loaded_leader(&topic, &[]).await {
            Ok(v) => v,
            Err(e) => return self.problems.push(format!("followers-behind kill: {e}")),
        };
        let followers: Vec<i32> = self.brokers.ids.iter().copied().filter(|&id| id != victim).collect();
        // A fault of its own, from before the first cut: refusals from here on are not the
        // previous fault's.
        self.faults_at.push(Instant::now());
        for &f in &followers {
            self.brokers.isolate(f).await;
        }
        progress(&format!("followers {followers:?} of broker {victim} cut off"));
        // 202s answered from a second after the cut (acknowledgements already on their way
        // may still arrive) until the kill: with acks=all there can be none, as no follower
        // copies anything; with acks=1 these are the sign-ups the kill will lose.
        let cut = Instant::now() + Duration::from_secs(1);
        tokio::time::sleep(Duration::from_secs(3)).await;
        let (at, wall) = (Instant::now(), chrono::Local::now().naive_local());
        self.brokers.kill(victim).await;
        progress(&format!("kill -9 of broker {victim}, leader of loaded partitions {partitions:?} of {topic}"));
        for &f in &followers {
            self.brokers.heal(f).await;
        }
        self.followers_behind.push((cut, at));
        self.notes.push(format!("followers {followers:?} of broker {victim} cut off 3 s before it was killed"));
        self.follow_failover("followers-behind kill", &topic, victim, partitions, at, wall).await;
        self.restore(&[victim]).await;
    }

    fn failover_summary(&self, stats: &LoadStats) -> String {
        self.failovers
            .iter()
            .map(|f| {
                // Up to the next fault: its refusals are its own.
                let until = self.faults_at.iter().copied().filter(|t| *t > f.at).min().unwrap_or(f.at + Duration::from_secs(60));
                let (answered, sent) = refusal_window(stats, f.at, until);
                format!(
                    "{} (broker {}, {} partitions {:?}): new leader per broker log after {} s, in metadata after {} s, 503s answered until {} s (requests sent until {} s)",
                    f.label,
                    f.victim,
                    if f.topic.ends_with("-dlq") { "DLQ" } else { "topic" },
                    f.partitions,
                    secs(f.elected_after),
                    secs(f.moved_after),
                    secs(answered),
                    secs(sent),
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

fn secs(d: Option<Duration>) -> String {
    d.map_or("?".to_owned(), |d| format!("{:.1}", d.as_secs_f64()))
}

/// How long after the fault at `from` (and before the next one, at `until`) clients were
/// refused: the last refusal (503 or no answer) answered, and the last refused request sent,
/// relative to `from`. A request waits up to the publish timeout for its answer, so the two
/// differ by up to that much; the load is steady, so these bound the window clients saw.
fn refusal_window(stats: &LoadStats, from: Instant, until: Instant) -> (Option<Duration>, Option<Duration>) {
    let refused: Vec<_> =
        stats.answers.iter().filter(|a| a.sent >= from && a.sent < until && a.status != Some(202)).collect();
    (refused.iter().map(|a| a.at - from).max(), refused.iter().map(|a| a.sent - from).max())
}

/// A timestamped line on stderr for each fault, to line up with the services' and brokers' logs.
fn progress(what: &str) {
    eprintln!("    [{}] {what}", chrono::Local::now().format("%H:%M:%S%.3f"));
}

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

async fn start_load(rig: &Rig, rate: u32) -> Load {
    let load = Load::start(&rig.cluster.gateway_url, rate);
    tokio::time::sleep(Duration::from_secs(3)).await;
    load
}

/// Lets the load run a moment after the last fault, stops it and waits for its retries.
async fn stop_load(load: Load) -> LoadStats {
    tokio::time::sleep(Duration::from_secs(2)).await;
    load.stop().await
}

/// Settles, holds the cluster to the ledger and the record count (with `require_clean`; the
/// negative control only reports them), stops the services.
async fn conclude(name: &'static str, rig: Rig, stats: LoadStats, faults: u32, require_clean: bool) -> ScenarioResult {
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

macro_rules! rig_or_fail {
    ($name:expr, $rig:expr) => {
        match $rig {
            Ok(rig) => rig,
            Err(why) => return ScenarioResult::failed($name, why),
        }
    };
}

async fn leader_kill(o: Options) -> ScenarioResult {
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
async fn negative_control_acks_1(o: Options) -> ScenarioResult {
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

async fn leader_isolated(o: Options) -> ScenarioResult {
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

async fn below_min_isr(o: Options) -> ScenarioResult {
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

async fn rolling_restart(o: Options) -> ScenarioResult {
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

async fn dlq_failover(o: Options) -> ScenarioResult {
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
async fn db_server_restart(o: Options) -> ScenarioResult {
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
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/local-services.sh");
    let status =
        tokio::process::Command::new("bash").arg(script).args(args).status().await.map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("local-services.sh {} failed: {status}", args.join(" ")))
    }
}

//! The rig every replicated scenario runs on: a system cluster on the three brokers with the
//! production topic policy, and what the scenario observed of each fault (where it landed, when
//! leadership moved, how long clients were refused).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use integration_tests::brokers::Brokers;
use integration_tests::cluster::{Cluster, ClusterConfig};
use integration_tests::test_env;
use reliable_messaging::dead_letter::dead_letter_topic;
use reliable_messaging::kafka::topics::{check_durability, TopicPolicy};
use reliable_messaging::KafkaSettings;

use crate::load::LoadStats;

use super::{CATCH_UP_TIMEOUT, FAILOVER_TIMEOUT};

/// One fault and what it did.
pub(super) struct Failover {
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
pub(super) struct Rig {
    pub(super) cluster: Cluster,
    pub(super) brokers: Brokers,
    pub(super) failovers: Vec<Failover>,
    /// Faults that did not land where they had to, or steps that failed: each fails the scenario.
    pub(super) problems: Vec<String>,
    pub(super) notes: Vec<String>,
    /// When each fault was injected, failover or not.
    pub(super) faults_at: Vec<Instant>,
    /// Windows in which a leader's followers were cut off (acknowledgements impossible with acks=all).
    pub(super) followers_behind: Vec<(Instant, Instant)>,
}

impl Rig {
    /// Every broker running and reachable, then a system cluster whose topics are declared with
    /// the production policy, checked to have it.
    pub(super) async fn start(
        extra_env: Vec<(&'static str, String)>,
        retry_backoff: (&'static str, u64),
    ) -> Result<Rig, String> {
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

    pub(super) fn topics(&self) -> [String; 2] {
        [self.cluster.topic.clone(), dead_letter_topic(&self.cluster.topic)]
    }

    /// The broker leading the most partitions of `topic` that received records in the last
    /// second, with those partitions; `Err` when no partition received any.
    pub(super) async fn loaded_leader(&self, topic: &str, exclude: &[i32]) -> Result<(i32, Vec<i32>), String> {
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
    pub(super) async fn follow_failover(
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
    pub(super) async fn follow_failover_checked(
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
    pub(super) async fn restore(&mut self, ids: &[i32]) {
        for &id in ids {
            self.brokers.start(id).await;
        }
        let [topic, dlq] = self.topics();
        if !self.brokers.wait_fully_replicated(&[&topic, &dlq, "__consumer_offsets"], CATCH_UP_TIMEOUT).await {
            self.problems.push(format!("replicas not back in sync {CATCH_UP_TIMEOUT:?} after restarting {ids:?}"));
        }
    }
}

impl Rig {
    pub(super) fn failover_summary(&self, stats: &LoadStats) -> String {
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
pub(super) fn progress(what: &str) {
    eprintln!("    [{}] {what}", chrono::Local::now().format("%H:%M:%S%.3f"));
}

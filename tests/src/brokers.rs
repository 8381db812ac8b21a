//! The local multi-broker Kafka cluster, driven through `scripts/local-services.sh` (the same
//! verbs people use): where its brokers are, which broker leads what, and faults that land on
//! a chosen broker: `kill -9`, a controlled stop, a network partition, and their undoing.
//!
//! Start the cluster with `LOCAL_KAFKA_BROKERS=3 scripts/local-services.sh up` and point the
//! test environment at it (`KAFKA_BOOTSTRAP_SERVERS` from `... env`); `scripts/chaos.sh
//! --replicated` does both.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;
use test_support::local_services::LocalServices;

/// One partition as the cluster's metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionState {
    pub partition: i32,
    /// `-1` while no leader is elected.
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

/// The local cluster of `scripts/local-services.sh up --brokers N`.
#[derive(Debug, Clone)]
pub struct Brokers {
    pub bootstrap: String,
    /// Node ids, 1..=N.
    pub ids: Vec<i32>,
    brokers: String,
}

impl Brokers {
    /// The cluster of `LOCAL_KAFKA_BROKERS` brokers (3 when unset); panics with the command that
    /// starts it when it was never set up. Brokers a failed test left down or cut off are not
    /// an error here: [`Brokers::restore_all`] brings them back.
    pub async fn local() -> Brokers {
        let n = std::env::var("LOCAL_KAFKA_BROKERS").ok().filter(|n| n != "1").unwrap_or_else(|| "3".to_owned());
        let mut brokers = Brokers { bootstrap: String::new(), ids: Vec::new(), brokers: n.clone() };
        let status = match brokers.run(&["status"]).await {
            Ok(s) | Err(s) => s,
        };
        assert!(
            status.contains(&format!("kafka broker {n}:")),
            "no local {n}-broker Kafka cluster:\n{status}\nstart it with: LOCAL_KAFKA_BROKERS={n} scripts/local-services.sh up"
        );
        let env = brokers.run(&["env"]).await.expect("local-services.sh env");
        brokers.bootstrap = env
            .lines()
            .find_map(|l| l.strip_prefix("export KAFKA_BOOTSTRAP_SERVERS="))
            .expect("KAFKA_BOOTSTRAP_SERVERS in local-services.sh env")
            .to_owned();
        brokers.ids = (1..=n.parse::<i32>().expect("LOCAL_KAFKA_BROKERS is a number")).collect();
        brokers
    }

    /// Runs a `local-services.sh` verb for this cluster; stdout, or what it printed as the error.
    async fn run(&self, args: &[&str]) -> Result<String, String> {
        LocalServices::of_checkout()
            .with_env("LOCAL_KAFKA_BROKERS", &self.brokers)
            .run(args)
            .await
            .map_err(|e| e.to_string())
    }

    /// Heals and starts every broker, and waits until the metadata lists them all.
    pub async fn restore_all(&self) -> Result<(), String> {
        for &id in &self.ids {
            self.heal(id).await;
            self.start(id).await;
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let live = self.live().await;
            if live == self.ids {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("not every broker came back: live {live:?}"));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn verb(&self, verb: &str, id: i32) {
        if let Err(e) = self.run(&[verb, &id.to_string()]).await {
            panic!("{e}");
        }
    }

    /// SIGKILL of broker `id`; returns once the process is gone.
    pub async fn kill(&self, id: i32) {
        self.verb("broker-kill", id).await;
    }

    /// SIGTERM of broker `id` (controlled shutdown: leadership moves first).
    pub async fn stop(&self, id: i32) {
        self.verb("broker-stop", id).await;
    }

    /// Starts broker `id` again; returns once it has started (with a quorum) or launched.
    pub async fn start(&self, id: i32) {
        self.verb("broker-start", id).await;
    }

    /// Cuts broker `id` off from the other brokers and from every client; it keeps running.
    pub async fn isolate(&self, id: i32) {
        self.verb("broker-isolate", id).await;
    }

    pub async fn heal(&self, id: i32) {
        self.verb("broker-heal", id).await;
    }

    /// The node id of the active KRaft controller, or `None` while the quorum has no leader.
    pub async fn active_controller(&self) -> Option<i32> {
        self.run(&["active-controller"]).await.ok().and_then(|s| s.trim().parse().ok())
    }

    fn metadata_client(&self) -> BaseConsumer {
        ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("log_level", "2")
            .create()
            .expect("metadata client")
    }

    /// `topic`'s partitions as the cluster describes them now (`None`: no broker answered).
    pub async fn partitions(&self, topic: &str) -> Option<Vec<PartitionState>> {
        let client = self.metadata_client();
        let topic = topic.to_owned();
        tokio::task::spawn_blocking(move || {
            let metadata = client.fetch_metadata(Some(&topic), Duration::from_secs(5)).ok()?;
            let t = metadata.topics().iter().find(|t| t.name() == topic)?;
            let mut states: Vec<PartitionState> = t
                .partitions()
                .iter()
                .map(|p| PartitionState {
                    partition: p.id(),
                    leader: p.leader(),
                    replicas: p.replicas().to_vec(),
                    isr: p.isr().to_vec(),
                })
                .collect();
            states.sort_by_key(|p| p.partition);
            Some(states)
        })
        .await
        .ok()
        .flatten()
    }

    /// Partition → leader of `topic` now.
    pub async fn leaders(&self, topic: &str) -> BTreeMap<i32, i32> {
        self.partitions(topic).await.unwrap_or_default().iter().map(|p| (p.partition, p.leader)).collect()
    }

    /// The ids of the brokers the cluster's metadata lists (registered and not fenced).
    pub async fn live(&self) -> Vec<i32> {
        let client = self.metadata_client();
        tokio::task::spawn_blocking(move || {
            let mut ids: Vec<i32> = client
                .fetch_metadata(None, Duration::from_secs(5))
                .map(|m| m.brokers().iter().map(|b| b.id()).collect())
                .unwrap_or_default();
            ids.sort_unstable();
            ids
        })
        .await
        .unwrap_or_default()
    }

    /// Waits until every partition of every one of `topics` has a leader and all its replicas
    /// in sync; false after `timeout`.
    pub async fn wait_fully_replicated(&self, topics: &[&str], timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let mut all = true;
            for t in topics {
                let ok = self.partitions(t).await.is_some_and(|ps| {
                    !ps.is_empty() && ps.iter().all(|p| p.leader >= 0 && p.isr.len() == p.replicas.len())
                });
                all &= ok;
            }
            if all {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Waits until no partition of `topic` is led by `id` any more and each has a leader; the
    /// time it took, or `None` after `timeout`.
    pub async fn wait_leadership_moved(&self, topic: &str, id: i32, timeout: Duration) -> Option<Duration> {
        let t0 = Instant::now();
        loop {
            let leaders = self.leaders(topic).await;
            if !leaders.is_empty() && leaders.values().all(|&l| l >= 0 && l != id) {
                return Some(t0.elapsed());
            }
            if t0.elapsed() >= timeout {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs Kafka's preferred leader election on every partition of the cluster (leadership
    /// back to the first replica of each, as after a fresh start; the broker does the same by
    /// itself only every 5 minutes). Partitions already led by their preferred replica are left.
    pub async fn elect_preferred_leaders(&self) {
        let _ = self
            .run(&[
                "kafka-tool",
                "org.apache.kafka.tools.LeaderElectionCommand",
                "--bootstrap-server",
                &self.bootstrap,
                "--election-type",
                "PREFERRED",
                "--all-topic-partitions",
            ])
            .await;
    }
}

impl Brokers {
    /// The end offset of each partition of `topic` whose leader answers within 2 s (a
    /// partition led by a dead or cut-off broker is left out instead of failing the call).
    pub async fn end_offsets(&self, topic: &str) -> HashMap<i32, i64> {
        let client = self.metadata_client();
        let topic = topic.to_owned();
        tokio::task::spawn_blocking(move || {
            let Ok(metadata) = client.fetch_metadata(Some(&topic), Duration::from_secs(5)) else {
                return HashMap::new();
            };
            let partitions: Vec<i32> =
                metadata.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect();
            partitions
                .into_iter()
                .filter_map(|p| {
                    client.fetch_watermarks(&topic, p, Duration::from_secs(2)).ok().map(|(_, high)| (p, high))
                })
                .collect()
        })
        .await
        .unwrap_or_default()
    }

    /// The partitions of `topic` that received records during `window`.
    pub async fn partitions_receiving(&self, topic: &str, window: Duration) -> Vec<i32> {
        let before = self.end_offsets(topic).await;
        tokio::time::sleep(window).await;
        let after = self.end_offsets(topic).await;
        let mut growing: Vec<i32> =
            after.iter().filter(|(p, end)| before.get(p).is_some_and(|b| *end > b)).map(|(p, _)| *p).collect();
        growing.sort_unstable();
        growing
    }
}

/// Where the script keeps broker `id`'s logs.
fn log_dir(id: i32) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../.local/kafka-cluster/broker-{id}/logs"))
}

/// `[2026-11-27 04:31:36,866] INFO ...` → the stamp (the brokers log in local time).
fn stamp(line: &str) -> Option<chrono::NaiveDateTime> {
    let end = line.find(']')?;
    chrono::NaiveDateTime::parse_from_str(line.get(1..end)?, "%Y-%m-%d %H:%M:%S,%3f").ok()
}

impl Brokers {
    /// Lines of every broker's `server.log` and `state-change.log` stamped at or after `since`
    /// that contain all of `needles`, with their stamp and broker, oldest first.
    pub fn log_lines(
        &self,
        since: chrono::NaiveDateTime,
        needles: &[&str],
    ) -> Vec<(chrono::NaiveDateTime, i32, String)> {
        let mut found = Vec::new();
        for &id in &self.ids {
            for file in ["server.log", "state-change.log"] {
                let text = std::fs::read_to_string(log_dir(id).join(file)).unwrap_or_default();
                for line in text.lines().filter(|l| needles.iter().all(|n| l.contains(n))) {
                    if let Some(at) = stamp(line).filter(|at| *at >= since) {
                        found.push((at, id, line.to_owned()));
                    }
                }
            }
        }
        found.sort();
        found.dedup_by(|a, b| a.2 == b.2);
        found
    }

    /// When, by the brokers' own logs, a new leader of `topic`-`partition` started serving
    /// after `since`: the stamp of the new leader's "starts at leader epoch" line.
    pub fn leader_started(
        &self,
        topic: &str,
        partition: i32,
        since: chrono::NaiveDateTime,
    ) -> Option<(chrono::NaiveDateTime, i32)> {
        let name = format!("Leader {topic}-{partition} with topic id");
        self.log_lines(since, &[&name, "starts at leader epoch"]).first().map(|(at, id, _)| (*at, *id))
    }
}

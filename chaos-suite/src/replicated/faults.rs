//! The broker faults of the replicated scenarios, each placed on the broker that matters at
//! that moment (the leader of loaded partitions, the active controller) and followed through
//! its failover and the broker's restart.

use std::time::{Duration, Instant};

use integration_tests::wait;

use super::rig::{progress, Rig};
use super::FAILOVER_TIMEOUT;

impl Rig {
    /// kill -9 of the leader of the loaded partitions of `topic`, failover, restart.
    pub(super) async fn kill_loaded_leader(&mut self, label: &str, topic: &str) {
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
    pub(super) async fn kill_active_controller(&mut self) {
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
    pub(super) async fn kill_leader_with_followers_behind(&mut self) {
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
}

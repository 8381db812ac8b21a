//! Declares the topics a service owns, so a consumer never waits on a topic that nobody has
//! written to yet and a DLQ exists before its first dead letter (brokers in production usually
//! refuse to auto-create topics), with the durability settings a replicated cluster needs.
//!
//! On a cluster of N brokers a declared topic gets, by default ([`TopicPolicy`]; a service sets
//! it from the variables of the kit's [`TopicArgs`](crate::service::TopicArgs)):
//!
//! | setting | default | variable |
//! |---|---|---|
//! | replication factor | min(3, N) | `TOPIC_REPLICATION_FACTOR` |
//! | `min.insync.replicas` | replication factor − 1, at least 1 | `TOPIC_MIN_INSYNC_REPLICAS` |
//! | `unclean.leader.election.enable` | `false` | `TOPIC_UNCLEAN_LEADER_ELECTION` |
//! | partitions | the broker's `num.partitions` | `TOPIC_PARTITIONS` |
//!
//! With replication factor 3 and `min.insync.replicas` 2, an `acks=all` write is on two
//! brokers before it is acknowledged, one broker may fail without refusing writes, and a
//! replica that missed acknowledged writes never becomes leader. A topic that already exists is
//! left as it is; when its settings are weaker than these, a warning names each one.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use crate::kafka::KafkaSettings;

/// How declared topics are replicated; `None` fields follow the cluster's size.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicPolicy {
    /// `None`: min(3, brokers).
    pub replication_factor: Option<i32>,
    /// `None`: replication factor − 1, at least 1.
    pub min_insync_replicas: Option<i32>,
    /// Whether an out-of-sync replica may become leader (loses acknowledged writes). Off.
    pub unclean_leader_election: bool,
    /// `None`: the broker's default.
    pub partitions: Option<i32>,
}

/// The settings a topic gets on a given cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Durability {
    pub replication_factor: i32,
    pub min_insync_replicas: i32,
    pub unclean_leader_election: bool,
}

impl TopicPolicy {
    /// The settings for a cluster of `brokers` live brokers.
    pub fn resolve(&self, brokers: usize) -> Durability {
        let brokers = i32::try_from(brokers).unwrap_or(i32::MAX).max(1);
        let replication_factor = self.replication_factor.unwrap_or(brokers.min(3));
        Durability {
            replication_factor,
            min_insync_replicas: self.min_insync_replicas.unwrap_or((replication_factor - 1).max(1)),
            unclean_leader_election: self.unclean_leader_election,
        }
    }
}

/// One way an existing topic is less durable than the policy asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Weakness {
    pub topic: String,
    pub setting: &'static str,
    pub actual: String,
    pub wanted: String,
}

impl Durability {
    /// How `actual` (replication factor, and the topic's configs) falls short of `self`.
    fn shortfalls(
        &self,
        topic: &str,
        replication_factor: i32,
        min_isr: Option<i32>,
        unclean: Option<bool>,
    ) -> Vec<Weakness> {
        let mut weak = Vec::new();
        let mut note = |setting, actual: String, wanted: String| {
            weak.push(Weakness { topic: topic.to_owned(), setting, actual, wanted });
        };
        if replication_factor < self.replication_factor {
            note("replication factor", replication_factor.to_string(), self.replication_factor.to_string());
        }
        if let Some(m) = min_isr.filter(|m| *m < self.min_insync_replicas) {
            note("min.insync.replicas", m.to_string(), self.min_insync_replicas.to_string());
        }
        if unclean == Some(true) && !self.unclean_leader_election {
            note("unclean.leader.election.enable", "true".into(), "false".into());
        }
        weak
    }
}

fn admin_options() -> AdminOptions {
    AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))).request_timeout(Some(Duration::from_secs(15)))
}

/// Live brokers, and for each of `topics` that exists its smallest replica count.
async fn cluster_view(
    kafka: &KafkaSettings,
    topics: &[&str],
) -> Result<(usize, Vec<(String, Option<i32>)>), KafkaError> {
    let client: BaseConsumer = kafka.client_config().create()?;
    let topics: Vec<String> = topics.iter().map(|t| (*t).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let metadata = client.fetch_metadata(None, Duration::from_secs(10))?;
        let existing = topics
            .iter()
            .map(|t| {
                let rf = metadata
                    .topics()
                    .iter()
                    .find(|m| m.name() == t && m.error().is_none() && !m.partitions().is_empty())
                    .and_then(|m| m.partitions().iter().map(|p| p.replicas().len()).min())
                    .map(|n| i32::try_from(n).unwrap_or(i32::MAX));
                (t.clone(), rf)
            })
            .collect();
        Ok((metadata.brokers().len(), existing))
    })
    .await
    .map_err(|_| KafkaError::Canceled)?
}

/// Why topics could not be declared.
/// Creates each of `topics` that does not exist yet with the [`TopicPolicy`] resolved for the
/// cluster's size; warns about each existing topic whose settings are weaker
/// ([`check_durability`]). Existing topics are never changed.
pub async fn ensure_exist_with(kafka: &KafkaSettings, topics: &[&str], policy: &TopicPolicy) -> Result<(), KafkaError> {
    let (brokers, existing) = cluster_view(kafka, topics).await?;
    let durability = policy.resolve(brokers);
    let min_isr = durability.min_insync_replicas.to_string();
    let unclean = durability.unclean_leader_election.to_string();
    let missing: Vec<&str> = existing.iter().filter(|(_, rf)| rf.is_none()).map(|(t, _)| t.as_str()).collect();
    if !missing.is_empty() {
        let admin: AdminClient<DefaultClientContext> = kafka.client_config().create()?;
        let new: Vec<NewTopic<'_>> = missing
            .iter()
            .map(|t| {
                NewTopic::new(
                    t,
                    policy.partitions.unwrap_or(-1),
                    TopicReplication::Fixed(durability.replication_factor),
                )
                .set("min.insync.replicas", &min_isr)
                .set("unclean.leader.election.enable", &unclean)
            })
            .collect();
        for result in admin.create_topics(&new, &admin_options()).await? {
            match result {
                Ok(topic) => tracing::info!(
                    %topic,
                    replication_factor = durability.replication_factor,
                    min_insync_replicas = durability.min_insync_replicas,
                    unclean_leader_election = durability.unclean_leader_election,
                    brokers,
                    "topic created"
                ),
                // Another instance was faster; its settings are checked below like any other.
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => {
                    tracing::warn!(%topic, ?code, "could not create topic");
                    return Err(KafkaError::AdminOp(code));
                }
            }
        }
    }
    check_durability(kafka, topics, policy).await.map(|_| ())
}

/// For a service that publishes to topics it does not declare (the gateway): checks them once
/// in the background against `policy` and logs what is weaker.
pub fn spawn_durability_check(kafka: KafkaSettings, topics: Vec<String>, policy: TopicPolicy) {
    tokio::spawn(async move {
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        if let Err(e) = check_durability(&kafka, &names, &policy).await {
            tracing::info!(error = %e, ?topics, "could not check topic durability (broker unreachable?)");
        }
    });
}

/// Compares each existing topic of `topics` with the policy resolved for the cluster's size,
/// logs a warning naming every weaker setting, and returns them. Topics that do not exist are
/// skipped.
pub async fn check_durability(
    kafka: &KafkaSettings,
    topics: &[&str],
    policy: &TopicPolicy,
) -> Result<Vec<Weakness>, KafkaError> {
    let (brokers, existing) = cluster_view(kafka, topics).await?;
    let durability = policy.resolve(brokers);
    let present: Vec<(String, i32)> = existing.into_iter().filter_map(|(t, rf)| rf.map(|rf| (t, rf))).collect();
    if present.is_empty() {
        return Ok(Vec::new());
    }
    let admin: AdminClient<DefaultClientContext> = kafka.client_config().create()?;
    let specifiers: Vec<ResourceSpecifier<'_>> = present.iter().map(|(t, _)| ResourceSpecifier::Topic(t)).collect();
    let configs = admin.describe_configs(&specifiers, &admin_options()).await?;
    let mut weaknesses = Vec::new();
    for ((topic, rf), config) in present.iter().zip(configs) {
        let config = config.map_err(KafkaError::AdminOp)?;
        let value = |name: &str| config.get(name).and_then(|e| e.value.clone());
        let min_isr = value("min.insync.replicas").and_then(|v| v.parse().ok());
        let unclean = value("unclean.leader.election.enable").and_then(|v| v.parse().ok());
        for weak in durability.shortfalls(topic, *rf, min_isr, unclean) {
            tracing::warn!(
                topic = %weak.topic,
                setting = weak.setting,
                actual = %weak.actual,
                wanted = %weak.wanted,
                brokers,
                "topic is less durable than declared: {} is {}, the policy asks for {} (acknowledged writes may be lost when a broker fails)",
                weak.setting,
                weak.actual,
                weak.wanted
            );
            weaknesses.push(weak);
        }
    }
    Ok(weaknesses)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_cluster_size() {
        let policy = TopicPolicy::default();
        let d = |rf, min_isr| Durability {
            replication_factor: rf,
            min_insync_replicas: min_isr,
            unclean_leader_election: false,
        };
        assert_eq!(policy.resolve(1), d(1, 1), "a single broker keeps working with RF 1");
        assert_eq!(policy.resolve(2), d(2, 1));
        assert_eq!(policy.resolve(3), d(3, 2));
        assert_eq!(policy.resolve(7), d(3, 2), "three copies are enough; more brokers do not raise it");
    }

    #[test]
    fn explicit_settings_win() {
        let policy = TopicPolicy { replication_factor: Some(5), min_insync_replicas: None, ..TopicPolicy::default() };
        assert_eq!(policy.resolve(3).replication_factor, 5);
        assert_eq!(policy.resolve(3).min_insync_replicas, 4);
        let policy = TopicPolicy { min_insync_replicas: Some(1), ..TopicPolicy::default() };
        assert_eq!(policy.resolve(3).min_insync_replicas, 1);
    }

    #[test]
    fn every_weaker_setting_is_named() {
        let wanted = TopicPolicy::default().resolve(3);
        let weak = wanted.shortfalls("t", 1, Some(1), Some(true));
        let names: Vec<&str> = weak.iter().map(|w| w.setting).collect();
        assert_eq!(names, ["replication factor", "min.insync.replicas", "unclean.leader.election.enable"]);
        assert!(wanted.shortfalls("t", 3, Some(2), Some(false)).is_empty());
        assert!(wanted.shortfalls("t", 3, Some(3), None).is_empty(), "stronger is not weaker");
    }
}

//! How declared topics are replicated, as flattenable arguments: used by the consumer services,
//! which declare their topics, and by the gateway, which only checks the topic it publishes to
//! against the same policy.

use crate::kafka::topics::TopicPolicy;

/// `TOPIC_*`; unset values follow the cluster's size, as [`TopicPolicy`] describes. A service
/// that only publishes checks its topics against the same policy.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Topic policy")]
pub struct TopicArgs {
    /// Replication factor of declared topics [default: min(3, brokers)].
    #[arg(long, env = "TOPIC_REPLICATION_FACTOR", value_parser = clap::value_parser!(i32).range(1..))]
    pub topic_replication_factor: Option<i32>,
    /// `min.insync.replicas` of declared topics [default: replication factor − 1, at least 1].
    #[arg(long, env = "TOPIC_MIN_INSYNC_REPLICAS", value_parser = clap::value_parser!(i32).range(1..))]
    pub topic_min_insync_replicas: Option<i32>,
    /// Whether an out-of-sync replica may become leader (loses acknowledged writes).
    #[arg(long, env = "TOPIC_UNCLEAN_LEADER_ELECTION", default_value_t = false, action = clap::ArgAction::Set)]
    pub topic_unclean_leader_election: bool,
    /// Partitions of declared topics [default: the broker's default].
    #[arg(long, env = "TOPIC_PARTITIONS", value_parser = clap::value_parser!(i32).range(1..))]
    pub topic_partitions: Option<i32>,
}

impl TopicArgs {
    pub fn policy(&self) -> TopicPolicy {
        TopicPolicy {
            replication_factor: self.topic_replication_factor,
            min_insync_replicas: self.topic_min_insync_replicas,
            unclean_leader_election: self.topic_unclean_leader_election,
            partitions: self.topic_partitions,
        }
    }
}

//! Consumer-group plumbing that every member in the workspace shares: the consumer and the
//! dlq-worker are both members that commit only what is durable, never a partition they lost,
//! and pause without leaving the group.
//!
//! * [`TopicPartition`], [`CommitPosition`] and [`commit_list`]: naming a partition and what to
//!   commit for it (`partition.rs`);
//! * [`group_member_config`]: the librdkafka settings of a member (below);
//! * [`GroupContext`] with a [`PartitionBook`]: the rebalance callbacks (`context.rs`);
//! * the two books: [`Ownership`] for a member that finishes each partition in order
//!   (`ownership.rs`), [`OffsetTracker`] for one that finishes out of order (`offset_tracker.rs`);
//! * pausing, holding a record back and polling while paused (`pausing.rs`);
//! * [`PartitionLag`] of the assigned partitions, kept current by [`monitor_lag`] (`lag.rs`).

mod context;
mod lag;
mod offset_tracker;
mod ownership;
mod partition;
mod pausing;

use rdkafka::ClientConfig;

pub use context::{GroupContext, GroupGauges, PartitionBook};
pub use lag::{monitor_lag, partition_lags, PartitionLag};
pub use offset_tracker::OffsetTracker;
pub use ownership::{lock_ownership, Ownership};
pub use partition::{commit_list, CommitPosition, TopicPartition};
pub use pausing::{hold_back, keep_membership_for, set_assignment_paused, wake_fetchers};

use super::KafkaSettings;

/// The librdkafka configuration of every consumer-group member in the workspace (the
/// reliable consumer and the dlq-worker's own consumer): the
/// connection from `kafka`, the group, reading from the earliest offset when the group has
/// none, and offsets stored and committed only by the code, after the outcome is durable.
pub fn group_member_config(kafka: &KafkaSettings, group_id: &str) -> ClientConfig {
    let mut config = kafka.client_config();
    config
        .set("group.id", group_id)
        .set("auto.offset.reset", "earliest")
        // A crashed member is noticed after this long; short so a restart resumes quickly.
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "1500")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false");
    config
}

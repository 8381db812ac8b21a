//! Naming a partition, and the position a member commits for it.

use std::fmt;

use rdkafka::error::KafkaResult;
use rdkafka::{Offset, TopicPartitionList};

/// A partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        Self { topic: topic.into(), partition }
    }

    /// Every partition of an rdkafka list, in its order.
    pub fn all_of(list: &TopicPartitionList) -> Vec<Self> {
        list.elements().iter().map(|e| Self::new(e.topic(), e.partition())).collect()
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

/// A position to commit: the offset of the next record to read after a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitPosition {
    pub partition: TopicPartition,
    pub next_offset: i64,
}

/// The commit request for `positions`.
pub fn commit_list(positions: &[CommitPosition]) -> KafkaResult<TopicPartitionList> {
    let mut list = TopicPartitionList::with_capacity(positions.len());
    for p in positions {
        list.add_partition_offset(&p.partition.topic, p.partition.partition, Offset::Offset(p.next_offset))?;
    }
    Ok(list)
}

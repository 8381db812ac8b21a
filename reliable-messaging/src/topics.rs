//! Declares the topics a service owns, so a consumer never waits on a topic that nobody has
//! written to yet and a DLQ exists before its first dead letter (brokers in production usually
//! refuse to auto-create topics).

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use crate::settings::KafkaSettings;

/// Creates each of `topics` that does not exist yet, with the broker's default partition
/// count and replication factor (`-1`, KIP-464). Existing topics are left as they are.
pub async fn ensure_exist(kafka: &KafkaSettings, topics: &[&str]) -> Result<(), KafkaError> {
    let admin: AdminClient<DefaultClientContext> = kafka.client_config().create()?;
    let new: Vec<NewTopic<'_>> = topics.iter().map(|t| NewTopic::new(t, -1, TopicReplication::Fixed(-1))).collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))).request_timeout(Some(Duration::from_secs(15)));
    for result in admin.create_topics(&new, &options).await? {
        match result {
            Ok(topic) => tracing::info!(%topic, "topic created"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(KafkaError::AdminOp(code)).inspect_err(|_| tracing::warn!(%topic, ?code, "could not create topic")),
        }
    }
    Ok(())
}

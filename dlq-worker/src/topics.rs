//! Whether a topic exists, asked of the broker without ever creating it.
//!
//! The worker must not re-send to a topic that does not exist: with the broker's
//! `auto.create.topics.enable` the send would silently create an empty topic nobody consumes,
//! and the message would be lost in plain sight. It parks such messages instead.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaRespErr;
use reliable_messaging::KafkaSettings;
use tokio::time::Instant;

/// How long a topic seen to exist is assumed to still exist, to spare the broker one metadata
/// request per message.
const KNOWN_TTL: Duration = Duration::from_secs(10);
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum TopicLookupError {
    #[error("could not ask the broker about topic {topic}: {source}")]
    Broker { topic: String, source: KafkaError },
    #[error("topic lookup task failed: {0}")]
    Task(String),
}

#[derive(Clone)]
pub struct TopicCatalog {
    /// A group-less consumer used only for metadata; `allow.auto.create.topics=false` makes
    /// the metadata request itself never create a topic.
    client: Arc<BaseConsumer>,
    known: Arc<Mutex<HashMap<String, Instant>>>,
}

impl TopicCatalog {
    pub fn new(kafka: &KafkaSettings) -> Result<Self, KafkaError> {
        let mut config = kafka.client_config();
        config.set("allow.auto.create.topics", "false");
        let client: BaseConsumer = config.create()?;
        Ok(Self { client: Arc::new(client), known: Arc::default() })
    }

    pub async fn exists(&self, topic: &str) -> Result<bool, TopicLookupError> {
        if let Some(seen) = self.known.lock().expect("topic cache lock").get(topic) {
            if seen.elapsed() < KNOWN_TTL {
                return Ok(true);
            }
        }
        let client = self.client.clone();
        let name = topic.to_owned();
        let metadata = tokio::task::spawn_blocking(move || client.fetch_metadata(Some(&name), METADATA_TIMEOUT))
            .await
            .map_err(|e| TopicLookupError::Task(e.to_string()))?
            .map_err(|source| TopicLookupError::Broker { topic: topic.to_owned(), source })?;
        let exists = metadata.topics().iter().any(|t| {
            t.name() == topic
                && !matches!(t.error(), Some(RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART))
                && !t.partitions().is_empty()
        });
        if exists {
            self.known.lock().expect("topic cache lock").insert(topic.to_owned(), Instant::now());
        }
        Ok(exists)
    }
}

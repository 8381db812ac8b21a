//! Topics for tests: unique names, creation, producing raw records and reading them back.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Header as KafkaHeader, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use reliable_messaging::Delivery;
use uuid::Uuid;

use crate::TestEnv;

impl TestEnv {
    /// `prefix-<random>`: each test gets its own topics.
    pub fn unique_topic(&self, prefix: &str) -> String {
        format!("{prefix}-{}", &Uuid::new_v4().simple().to_string()[..12])
    }

    fn config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.kafka_bootstrap).set("log_level", "3");
        c
    }

    /// Creates `topics` with `partitions` each (replication factor 1) and waits until the
    /// broker serves their metadata.
    pub async fn create_topics(&self, topics: &[&str], partitions: i32) {
        let admin: AdminClient<DefaultClientContext> = self.config().create().expect("admin client");
        let new: Vec<NewTopic<'_>> =
            topics.iter().map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(1))).collect();
        let results = admin
            .create_topics(&new, &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))))
            .await
            .expect("create topics");
        for r in results {
            if let Err((topic, code)) = r {
                if code != rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists {
                    panic!("could not create topic {topic}: {code:?}");
                }
            }
        }
        let consumer: StreamConsumer = self.config().create().expect("metadata client");
        for t in topics {
            crate::wait::until(Duration::from_secs(15), &format!("topic {t} is served"), || {
                let ok = consumer
                    .fetch_metadata(Some(t), Duration::from_secs(2))
                    .map(|m| {
                        m.topics().iter().any(|mt| mt.error().is_none() && mt.partitions().len() as i32 == partitions)
                    })
                    .unwrap_or(false);
                async move { ok }
            })
            .await;
        }
    }

    pub fn producer(&self) -> FutureProducer {
        self.config().set("acks", "all").set("enable.idempotence", "true").create().expect("producer")
    }

    /// Produces one raw record and waits for the acknowledgement.
    pub async fn produce(&self, topic: &str, key: Option<&[u8]>, payload: Option<&[u8]>, headers: &[(&str, &[u8])]) {
        let producer = self.producer();
        produce_with(&producer, topic, key, payload, headers).await;
    }

    /// Reads `topic` from the beginning with a throwaway group until `expected` records
    /// arrived or `timeout` passed, and returns what it read.
    pub async fn read_topic(&self, topic: &str, expected: usize, timeout: Duration) -> Vec<Delivery> {
        let consumer: StreamConsumer = self
            .config()
            .set("group.id", format!("test-reader-{}", Uuid::new_v4()))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .create()
            .expect("reader");
        consumer.subscribe(&[topic]).expect("subscribe");
        let mut records = Vec::new();
        let deadline = tokio::time::Instant::now() + timeout;
        while records.len() < expected {
            match tokio::time::timeout_at(deadline, consumer.recv()).await {
                Ok(Ok(m)) => records.push(Delivery::from_message(&m)),
                Ok(Err(e)) => panic!("reading {topic}: {e}"),
                Err(_) => break,
            }
        }
        records
    }

    /// The end offset of every partition of `topic` (sum = records ever written).
    pub fn end_offsets(&self, topic: &str) -> HashMap<i32, i64> {
        let consumer: StreamConsumer = self.config().create().expect("metadata client");
        let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(5)).expect("metadata");
        let mut ends = HashMap::new();
        for t in metadata.topics() {
            for p in t.partitions() {
                let (_, high) = consumer.fetch_watermarks(topic, p.id(), Duration::from_secs(5)).expect("watermarks");
                ends.insert(p.id(), high);
            }
        }
        ends
    }
}

pub async fn produce_with(
    producer: &FutureProducer,
    topic: &str,
    key: Option<&[u8]>,
    payload: Option<&[u8]>,
    headers: &[(&str, &[u8])],
) {
    let mut owned = OwnedHeaders::new();
    for (k, v) in headers {
        owned = owned.insert(KafkaHeader { key: k, value: Some(*v) });
    }
    let mut record = FutureRecord::<[u8], [u8]>::to(topic).headers(owned);
    if let Some(k) = key {
        record = record.key(k);
    }
    if let Some(p) = payload {
        record = record.payload(p);
    }
    producer.send(record, Duration::from_secs(10)).await.map_err(|(e, _)| e).expect("produce");
}

/// Errors of a group coordinator that is still being elected or loaded.
fn coordinator_not_ready(error: &rdkafka::error::KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode::{CoordinatorLoadInProgress, CoordinatorNotAvailable, NotCoordinator};
    matches!(error.rdkafka_error_code(), Some(NotCoordinator | CoordinatorLoadInProgress | CoordinatorNotAvailable))
}

impl TestEnv {
    /// Offsets committed by consumer `group` on `topic`, per partition (missing = none yet).
    pub fn committed_offsets(&self, group: &str, topic: &str) -> HashMap<i32, i64> {
        let consumer: StreamConsumer = self.config().set("group.id", group).create().expect("offset reader");
        let partitions: Vec<i32> = self.end_offsets(topic).keys().copied().collect();
        let mut tpl = rdkafka::TopicPartitionList::new();
        for p in partitions {
            tpl.add_partition(topic, p);
        }
        // On a freshly formatted broker the group coordinator (and `__consumer_offsets`) may
        // not exist yet: the first lookups answer "not coordinator" or "loading". Those pass;
        // anything else, or a coordinator still missing after 30 s, fails the test.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let committed = loop {
            match consumer.committed_offsets(tpl.clone(), Duration::from_secs(5)) {
                Ok(committed) => break committed,
                Err(e) if coordinator_not_ready(&e) && std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(250));
                }
                Err(e) => panic!("committed offsets: {e}"),
            }
        };
        committed
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                rdkafka::Offset::Offset(o) => Some((e.partition(), o)),
                _ => None,
            })
            .collect()
    }

    /// Whether `group` has committed up to the end of every partition of `topic`.
    pub fn group_caught_up(&self, group: &str, topic: &str) -> bool {
        let committed = self.committed_offsets(group, topic);
        self.end_offsets(topic).iter().all(|(p, end)| *end == 0 || committed.get(p) == Some(end))
    }
}

impl TestEnv {
    /// Every record of `topic` from `from` (per partition; missing = from the start) up to the
    /// current end.
    pub async fn records_after(&self, topic: &str, from: &HashMap<i32, i64>) -> Vec<Delivery> {
        let ends = self.end_offsets(topic);
        let consumer: StreamConsumer = self
            .config()
            .set("group.id", format!("test-reader-{}", Uuid::new_v4()))
            .set("enable.auto.commit", "false")
            .create()
            .expect("reader");
        let mut tpl = rdkafka::TopicPartitionList::new();
        let mut expected = 0i64;
        for (p, end) in &ends {
            let start = from.get(p).copied().unwrap_or(0);
            expected += (end - start).max(0);
            tpl.add_partition_offset(topic, *p, rdkafka::Offset::Offset(start)).expect("offset");
        }
        consumer.assign(&tpl).expect("assign");
        let mut records = Vec::new();
        while (records.len() as i64) < expected {
            match tokio::time::timeout(Duration::from_secs(10), consumer.recv()).await {
                Ok(Ok(m)) => records.push(Delivery::from_message(&m)),
                Ok(Err(e)) => panic!("reading {topic}: {e}"),
                Err(_) => break,
            }
        }
        records
    }
}

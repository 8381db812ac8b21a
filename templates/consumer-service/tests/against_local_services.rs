//! Runs the built `consumer-service-template` binary against the real broker and database
//! (`KAFKA_BOOTSTRAP_SERVERS`, `DATABASE_URL`; `scripts/local-services.sh up` starts both and
//! `scripts/local-services.sh env` prints them), with the handler's own examples: every message
//! gets a durable outcome (the group's committed offset reaches the end of the topic), the poison
//! one and only it reaches `<topic>-dlq`. What the handler stores is `tests/handler.rs`'s concern,
//! so this test survives a new handler as long as its examples are true of it.

use std::fs::File;
use std::process::{Child, Command};
use std::str::FromStr;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use sqlx::mysql::MySqlConnectOptions;
use sqlx::ConnectOptions;

// The service's own crate last: its name changes with every generated service.
use consumer_service_template::handler::examples;

const WITHIN: Duration = Duration::from_secs(60);

fn required(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run `scripts/local-services.sh up` and `eval \"$(scripts/local-services.sh env)\"`")
    })
}

/// The service process, killed when dropped so that a failing test leaves nothing running.
struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn every_example_gets_a_durable_outcome_and_only_poison_is_dead_lettered() {
    let bootstrap = required("KAFKA_BOOTSTRAP_SERVERS");
    let server = MySqlConnectOptions::from_str(&required("DATABASE_URL")).expect("DATABASE_URL is a MySQL URL");
    let run = uuid::Uuid::new_v4().simple().to_string();
    // This run's own database (the service creates and migrates it) and topics.
    let database = format!("consumer_service_template_test_{}", &run[..12]);
    let topic = format!("consumer-service-template-test-{run}");
    let dead_letters = format!("{topic}-dlq");
    let kafka = |extra: &[(&str, &str)]| {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &bootstrap);
        extra.iter().for_each(|(k, v)| {
            config.set(*k, *v);
        });
        config
    };
    let admin: AdminClient<DefaultClientContext> = kafka(&[]).create().expect("admin client");
    let new = [&topic, &dead_letters].map(|t| NewTopic::new(t, 1, TopicReplication::Fixed(1)));
    admin.create_topics(&new, &AdminOptions::new()).await.expect("create the test topics");

    let log = std::env::temp_dir().join(format!("{topic}.log"));
    let service = Service(
        Command::new(env!("CARGO_BIN_EXE_consumer-service-template"))
            .env("KAFKA_BOOTSTRAP_SERVERS", &bootstrap)
            .env("DATABASE_URL", server.clone().database(&database).to_url_lossy().to_string())
            .env("CONSUMER_SERVICE_TEMPLATE_TOPIC", &topic)
            .env("CONSUMER_GROUP", format!("{topic}-group"))
            .env("CONSUMER_SERVICE_TEMPLATE_ADDR", "127.0.0.1:0")
            .stdout(File::create(&log).expect("log file"))
            .spawn()
            .expect("start the service"),
    );

    let producer: FutureProducer = kafka(&[("acks", "all")]).create().expect("producer");
    let sent: Vec<&str> = examples::ACCEPTED.iter().copied().chain([examples::POISON]).collect();
    for payload in &sent {
        producer
            .send(FutureRecord::<(), _>::to(&topic).payload(*payload), Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)
            .expect("produce");
    }

    let reader: StreamConsumer = kafka(&[("group.id", &format!("{topic}-reader")), ("auto.offset.reset", "earliest")])
        .create()
        .expect("consumer");
    reader.subscribe(&[&dead_letters]).expect("subscribe to the DLQ");
    let dead = tokio::time::timeout(WITHIN, reader.recv())
        .await
        .unwrap_or_else(|_| panic!("nothing reached {dead_letters}; service log: {}", log.display()))
        .expect("read the DLQ");
    assert_eq!(dead.payload(), Some(examples::POISON.as_bytes()));

    // Committed past every message: each one has a durable outcome (stored or dead-lettered).
    let group = kafka(&[("group.id", &format!("{topic}-group"))]).create::<BaseConsumer>().expect("group reader");
    let committed = wait_for_commit(&group, &topic, sent.len() as i64).await;
    assert_eq!(committed, sent.len() as i64, "service log: {}", log.display());
    let (_, dead_lettered) =
        group.fetch_watermarks(&dead_letters, 0, Duration::from_secs(10)).expect("the DLQ's end offset");
    assert_eq!(dead_lettered, 1, "only the poison example is dead-lettered; service log: {}", log.display());

    drop(service);
    let mut conn = server.connect().await.expect("connect to the server");
    sqlx::query(&format!("DROP DATABASE `{database}`")).execute(&mut conn).await.expect("drop the test database");
    let _ = std::fs::remove_file(log);
}

/// The service group's committed offset of partition 0 once it reaches `end` (or the last one
/// seen, after [`WITHIN`]).
async fn wait_for_commit(group: &BaseConsumer, topic: &str, end: i64) -> i64 {
    let mut partition = TopicPartitionList::new();
    partition.add_partition(topic, 0);
    let started = Instant::now();
    loop {
        let committed = group
            .committed_offsets(partition.clone(), Duration::from_secs(10))
            .ok()
            .and_then(|list| list.find_partition(topic, 0).map(|p| p.offset()));
        let offset = match committed {
            Some(Offset::Offset(offset)) => offset,
            _ => -1,
        };
        if offset >= end || started.elapsed() > WITHIN {
            return offset;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

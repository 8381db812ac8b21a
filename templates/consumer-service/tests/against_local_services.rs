//! Runs the built `consumer-service-template` binary against the real broker and database
//! (`KAFKA_BOOTSTRAP_SERVERS`, `DATABASE_URL`; `scripts/local-services.sh up` starts both and
//! `scripts/local-services.sh env` prints them): a JSON message is stored, once; a message that
//! is not JSON is dead-lettered to `<topic>-dlq` and stores nothing.

use std::fs::File;
use std::process::{Child, Command};
use std::str::FromStr;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message};
use sqlx::mysql::MySqlConnectOptions;
use sqlx::{ConnectOptions, Connection};

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
async fn stores_a_message_once_and_dead_letters_poison() {
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
    for payload in [r#"{"hello":"world"}"#, "not json"] {
        producer
            .send(FutureRecord::<(), _>::to(&topic).payload(payload), Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)
            .expect("produce");
    }

    let group = format!("{topic}-reader");
    let reader: StreamConsumer =
        kafka(&[("group.id", &group), ("auto.offset.reset", "earliest")]).create().expect("consumer");
    reader.subscribe(&[&dead_letters]).expect("subscribe to the DLQ");
    let dead = tokio::time::timeout(WITHIN, reader.recv())
        .await
        .unwrap_or_else(|_| panic!("nothing reached {dead_letters}; service log: {}", log.display()))
        .expect("read the DLQ");
    assert_eq!(dead.payload(), Some(&b"not json"[..]));

    let rows = stored_payloads(&server.clone().database(&database)).await;
    assert_eq!(rows, vec![br#"{"hello":"world"}"#.to_vec()], "service log: {}", log.display());

    drop(service);
    let mut conn = server.connect().await.expect("connect to the server");
    sqlx::query(&format!("DROP DATABASE `{database}`")).execute(&mut conn).await.expect("drop the test database");
    let _ = std::fs::remove_file(log);
}

/// The payloads in `received_messages` once the JSON message is there (the database and the
/// table appear only once the service has started).
async fn stored_payloads(options: &MySqlConnectOptions) -> Vec<Vec<u8>> {
    let started = Instant::now();
    loop {
        let read = async {
            let mut conn = options.connect().await?;
            let rows: Vec<Vec<u8>> =
                sqlx::query_scalar("SELECT payload FROM received_messages").fetch_all(&mut conn).await?;
            conn.close().await?;
            Ok::<_, sqlx::Error>(rows)
        };
        match read.await {
            Ok(rows) if !rows.is_empty() => return rows,
            _ if started.elapsed() > WITHIN => panic!("no row in received_messages within {WITHIN:?}"),
            _ => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

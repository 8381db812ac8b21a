//! The broker and database server a run uses, and the resources it creates on them: every
//! topic is `bench-<run>-<name>` and every database `bench_<run>_<name>`, so a run never
//! reads or writes anyone else's data (other engineers test against the same servers), and
//! everything it created is deleted at the end unless `--keep` is given.

use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, Context};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::{ConnectOptions, Connection, MySqlConnection, MySqlPool};
use uuid::Uuid;

pub struct Environment {
    pub kafka_bootstrap: String,
    /// A URL whose user may create databases.
    pub database_url: String,
    pub run_id: String,
    /// Brokers in the cluster: topics get the replication the services would declare there
    /// (`reliable_messaging::kafka::topics`: RF min(3, brokers), `min.insync.replicas` RF − 1).
    pub brokers: usize,
    keep: bool,
    topics: Mutex<Vec<String>>,
    databases: Mutex<Vec<String>>,
}

/// A database of this run.
pub struct BenchDatabase {
    /// For a service's `DATABASE_URL`.
    pub url: String,
    pub pool: MySqlPool,
}

impl Environment {
    /// Checks that both servers answer, with a message that says how to start them.
    pub async fn connect(kafka_bootstrap: String, database_url: String, keep: bool) -> anyhow::Result<Self> {
        let mut env = Environment {
            kafka_bootstrap,
            database_url,
            run_id: Uuid::new_v4().simple().to_string()[..8].to_owned(),
            brokers: 1,
            keep,
            topics: Mutex::default(),
            databases: Mutex::default(),
        };
        let hint = "start the local services with `scripts/local-services.sh up`";
        let mut admin = tokio::time::timeout(Duration::from_secs(10), env.server_connection())
            .await
            .map_err(|_| anyhow::anyhow!("no answer from the database server within 10 s; {hint}"))?
            .with_context(|| format!("connecting to {} ({hint})", env.database_url))?;
        admin.ping().await.context("pinging the database server")?;
        let config = env.kafka_config();
        let bootstrap = env.kafka_bootstrap.clone();
        tokio::task::spawn_blocking(move || {
            let client: BaseConsumer = config.create()?;
            client.fetch_metadata(None, Duration::from_secs(10)).map(|m| m.brokers().len())
        })
        .await?
        .with_context(|| format!("no metadata from the Kafka broker at {bootstrap} ({hint})"))
        .map(|brokers| env.brokers = brokers.max(1))?;
        Ok(env)
    }

    pub fn kafka_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.kafka_bootstrap).set("log_level", "3");
        config
    }

    async fn server_connection(&self) -> anyhow::Result<MySqlConnection> {
        let options = MySqlConnectOptions::from_str(&self.database_url).context("DATABASE_URL is not a MySQL URL")?;
        Ok(MySqlConnection::connect_with(&options).await?)
    }

    /// `bench-<run>-<name>`.
    pub fn topic_name(&self, name: &str) -> String {
        format!("bench-{}-{name}", self.run_id)
    }

    /// Creates `bench-<run>-<name>` with `partitions` partitions and waits until it is served.
    pub async fn create_topic(&self, name: &str, partitions: i32) -> anyhow::Result<String> {
        let topic = self.topic_name(name);
        let admin: AdminClient<DefaultClientContext> = self.kafka_config().create()?;
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let durability = reliable_messaging::kafka::topics::TopicPolicy::default().resolve(self.brokers);
        let min_isr = durability.min_insync_replicas.to_string();
        let results = admin
            .create_topics(
                &[NewTopic::new(&topic, partitions, TopicReplication::Fixed(durability.replication_factor))
                    .set("min.insync.replicas", &min_isr)],
                &options,
            )
            .await?;
        for result in results {
            if let Err((t, code)) = result {
                bail!("creating topic {t}: {code:?}");
            }
        }
        self.topics.lock().expect("topics lock").push(topic.clone());
        let config = self.kafka_config();
        let name = topic.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let client: BaseConsumer = config.create()?;
            let deadline = std::time::Instant::now() + Duration::from_secs(15);
            loop {
                let served = client
                    .fetch_metadata(Some(&name), Duration::from_secs(2))
                    .map(|m| {
                        m.topics().iter().any(|t| t.error().is_none() && t.partitions().len() as i32 == partitions)
                    })
                    .unwrap_or(false);
                if served {
                    return Ok(());
                }
                if std::time::Instant::now() > deadline {
                    bail!("topic {name} was created but is not served after 15 s");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
        .await??;
        Ok(topic)
    }

    /// Remembers a topic a service or tool creates by itself (e.g. `<topic>-dlq`), for cleanup.
    pub fn adopt_topic(&self, topic: String) {
        self.topics.lock().expect("topics lock").push(topic);
    }

    /// Creates `bench_<run>_<name>` (empty: the services run the migrations at start) and a
    /// small pool on it for the harness's own reads.
    pub async fn fresh_database(&self, name: &str) -> anyhow::Result<BenchDatabase> {
        let db_name = format!("bench_{}_{name}", self.run_id);
        let mut admin = self.server_connection().await?;
        sqlx::query(&format!("CREATE DATABASE `{db_name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
            .execute(&mut admin)
            .await
            .with_context(|| format!("CREATE DATABASE {db_name}"))?;
        admin.close().await.ok();
        self.databases.lock().expect("databases lock").push(db_name.clone());
        let options = MySqlConnectOptions::from_str(&self.database_url)?.database(&db_name);
        let url = options.to_url_lossy().to_string();
        let pool = MySqlPoolOptions::new().max_connections(2).connect_with(options).await?;
        Ok(BenchDatabase { url, pool })
    }

    /// Deletes every topic and database of this run (unless `--keep`).
    pub async fn cleanup(&self) {
        let topics: Vec<String> = std::mem::take(&mut *self.topics.lock().expect("topics lock"));
        let databases: Vec<String> = std::mem::take(&mut *self.databases.lock().expect("databases lock"));
        if self.keep {
            eprintln!("[bench] --keep: leaving topics {topics:?} and databases {databases:?}");
            return;
        }
        if !topics.is_empty() {
            let deleted = async {
                let admin: AdminClient<DefaultClientContext> = self.kafka_config().create()?;
                let names: Vec<&str> = topics.iter().map(String::as_str).collect();
                admin
                    .delete_topics(&names, &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))))
                    .await?;
                anyhow::Ok(())
            };
            if let Err(e) = tokio::time::timeout(Duration::from_secs(20), deleted)
                .await
                .unwrap_or_else(|_| Err(anyhow::anyhow!("timed out")))
            {
                eprintln!("[bench] could not delete topics {topics:?}: {e:#}");
            }
        }
        if let Ok(mut admin) = self.server_connection().await {
            for db in databases {
                if let Err(e) = sqlx::query(&format!("DROP DATABASE IF EXISTS `{db}`")).execute(&mut admin).await {
                    eprintln!("[bench] could not drop database {db}: {e}");
                }
            }
        }
    }
}

impl BenchDatabase {
    pub async fn count_users(&self) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(&self.pool).await?)
    }
}

//! Wires configuration, database, Kafka and the HTTP probes into a runnable application.

use std::sync::Arc;

use anyhow::Context;
use axum::routing::get;
use axum::Router;
use reliable_messaging::consumer::ConsumerStats;
use reliable_messaging::dead_letter::{dead_letter_topic, DeadLetterPublisher};
use reliable_messaging::health::{self, AssignmentCheck, BrokerCheck, ConsumingCheck, DatabaseCheck, Readiness};
use reliable_messaging::schema_migrations::{apply_migrations, SchemaStatus};
use reliable_messaging::{DurableProducer, ReliableConsumer};
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::MySqlPool;
use std::str::FromStr;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::configuration::Settings;
use crate::registration_handler::RegistrationHandler;
use crate::user_store::UserStore;

pub struct Application {
    settings: Settings,
    pool: MySqlPool,
    dead_letter_producer: DurableProducer,
    listener: TcpListener,
    stats: Arc<ConsumerStats>,
}

impl Application {
    /// Binds the HTTP port and prepares clients. Connects to nothing yet, so it succeeds
    /// while the database or broker is down; `run_until_stopped` waits for them.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let options =
            MySqlConnectOptions::from_str(&settings.database_url).context("DATABASE_URL is not a MySQL URL")?;
        let pool = MySqlPoolOptions::new()
            .max_connections(settings.database_pool_size)
            // Short, so an unreachable database surfaces as a transient failure quickly
            // instead of stalling the partition.
            .acquire_timeout(settings.database_acquire_timeout)
            .after_connect({
                let lock_wait = settings.database_lock_wait_timeout_secs;
                move |conn, _meta| {
                    Box::pin(async move {
                        // A row held by another transaction fails that message quickly, as a
                        // transient failure of its own, instead of stalling the partition.
                        sqlx::query(&format!("SET SESSION innodb_lock_wait_timeout = {lock_wait}"))
                            .execute(conn)
                            .await?;
                        Ok(())
                    })
                }
            })
            .connect_lazy_with(options);
        let dead_letter_producer =
            DurableProducer::new(&settings.kafka, settings.publish_timeout).context("create the DLQ producer")?;
        let listener =
            TcpListener::bind(settings.http_addr).await.with_context(|| format!("bind {}", settings.http_addr))?;
        Ok(Self { settings, pool, dead_letter_producer, listener, stats: Arc::default() })
    }

    /// The port of `/healthz`, `/readyz` and `/metrics`.
    pub fn http_port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Runs until `shutdown` is cancelled; the batch in progress is finished and committed first.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let Application { settings, pool, dead_letter_producer, listener, stats } = self;
        let schema = SchemaStatus::default();
        let http = tokio::spawn(serve_probes(
            listener,
            pool.clone(),
            dead_letter_producer.clone(),
            stats.clone(),
            schema.clone(),
            shutdown.clone(),
        ));

        // Waits (not ready) while the database is unreachable or another service migrates;
        // messages wait safely in Kafka meanwhile. Shutdown first: nothing consumed, nothing
        // to commit.
        if apply_migrations(&pool, sqlx::migrate!("../migrations"), &schema, &shutdown).await.is_err() {
            return Ok(());
        }
        declare_topics(&settings).await;
        let dead_letters = DeadLetterPublisher::new(
            dead_letter_producer.clone(),
            settings.dead_letter_format,
            settings.retry_schedule.clone(),
        );
        let handler = RegistrationHandler::new(UserStore::new(pool.clone(), stats.stages.clone()));
        let consumer =
            ReliableConsumer::with_stats(&settings.kafka, settings.consumer.clone(), handler, dead_letters, stats)
                .context("create the consumer")?;
        consumer.run(shutdown.clone()).await.context("consumer failed")?;
        dead_letter_producer.flush(Duration::from_secs(5));
        shutdown.cancel();
        let _ = http.await;
        pool.close().await;
        Ok(())
    }
}

/// Creates the topic and its DLQ when missing. A failure is logged, not fatal: the broker may
/// be down right now, and consuming simply waits for the topic to appear.
async fn declare_topics(settings: &Settings) {
    let mut topics: Vec<String> = settings.consumer.topics.clone();
    topics.extend(settings.consumer.topics.iter().map(|t| dead_letter_topic(t)));
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    if let Err(e) = reliable_messaging::topics::ensure_exist(&settings.kafka, &names).await {
        tracing::warn!(error = %e, ?topics, "could not declare topics; continuing");
    }
}

async fn serve_probes(
    listener: TcpListener,
    pool: MySqlPool,
    producer: DurableProducer,
    stats: Arc<ConsumerStats>,
    schema: SchemaStatus,
    shutdown: CancellationToken,
) {
    let readiness = Readiness::default()
        .with(schema)
        .with(BrokerCheck(producer))
        .with(DatabaseCheck(pool))
        .with(AssignmentCheck(stats.clone()))
        .with(ConsumingCheck(stats.clone()));
    let app = Router::new()
        .route("/metrics", get(move || async move { stats.render_prometheus("registration_service") }))
        .merge(health::router(readiness));
    if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.cancelled().await }).await {
        tracing::error!(error = %e, "probe server failed");
    }
}

//! A built service, and the order of its life: probes up first, then database, migrations,
//! topics, consuming; on shutdown the batch in progress is finished and committed, the DLQ
//! producer flushed, the HTTP server stopped and the pool closed, in that order.
//!
//! [`ConsumerService`] itself is defined next to the builder that makes it (`builder.rs`), so
//! that this file depends on the builder and not the other way round.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::consumer::{ConsumerStats, Handler, ReliableConsumer};
use crate::dead_letter::{dead_letter_topic, DeadLetterPublisher};
use crate::kafka::topics::TopicPolicy;
use crate::kafka::KafkaSettings;
use crate::producer::DurableProducer;
#[cfg(feature = "http")]
use crate::service::endpoints::health::{AssignmentCheck, BrokerCheck, ConsumingCheck, Readiness};
use crate::service::runtime::ServiceError;
use crate::service::runtime::{ConsumerService, ServiceBuilder};

/// How long the DLQ producer may take to deliver what it still holds at shutdown.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

impl<H: Handler> ConsumerService<H> {
    /// Where `/healthz`, `/readyz` and `/metrics` listen, if they were asked for.
    #[cfg(feature = "http")]
    pub fn http_addr(&self) -> Option<std::net::SocketAddr> {
        self.listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The consumer's counters (what `/metrics` shows), live while the service runs.
    pub fn stats(&self) -> Arc<ConsumerStats> {
        self.stats.clone()
    }

    /// Runs until `shutdown` is cancelled (or the consumer fails); see the module docs for the
    /// order of start and stop. Shutdown while waiting for the database is a clean `Ok`:
    /// nothing was consumed, nothing is left to commit.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), ServiceError> {
        #[cfg(feature = "http")]
        let ConsumerService { parts, producer, stats, listener } = self;
        #[cfg(not(feature = "http"))]
        let ConsumerService { parts, producer, stats } = self;
        #[cfg(feature = "mysql")]
        let schema = parts.migrations.as_ref().map(|_| crate::service::runtime::migrations::SchemaStatus::default());
        // Stopped by us after the consumer (even when it failed), or with `shutdown`.
        let http_stop = shutdown.child_token();
        #[cfg(feature = "http")]
        let http = listener.map(|listener| {
            let readiness = readiness(
                &parts,
                &producer,
                &stats,
                #[cfg(feature = "mysql")]
                schema.as_ref(),
            );
            // The kit is the application here: it chooses to export the consumer's stats.
            let mut metrics = crate::service::endpoints::metrics::MetricsRegistry::new(&parts.name, &parts.version);
            metrics.service().register_collector(Box::new(stats.clone()));
            tokio::spawn(crate::service::endpoints::probes::serve(
                listener,
                readiness,
                Arc::new(metrics),
                http_stop.clone(),
            ))
        });

        #[cfg(feature = "mysql")]
        let database = parts.database.clone();
        let result = consume(
            parts,
            producer.clone(),
            stats,
            #[cfg(feature = "mysql")]
            schema,
            &shutdown,
        )
        .await;

        producer.flush(FLUSH_TIMEOUT);
        http_stop.cancel();
        #[cfg(feature = "http")]
        if let Some(http) = http {
            let _ = http.await;
        }
        #[cfg(feature = "mysql")]
        if let Some(pool) = database {
            pool.close().await;
        }
        result
    }
}

/// What `/readyz` checks: the schema (when migrating), the broker, the database (when there is
/// one), partitions assigned, consuming (not paused or halted), then the service's own checks.
#[cfg(feature = "http")]
fn readiness<H: Handler>(
    parts: &ServiceBuilder<H>,
    producer: &DurableProducer,
    stats: &Arc<ConsumerStats>,
    #[cfg(feature = "mysql")] schema: Option<&crate::service::runtime::migrations::SchemaStatus>,
) -> Readiness {
    let mut readiness = Readiness::default();
    #[cfg(feature = "mysql")]
    if let Some(schema) = schema {
        readiness = readiness.with(schema.clone());
    }
    readiness = readiness.with(BrokerCheck(producer.clone()));
    #[cfg(feature = "mysql")]
    if let Some(pool) = &parts.database {
        readiness = readiness.with(crate::service::endpoints::health::DatabaseCheck(pool.clone()));
    }
    readiness = readiness.with(AssignmentCheck(stats.clone())).with(ConsumingCheck(stats.clone()));
    for check in &parts.checks {
        readiness = readiness.with_shared(check.clone());
    }
    readiness
}

/// Database, migrations, topics, then the consumer until shutdown.
async fn consume<H: Handler>(
    parts: ServiceBuilder<H>,
    producer: DurableProducer,
    stats: Arc<ConsumerStats>,
    #[cfg(feature = "mysql")] schema: Option<crate::service::runtime::migrations::SchemaStatus>,
    shutdown: &CancellationToken,
) -> Result<(), ServiceError> {
    tracing::info!(service = %parts.name, topics = ?parts.consumer.topics, "service starting");
    #[cfg(feature = "mysql")]
    if let Some(pool) = &parts.database {
        // Waits (not ready) while the database is unreachable or another instance migrates;
        // messages wait safely in Kafka meanwhile.
        // Without migrations there is no schema to report on.
        let schema = schema.unwrap_or_default();
        let start = super::database::prepare_database_as(
            pool,
            parts.migration_database,
            parts.runtime_grants,
            parts.migrations,
            parts.create_database,
            &schema,
            shutdown,
        )
        .await?;
        if start == super::database::DatabaseStart::ShutDown {
            return Ok(());
        }
    }
    if parts.declare_topics {
        declare_topics(&parts.kafka, &parts.consumer.topics, &parts.topic_policy).await;
    }
    let policy = parts.dead_letters;
    let dead_letters = DeadLetterPublisher::new(producer, policy.format, policy.schedule)
        .with_writer(format!("{}/{}", parts.name, parts.version));
    let consumer = ReliableConsumer::with_stats(&parts.kafka, parts.consumer, parts.handler, dead_letters, stats)
        .map_err(ServiceError::CreateConsumer)?;
    consumer.run(shutdown.clone()).await.map_err(ServiceError::Consumer)
}

/// Creates the topics and their DLQs when missing. A failure is logged, not fatal: the broker
/// may be down right now, and consuming simply waits for the topics to appear.
async fn declare_topics(kafka: &KafkaSettings, topics: &[String], policy: &TopicPolicy) {
    let mut all: Vec<String> = topics.to_vec();
    all.extend(topics.iter().map(|t| dead_letter_topic(t)));
    let names: Vec<&str> = all.iter().map(String::as_str).collect();
    if let Err(e) = crate::kafka::topics::ensure_exist_with(kafka, &names, policy).await {
        tracing::warn!(error = %e, topics = ?all, "could not declare topics; continuing");
    }
}

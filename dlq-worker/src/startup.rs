//! Wires the worker together: database, producer, consumer, HTTP port.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use reliable_messaging::parking::{OutcomeJudge, ParkingLot, Redriver, StatusJudge};
use reliable_messaging::producer::DurableProducer;
use reliable_messaging::service::endpoints::health::{BrokerCheck, DatabaseCheck, Readiness};
use reliable_messaging::service::runtime::migrations::SchemaStatus;
use reliable_messaging::service::{prepare_database_as, DatabaseStart};
use sqlx::MySqlPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::actions::Actions;
use crate::admin_tokens::{parse_named, AdminTokens, TokenSources};
use crate::canary_judge::StatusUrlJudge;
use crate::configuration::Settings;
use crate::console::ConsoleState;
use crate::http::{self, Subscribed};
use crate::metrics::Metrics;
use crate::operations::Operator;
use crate::topics::TopicCatalog;
use crate::worker::DlqWorker;

pub struct Application {
    listener: TcpListener,
    router: Router,
    settings: Settings,
    pool: MySqlPool,
    actions: Actions,
    schema: SchemaStatus,
    producer: DurableProducer,
    metrics: Arc<Metrics>,
}

impl Application {
    /// Prepares the clients and binds the HTTP port (`DLQ_WORKER_ADDR`; port 0 picks a free one,
    /// see [`Application::address`]). Connects to nothing yet, so it succeeds while the database
    /// is down; migrating, subscribing and consuming happen in
    /// [`Application::run_until_stopped`].
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let pool = settings.database.connect_lazy().context("DATABASE_URL")?;
        let producer = redrive_producer(&settings)?;
        let topics = TopicCatalog::new(&settings.kafka).context("creating the metadata client")?;
        let metrics = Arc::new(Metrics::default());
        let parking = ParkingLot::new(pool.clone());
        let actions = Actions {
            producer: producer.clone(),
            format: settings.metadata_format,
            topics: topics.clone(),
            parking: parking.clone(),
            pool: pool.clone(),
            metrics: metrics.clone(),
        };
        let schema = SchemaStatus::default();
        let readiness = Readiness::default()
            .with(schema.clone())
            .with(BrokerCheck(producer.clone()))
            .with(Subscribed(metrics.clone()))
            .with(DatabaseCheck(pool.clone()))
            .with(http::Resending(metrics.clone()));
        let sources = TokenSources {
            legacy: settings.admin_token.clone(),
            named: match &settings.operator.named_tokens {
                Some(raw) => parse_named(raw.expose()).context("ADMIN_TOKENS")?,
                None => Vec::new(),
            },
            file: settings.operator.tokens_file.clone(),
        };
        let admin = if sources.is_empty() {
            tracing::info!("no admin token is set (ADMIN_TOKEN, ADMIN_TOKENS, ADMIN_TOKENS_FILE): the admin API and console are off");
            None
        } else {
            let tokens = AdminTokens::new(&sources).context("admin tokens")?;
            let judge: Option<Arc<dyn OutcomeJudge>> = match &settings.operator.canary_status_url {
                Some(url) => Some(Arc::new(
                    StatusUrlJudge::new(StatusJudge::new(pool.clone()), url.clone())
                        .context("CANARY_STATUS_URL client")?,
                )),
                None => None,
            };
            let operator = Operator {
                redriver: Redriver::new(parking.clone(), producer.clone(), settings.metadata_format),
                parking,
                judge,
                default_rate: settings.redrive_rate,
                metrics: metrics.clone(),
            };
            let console = ConsoleState {
                operator: operator.clone(),
                tokens: tokens.clone(),
                sessions: Default::default(),
                readiness: readiness.clone(),
                readyz_urls: settings.operator.readyz_urls.clone(),
                client: reqwest::Client::builder()
                    .timeout(Duration::from_secs(4))
                    .build()
                    .context("console HTTP client")?,
            };
            let erasures = crate::erasure::Erasures {
                pool: pool.clone(),
                producer: producer.clone(),
                topic: settings.operator.erasure_topic.clone(),
            };
            Some(http::OperatorSurfaces { operator, tokens, console, erasures })
        };
        let router = http::router(readiness, metrics.clone(), admin);
        let listener = TcpListener::bind(settings.http_addr)
            .await
            .with_context(|| format!("binding the HTTP port {}", settings.http_addr))?;
        Ok(Self { listener, router, settings, pool, actions, schema, producer, metrics })
    }

    pub fn address(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener has an address")
    }

    pub fn port(&self) -> u16 {
        self.address().port()
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Serves, applies the migrations (waiting, not ready, while the database is away or another
    /// service migrates), subscribes and works until `shutdown` is cancelled, then stops
    /// polling, lets re-sends in flight finish, commits what is done, and returns.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        tracing::info!(address = %self.address(), "dlq-worker listening");
        let server = axum::serve(self.listener, self.router).with_graceful_shutdown(shutdown.clone().cancelled_owned());
        let server = tokio::spawn(async move { server.await });
        // Subscribing only after the migrations: a member that joined the group without polling
        // would hold partitions other workers could drain.
        let migrator = signup_schema::migrator();
        let owner = self.settings.database.connect_migrator_lazy().context("DATABASE_MIGRATION_URL")?;
        let grants = crate::database_grants::GRANTS;
        let start =
            prepare_database_as(&self.pool, owner, grants, Some(migrator), false, &self.schema, &shutdown).await;
        if start.context("preparing the database")? == DatabaseStart::Ready {
            let worker = DlqWorker::new(&self.settings, self.actions, self.metrics.clone())
                .context("creating the DLQ consumer")?;
            worker.run(shutdown).await;
        }
        let producer = self.producer;
        let _ = tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(5))).await;
        server.await.context("HTTP server task")?.context("HTTP server")?;
        Ok(())
    }
}

/// The pool, connected now: the `parked` subcommands have nothing to do without it.
pub async fn connect(settings: &Settings) -> anyhow::Result<MySqlPool> {
    settings.database.connect().await.context("connecting to the database (DATABASE_URL)")
}

/// The producer for re-sends and redrives. It never auto-creates a topic: a message whose topic
/// is gone is parked, not published into a new topic nobody reads.
pub fn redrive_producer(settings: &Settings) -> anyhow::Result<DurableProducer> {
    DurableProducer::with_overrides(&settings.kafka, settings.publish_timeout, &[("allow.auto.create.topics", "false")])
        .context("creating the Kafka producer")
}

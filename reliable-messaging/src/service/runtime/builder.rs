//! The one builder: a handler and its settings in, a [`ConsumerService`] out.
//!
//! Everything a service used to wire by hand (the DLQ producer, topic declaration, pool and
//! migrations, probes, metrics, shutdown order) is decided here once, so each service differs
//! only in its handler and its configuration.

#[cfg(feature = "http")]
use std::net::SocketAddr;
use std::sync::Arc;

#[cfg(feature = "mysql")]
use sqlx::migrate::Migrator;
#[cfg(feature = "mysql")]
use sqlx::MySqlPool;

use crate::consumer::{ConsumerSettings, ConsumerStats, Handler};
use crate::dead_letter::DeadLetterPolicy;
use crate::kafka::topics::TopicPolicy;
use crate::kafka::KafkaSettings;
use crate::producer::DurableProducer;
use crate::service::configuration::{ServiceArgs, ServiceSettings};
use crate::service::endpoints::health::ReadinessCheck;
use crate::service::runtime::ServiceError;

/// A consumer service ready to run; made by [`ServiceBuilder::build`].
pub struct ConsumerService<H: Handler> {
    pub(super) parts: ServiceBuilder<H>,
    pub(super) producer: DurableProducer,
    pub(super) stats: Arc<ConsumerStats>,
    #[cfg(feature = "http")]
    pub(super) listener: Option<tokio::net::TcpListener>,
}

/// Builds a [`ConsumerService`]:
///
/// ```no_run
/// # use reliable_messaging::service::{ServiceBuilder, DatabaseSettings};
/// # use reliable_messaging::consumer::ConsumerSettings;
/// # use reliable_messaging::{Delivery, Handler, KafkaSettings, Outcome};
/// # struct Store;
/// # impl Handler for Store { async fn handle(&self, _: &Delivery) -> Outcome { Outcome::Done } }
/// # async fn run(db: DatabaseSettings, migrator: sqlx::migrate::Migrator) -> anyhow::Result<()> {
/// let pool = db.connect_lazy()?;
/// let service = ServiceBuilder::new(
///     "payments",
///     KafkaSettings::new("localhost:9092", "payments"),
///     ConsumerSettings::new("payments", &["payments"]),
///     Store,
/// )
/// .database(pool)
/// .migrations(migrator)
/// .http("127.0.0.1:8090".parse()?)
/// .build()
/// .await?;
/// service.run(reliable_messaging::service::runtime::shutdown::on_termination_signal()).await?;
/// # Ok(()) }
/// ```
pub struct ServiceBuilder<H: Handler> {
    pub(super) name: String,
    /// For `<name>_build_info{version}`: the service crate's, which the library cannot know.
    pub(super) version: String,
    pub(super) kafka: KafkaSettings,
    pub(super) consumer: ConsumerSettings,
    pub(super) handler: H,
    pub(super) dead_letters: DeadLetterPolicy,
    pub(super) topic_policy: TopicPolicy,
    pub(super) declare_topics: bool,
    pub(super) checks: Vec<Arc<dyn ReadinessCheck>>,
    pub(super) stats: Arc<ConsumerStats>,
    #[cfg(feature = "http")]
    pub(super) http_addr: Option<SocketAddr>,
    #[cfg(feature = "mysql")]
    pub(super) database: Option<MySqlPool>,
    #[cfg(feature = "mysql")]
    pub(super) migrations: Option<Migrator>,
    #[cfg(feature = "mysql")]
    pub(super) create_database: bool,
    #[cfg(feature = "mysql")]
    pub(super) migration_database: Option<MySqlPool>,
    #[cfg(feature = "mysql")]
    pub(super) runtime_grants: &'static [crate::service::runtime::identities::TableGrant],
}

impl<H: Handler> ServiceBuilder<H> {
    /// A service named `name` (its metrics are prefixed with it, `-` written `_`) running
    /// `handler` over `consumer.topics`, with the default [`DeadLetterPolicy`] and no HTTP
    /// server until [`ServiceBuilder::http`] is called.
    pub fn new(name: impl Into<String>, kafka: KafkaSettings, consumer: ConsumerSettings, handler: H) -> Self {
        Self {
            name: name.into(),
            version: "unknown".to_owned(),
            kafka,
            consumer,
            handler,
            dead_letters: DeadLetterPolicy::default(),
            topic_policy: TopicPolicy::default(),
            declare_topics: true,
            checks: Vec::new(),
            stats: Arc::default(),
            #[cfg(feature = "http")]
            http_addr: None,
            #[cfg(feature = "mysql")]
            database: None,
            #[cfg(feature = "mysql")]
            migrations: None,
            #[cfg(feature = "mysql")]
            create_database: false,
            #[cfg(feature = "mysql")]
            migration_database: None,
            #[cfg(feature = "mysql")]
            runtime_grants: &[],
        }
    }

    /// Everything [`ServiceArgs`] configures: Kafka (`variables` are the process's environment,
    /// for the `KAFKA_<PROPERTY>` pass-through), the consumer of `topics`, the dead-letter and
    /// topic policies, and (`http` feature) the probe address.
    pub fn from_args(
        name: &str,
        args: &ServiceArgs,
        topics: &[&str],
        variables: impl IntoIterator<Item = (String, String)>,
        handler: H,
    ) -> Self {
        Self::from_settings(name, args.settings(name, topics, variables), handler)
    }

    /// A service built from settings it kept whole (a test changes a field of them first).
    pub fn from_settings(name: &str, settings: ServiceSettings, handler: H) -> Self {
        let builder = Self::new(name, settings.kafka, settings.consumer, handler)
            .dead_letter_policy(settings.dead_letters)
            .topic_policy(settings.topic_policy);
        #[cfg(feature = "http")]
        let builder = builder.http(settings.http_addr);
        builder
    }

    /// The version `/metrics` reports in `<name>_build_info{version}`: pass
    /// `env!("CARGO_PKG_VERSION")` of the service's crate (`unknown` until then).
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    /// The Kafka settings the service will use (for a preflight check before [`build`](Self::build)).
    pub fn kafka_settings(&self) -> &KafkaSettings {
        &self.kafka
    }

    /// How failed messages are dead-lettered; its limit replaces the consumer settings' one.
    pub fn dead_letter_policy(mut self, policy: DeadLetterPolicy) -> Self {
        self.dead_letters = policy;
        self
    }

    /// How the topics and their `<topic>-dlq` are created when missing.
    pub fn topic_policy(mut self, policy: TopicPolicy) -> Self {
        self.topic_policy = policy;
        self
    }

    /// Whether to create missing topics at start (default: yes). Off for a cluster where
    /// topics are managed elsewhere; consuming then waits for them to appear.
    pub fn declare_topics(mut self, declare: bool) -> Self {
        self.declare_topics = declare;
        self
    }

    /// One more condition for `/readyz`, after the kit's own.
    pub fn readiness_check(mut self, check: impl ReadinessCheck) -> Self {
        self.checks.push(Arc::new(check));
        self
    }

    /// Serve `/healthz`, `/readyz` and `/metrics` on `addr` (port 0: any free port).
    #[cfg(feature = "http")]
    pub fn http(mut self, addr: SocketAddr) -> Self {
        self.http_addr = Some(addr);
        self
    }

    /// The handler's database: checked by `/readyz`, closed when the service stops.
    #[cfg(feature = "mysql")]
    pub fn database(mut self, pool: MySqlPool) -> Self {
        self.database = Some(pool);
        self
    }

    /// Migrations applied to the [`database`](ServiceBuilder::database) before consuming,
    /// waiting (not ready) while the database is down; see [`crate::service::runtime::migrations`].
    #[cfg(feature = "mysql")]
    pub fn migrations(mut self, migrator: Migrator) -> Self {
        self.migrations = Some(migrator);
        self
    }

    /// The migration identity's pool (`DATABASE_MIGRATION_URL`), when the schema belongs to
    /// another identity than the [`database`](ServiceBuilder::database)'s: the migrations run on
    /// it, then it grants the runtime identity `grants`; see [`crate::service::runtime::identities`].
    #[cfg(feature = "mysql")]
    pub fn migration_database(
        mut self,
        owner: Option<MySqlPool>,
        grants: &'static [crate::service::runtime::identities::TableGrant],
    ) -> Self {
        self.migration_database = owner;
        self.runtime_grants = grants;
        self
    }

    /// Create the database that `DATABASE_URL` names when it is missing, before migrating:
    /// for a service that owns a database of its own.
    #[cfg(feature = "mysql")]
    pub fn create_database_if_missing(mut self) -> Self {
        self.create_database = true;
        self
    }

    /// Counts into `stats` instead of fresh counters: for a handler that records its own
    /// stages in [`ConsumerStats::stages`] (made before the handler, handed to both).
    pub fn stats(mut self, stats: Arc<ConsumerStats>) -> Self {
        self.stats = stats;
        self
    }

    /// Creates the DLQ producer and binds the HTTP address. Connects to nothing yet, so it
    /// succeeds while the broker or the database is down; [`ConsumerService::run`] waits for them.
    pub async fn build(mut self) -> Result<ConsumerService<H>, ServiceError> {
        #[cfg(feature = "mysql")]
        if self.create_database {
            if let Some(pool) = &self.database {
                super::database::own_database_name(pool)?;
            }
        }
        let producer =
            DurableProducer::new(&self.kafka, self.dead_letters.publish_timeout).map_err(ServiceError::Producer)?;
        #[cfg(feature = "http")]
        let listener = match self.http_addr {
            Some(addr) => {
                Some(tokio::net::TcpListener::bind(addr).await.map_err(|source| ServiceError::Bind { addr, source })?)
            }
            None => None,
        };
        self.consumer.dead_letter_limit = self.dead_letters.limit;
        Ok(ConsumerService {
            stats: self.stats.clone(),
            parts: self,
            producer,
            #[cfg(feature = "http")]
            listener,
        })
    }
}

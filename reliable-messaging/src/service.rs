//! The service kit: everything a consumer service needs besides its handler, so that a new
//! service is configuration, a handler and one builder call.
//!
//! What a service built with [`ServiceBuilder`] gets, and where each part lives (one concept
//! per file, so a reader can find and replace one without reading the rest):
//!
//! * configuration from the environment: [`ServiceArgs`] (Kafka, consumer, retries, dead
//!   letters, topics, HTTP, logs and traces) and [`DatabaseArgs`] (`mysql` feature), clap
//!   structs a service flattens into its own, so `<service> --help` lists every variable with
//!   its default (`args.rs`, `kafka_args.rs`, `database.rs`, `command.rs`); the parts a service
//!   that is not a [`ConsumerService`] needs on their own ([`KafkaArgs`], [`RetryScheduleArgs`],
//!   [`TopicArgs`], [`TelemetryArgs`]: `retry_args.rs`, `topic_args.rs`, `telemetry_args.rs`,
//!   which [`telemetry::init`] takes); secrets never appear in `Debug`
//!   (`secret.rs`). The binary parses them once at start; no library type reads the
//!   environment;
//! * the dead-letter policy as one value: [`DeadLetterPolicy`] (`dead_letter_policy.rs`);
//! * the running service: topics and their `<topic>-dlq` declared, the DLQ producer derived
//!   from the Kafka settings, migrations applied at start while the database may still be down
//!   ([`prepare_database`], also for services built by hand),
//!   `/healthz`, `/readyz` and `/metrics` served, and a graceful stop that finishes the batch,
//!   commits, flushes the producer and stops the HTTP server (`builder.rs`, `running.rs`,
//!   `probes.rs`);
//! * typed errors: [`ServiceError`] (`error.rs`).
//!
//! The parts the builder assembles, public for services that assemble their own (the gateway,
//! the dlq-worker), one module each:
//!
//! * [`preflight`]: start-up checks that turn a misconfigured secured connection to Kafka or
//!   the database into one clear error;
//! * [`migrations`]: the shared database migrations, applied safely when several instances
//!   start at once (`mysql` feature);
//! * [`identities`]: the least-privilege runtime identity's table grants, given by the
//!   migration identity and checked at start-up (`mysql` feature);
//! * [`health`]: `/healthz` and `/readyz` with their readiness checks;
//! * [`metrics`]: one `prometheus-client` registry per instance and `/metrics`;
//! * [`problem`]: error answers as RFC 9457 problem documents (`http` feature);
//! * [`telemetry`]: logs and distributed tracing set-up;
//! * [`shutdown`]: the one cancellation token SIGTERM and SIGINT cancel.
//!
//! The MySQL parts need the `mysql` feature and the HTTP parts the `http` feature (both on by
//! default), so a consumer that writes elsewhere builds neither sqlx nor axum.

mod args;
mod builder;
mod command;
#[cfg(feature = "mysql")]
mod database;
mod dead_letter_policy;
mod error;
pub mod health;
#[cfg(feature = "mysql")]
pub mod identities;
mod kafka_args;
pub mod metrics;
#[cfg(feature = "mysql")]
pub mod migrations;
pub mod preflight;
#[cfg(feature = "http")]
mod probes;
#[cfg(feature = "http")]
pub mod problem;
mod retry_args;
mod running;
mod secret;
pub mod shutdown;
pub mod telemetry;
mod telemetry_args;
mod topic_args;

pub use args::{share as parse_share, ServiceArgs};
pub use builder::{ConsumerService, ServiceBuilder};
pub use command::{check_variables, command, ignoring_environment, parse_from, ServiceDefaults};
#[cfg(feature = "mysql")]
pub use database::{prepare_database, prepare_database_as, DatabaseArgs, DatabaseSettings, DatabaseStart};
pub use dead_letter_policy::DeadLetterPolicy;
pub use error::ServiceError;
pub use kafka_args::{KafkaArgs, ProducerAcksArg};
pub use retry_args::{BackoffShapeArg, MetadataFormatArg, RetryScheduleArgs};
pub use secret::{DatabaseUrl, Secret};
pub use telemetry_args::{LogFormat, TelemetryArgs};
pub use topic_args::TopicArgs;

//! The service kit: everything a consumer service needs besides its handler, so that a new
//! service is configuration, a handler and one builder call.
//!
//! What a service built with [`ServiceBuilder`] gets, and where each part lives (one concept
//! per file, so a reader can find and replace one without reading the rest):
//!
//! * configuration from the environment: [`ServiceArgs`] (Kafka, consumer, retries, dead
//!   letters, topics, HTTP) and [`DatabaseArgs`] (`mysql` feature), clap structs a service
//!   flattens into its own, so `<service> --help` lists every variable with its default
//!   (`args.rs`, `kafka_args.rs`, `database.rs`, `command.rs`); secrets never appear in `Debug`
//!   (`secret.rs`);
//! * the dead-letter policy as one value: [`DeadLetterPolicy`] (`dead_letter_policy.rs`);
//! * the running service: topics and their `<topic>-dlq` declared, the DLQ producer derived
//!   from the Kafka settings, migrations applied at start while the database may still be down,
//!   `/healthz`, `/readyz` and `/metrics` served, and a graceful stop that finishes the batch,
//!   commits, flushes the producer and stops the HTTP server (`builder.rs`, `running.rs`,
//!   `probes.rs`);
//! * typed errors: [`ServiceError`] (`error.rs`).
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
mod kafka_args;
#[cfg(feature = "http")]
mod probes;
mod running;
mod secret;

pub use args::ServiceArgs;
pub use builder::{ConsumerService, ServiceBuilder};
pub use command::{command, parse_from, ServiceDefaults};
#[cfg(feature = "mysql")]
pub use database::{DatabaseArgs, DatabaseSettings};
pub use dead_letter_policy::DeadLetterPolicy;
pub use error::ServiceError;
pub use kafka_args::KafkaArgs;
pub use secret::{DatabaseUrl, Secret};

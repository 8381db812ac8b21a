//! Reliable Kafka messaging: the machinery that lets a service promise
//! "an accepted message is never lost" by writing a single handler.
//!
//! The pieces, in the order a message meets them:
//!
//! * [`producer::DurableProducer`] publishes with `acks=all` and idempotence and only
//!   reports success once the broker has the record durably.
//! * [`consumer::ReliableConsumer`] polls a batch, hands it to your [`Handler`], and commits
//!   offsets only after every message in the batch has a durable outcome:
//!   stored by the handler, or handed to the dead-letter topic.
//! * [`outcome::Outcome`] is how a handler classifies each message: done, rejected for a
//!   business reason, or failed transiently / permanently.
//! * [`dead_letter::DeadLetterPublisher`] writes failed messages to `<topic>-dlq` with
//!   [`retry_metadata`] (headers, or the JSON wrapper of the original article).
//! * [`backoff::Backoff`] computes retry delays; [`parking::ParkingLot`] stores messages that
//!   must not be retried any more, where an operator can inspect and replay them.
//!
//! A new consumer with retries, DLQ and parking is a few dozen lines: the [`service`] kit turns
//! a handler into a running service (topics and their DLQs declared, migrations at start,
//! `/healthz`, `/readyz`, `/metrics`, configuration from the environment, graceful shutdown);
//! see `examples/minimal_consumer.rs`, or `scripts/new-service.sh NAME` for a new crate.
//!
//! Features (both default): `mysql` (the parking lot, request status, migrations, the
//! database readiness check, the kit's pool) and `http` (the probe server, problem documents).

pub mod backoff;
pub mod consumer;
pub mod dead_letter;
pub mod dead_letter_limit;
pub mod delivery;
pub mod health;
pub mod metrics;
pub mod offset_tracker;
pub mod outcome;
#[cfg(feature = "mysql")]
pub mod parking;
mod partition_chunks;
pub mod preflight;
#[cfg(feature = "http")]
pub mod problem;
pub mod producer;
mod record_header;
#[cfg(feature = "mysql")]
pub mod request_status;
pub mod retry_metadata;
#[cfg(feature = "mysql")]
pub mod schema_migrations;
pub mod service;
pub mod settings;
pub mod shutdown;
#[cfg(feature = "mysql")]
pub mod sql_failures;
pub mod stage_timings;
pub mod telemetry;
pub mod topics;
pub mod trace_context;

pub use consumer::{CommitPolicy, ConsumerSettings, Handler, OutagePolicy, Prepared, ReliableConsumer};
pub use delivery::Delivery;
pub use outcome::{FailureKind, Outcome};
pub use producer::DurableProducer;
pub use settings::KafkaSettings;

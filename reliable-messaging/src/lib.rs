//! Reliable Kafka messaging: the machinery that lets a service promise
//! "an accepted message is never lost" by writing a single handler.
//!
//! # What is public, and why
//!
//! The root is small on purpose: a reader comes for one of a handful of things, and each is
//! one module. In the order a message meets them:
//!
//! * [`producer`]: [`DurableProducer`](producer::DurableProducer) publishes with `acks=all`
//!   and idempotence and reports success only once the broker has the record durably.
//! * [`consumer`]: [`ReliableConsumer`](consumer::ReliableConsumer) polls a batch, hands each
//!   [`Delivery`] to your [`Handler`], and commits offsets only after every message has a
//!   durable [`Outcome`] (stored by the handler, or handed to the dead-letter topic); with the
//!   settings, statistics and helpers a handler uses (SQL failure classification, stage
//!   timings).
//! * [`dead_letter`]: where failed messages go (`<topic>-dlq`), the retry metadata they carry,
//!   the [`Backoff`](dead_letter::Backoff) schedule and the flood limit.
//! * [`parking`] (`mysql`): messages that must not be retried any more wait there for an
//!   operator, who can inspect, replay or discard them.
//! * [`request_status`] (`mysql`): what happened to a request, for a caller who asks later.
//! * [`kafka`]: what every client shares: [`KafkaSettings`], record headers, topic
//!   declaration and durability, trace context.
//! * [`service`]: the kit that turns a handler into a running service with one builder,
//!   [`ServiceBuilder`] (topics and their DLQs declared, migrations at start, `/healthz`,
//!   `/readyz`, `/metrics`, configuration from the environment, graceful shutdown), and the
//!   parts it is made of for services that assemble their own.
//!
//! The five items a new consumer service needs are also at the root: [`Handler`],
//! [`Outcome`], [`Delivery`], [`ServiceBuilder`] and [`KafkaSettings`]. See
//! `examples/minimal_consumer.rs`, or `scripts/new-service.sh NAME` for a new crate.
//!
//! Everything else (offset bookkeeping inside a batch, partition chunks, header plumbing, the
//! collectors behind `/metrics`) is crate-private: it can change without breaking a service.
//!
//! # Features
//!
//! `mysql` and `http` are on by default: `mysql` brings the parking lot, request status,
//! migrations, the database readiness check and the kit's pool; `http` the probe server and
//! problem documents. `negative-control` (off by default, never in production builds) enables
//! `CommitPolicy::UnsafeAutoCommit`, Kafka's auto-commit, which exists only so the test and
//! chaos suites can prove their loss detector detects what it loses.

pub mod consumer;
pub mod dead_letter;
pub mod kafka;
#[cfg(feature = "mysql")]
pub mod parking;
pub mod producer;
#[cfg(feature = "mysql")]
pub mod request_status;
pub mod service;

pub use consumer::{Delivery, Handler, Outcome};
pub use kafka::KafkaSettings;
pub use service::ServiceBuilder;

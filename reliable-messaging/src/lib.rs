//! Reliable Kafka messaging: the machinery that lets a service promise
//! "an accepted message is never lost" by writing a single handler.
//!
//! # Layers
//!
//! Each layer uses only the ones above it; nothing imports upwards.
//!
//! 1. [`message`], the vocabulary: [`Delivery`], [`Outcome`] and its failure kinds, headers,
//!    retry metadata.
//! 2. The Kafka clients: [`kafka`] (connection settings, consumer-group plumbing, topics,
//!    trace context) and [`producer`] ([`DurableProducer`](producer::DurableProducer): success
//!    only once the broker has the record durably).
//! 3. The machinery: [`consumer`] ([`ReliableConsumer`](consumer::ReliableConsumer), a batch
//!    through its stages poll → handle → settle → commit, to your [`Handler`]), [`dead_letter`]
//!    (`<topic>-dlq`, backoff, the flood limit), [`parking`] and [`request_status`] (`mysql`).
//! 4. [`service`], the kit: one builder, [`ServiceBuilder`], turns a handler into a running
//!    service (configuration, probes and metrics over HTTP, database start, shutdown).
//!
//! The five items a new consumer service needs are also at the root: [`Handler`],
//! [`Outcome`], [`Delivery`], [`ServiceBuilder`] and [`KafkaSettings`]. See
//! `examples/minimal_consumer.rs`, or `scripts/new-service.sh NAME` for a new crate.
//! Everything else (offset bookkeeping inside a batch, the stages, header plumbing, the
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
pub mod message;
#[cfg(feature = "mysql")]
pub mod parking;
pub mod producer;
#[cfg(feature = "mysql")]
pub mod request_status;
pub mod service;

pub use consumer::Handler;
pub use kafka::KafkaSettings;
pub use message::{Delivery, Outcome};
pub use service::ServiceBuilder;

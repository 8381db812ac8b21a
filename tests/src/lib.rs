//! Support shared by the integration tests: where the real Kafka broker and MySQL server are
//! ([`environment`]), a fresh migrated database per test ([`database`]), topics ([`kafka`]),
//! the three services started, awaited and killed, as OS processes or in-process
//! ([`harness`]), sample registration events ([`registrations`]), a TCP proxy that cuts the
//! database connection on demand ([`tcp_proxy`]), the whole system as OS processes
//! ([`cluster`]), the local multi-broker Kafka cluster and its faults ([`brokers`]), and the
//! loss check every scenario ends with ([`ledger`]), and the real OpenTelemetry Collector as a
//! trace receiver ([`otel_collector`]).
//!
//! Nothing here mocks Kafka or MySQL: every test talks to real servers.

pub mod brokers;
pub mod cluster;
pub mod database;
pub mod engine;
pub mod environment;
pub mod harness;
pub mod identities;
pub mod kafka;
pub mod ledger;
pub mod metrics;
pub mod otel_collector;
pub mod registrations;
pub mod tcp_proxy;
pub mod wait;
pub mod webdriver;

pub use environment::{test_env, TestEnv};

//! Support for the integration tests and the chaos suite that needs the services' own
//! libraries: the real Kafka and MySQL the tests run against, a fresh migrated database per test,
//! each service started with its settings (in-process or as an OS process), the whole system as
//! processes, and the ledger every loss scenario ends with. What the benchmark shares as well
//! (processes, scrapes, the TCP proxy, the local services) is in `test-support`.
//!
//! Nothing here mocks Kafka or MySQL: every test talks to real servers.

pub mod brokers;
pub mod cluster;
pub mod database;
pub mod dead_letters;
pub mod engine;
pub mod environment;
pub mod gateway_client;
pub mod harness;
pub mod identities;
pub mod kafka;
pub mod ledger;
pub mod metrics;
pub mod otel_collector;
pub mod registrations;
pub mod wait;
pub mod webdriver;

pub use environment::{test_env, TestEnv};
/// The fault-injecting TCP proxy lives with the other support every harness shares.
pub use test_support::tcp_proxy;

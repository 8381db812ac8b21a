//! Metrics: one implementation for every service, through `prometheus-client`.
//!
//! The split follows the model of a library that records and an application that exports:
//!
//! * the consumer core records into its own plain types ([`ConsumerStats`], [`StageTimings`]:
//!   atomics it needs anyway for readiness, lag and tests) and knows nothing of an exporter;
//! * this module describes those types to `prometheus-client` as [`Collector`]s
//!   (`consumer.rs`, `stages.rs`), read at scrape time, so the hot path pays one atomic add;
//! * the application (the service kit, the gateway, the dlq-worker) owns one
//!   [`MetricsRegistry`] per instance (`registry.rs`), registers what it wants exported, and
//!   serves it (`http.rs`). Per instance, not global: tests build several apps in one process.
//!
//! Every registry also carries the standard process metrics (`process.rs`) and a
//! `<service>_build_info` metric (`build_info.rs`); [`family`] has the small helpers a
//! collector uses to write a counter or gauge.
//!
//! [`ConsumerStats`]: crate::consumer::ConsumerStats
//! [`StageTimings`]: crate::consumer::stage_timings::StageTimings
//! [`Collector`]: prometheus_client::collector::Collector

mod build_info;
mod consumer;
pub mod family;
#[cfg(feature = "http")]
pub mod http;
mod process;
mod registry;
mod stages;

pub use registry::{MetricsError, MetricsRegistry, CONTENT_TYPE};

//! The service kit: everything a consumer service needs besides its handler, so that a new
//! service is configuration, a handler and one builder call.
//!
//! Three concerns, one folder each:
//!
//! * [`configuration`]: the clap structs a service flattens into its own arguments
//!   ([`ServiceArgs`], [`KafkaArgs`], [`RetryScheduleArgs`], [`TopicArgs`], [`TelemetryArgs`]),
//!   secrets that never appear in `Debug`, and the parsing entry points. The binary parses once
//!   at start; no library type reads the environment.
//! * [`endpoints`]: what a running service answers: `/healthz` and `/readyz` with their checks,
//!   `/metrics` from one registry per instance, and RFC 9457 problem documents.
//! * [`runtime`]: how it runs: [`ServiceBuilder`] and the running service, start-up
//!   [`preflight`](runtime::preflight) checks, the database, its migrations and the runtime
//!   identity's table grants (`mysql` feature), tracing set-up, the shutdown token and
//!   [`ServiceError`].
//!
//! The MySQL parts need the `mysql` feature and the HTTP parts the `http` feature (both on by
//! default), so a consumer that writes elsewhere builds neither sqlx nor axum.

pub mod configuration;
pub mod endpoints;
pub mod runtime;

pub use configuration::{
    check_variables, command, ignoring_environment, parse_from, parse_share, BackoffShapeArg, DatabaseUrl, KafkaArgs,
    LogFormat, MetadataFormatArg, ProducerAcksArg, RetryScheduleArgs, Secret, ServiceArgs, ServiceDefaults,
    ServiceSettings, TelemetryArgs, TopicArgs,
};
#[cfg(feature = "mysql")]
pub use runtime::{prepare_database, prepare_database_as, DatabaseArgs, DatabaseSettings, DatabaseStart};
pub use runtime::{ConsumerService, ServiceBuilder, ServiceError};

//! How a service runs: built from its settings, checked before it starts, connected to its
//! database, traced, and stopped gracefully.

mod builder;
#[cfg(feature = "mysql")]
mod database;
mod error;
#[cfg(feature = "mysql")]
pub mod identities;
#[cfg(feature = "mysql")]
pub mod migrations;
pub mod preflight;
mod running;
pub mod shutdown;
pub mod telemetry;

pub use builder::{ConsumerService, ServiceBuilder};
#[cfg(feature = "mysql")]
pub use database::{prepare_database, prepare_database_as, DatabaseArgs, DatabaseSettings, DatabaseStart};
pub use error::ServiceError;

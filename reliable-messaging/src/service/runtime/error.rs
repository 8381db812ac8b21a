//! Why a service could not be built or stopped running. Outages are not errors: a service
//! waits for a broker or database that is down; these are the failures waiting cannot heal.

use std::net::SocketAddr;

use crate::consumer::ConsumerError;
use crate::producer::PublishError;

/// A failure of the service kit; the cause is its [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("could not create the dead-letter producer")]
    Producer(#[source] PublishError),
    #[error("could not listen on {addr} for the probes and metrics")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("could not create the consumer")]
    CreateConsumer(#[source] ConsumerError),
    #[error("the consumer failed")]
    Consumer(#[source] ConsumerError),
    /// The URL itself is not shown: it may carry a password.
    #[cfg(feature = "mysql")]
    #[error("DATABASE_URL is not a usable MySQL URL")]
    DatabaseUrl(#[source] sqlx::Error),
    /// The URL is not shown: it may carry a password.
    #[cfg(feature = "mysql")]
    #[error("could not connect to the database of DATABASE_URL")]
    DatabaseUnreachable(#[source] sqlx::Error),
    #[cfg(feature = "mysql")]
    #[error("DATABASE_URL must name a database (letters, digits, `_`) for the service to create: got {0:?}")]
    DatabaseName(Option<String>),
    /// A service that declares no table grants migrates as its runtime identity, so a separate
    /// migration identity would be silently ignored.
    #[cfg(feature = "mysql")]
    #[error("DATABASE_MIGRATION_URL is set, but this service declares no table grants for its runtime identity")]
    MigrationIdentityUnsupported,
}

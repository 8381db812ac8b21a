//! What a running service answers: its probes, its metrics and its error documents.

pub mod health;
pub mod metrics;
#[cfg(feature = "http")]
pub(crate) mod probes;
#[cfg(feature = "http")]
pub mod problem;

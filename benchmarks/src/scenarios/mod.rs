//! The measurements of the services, each with its own topics and database:
//!
//! * [`gateway`]: start-up, maximum sign-up rate, latency at half of it;
//! * [`end_to_end`]: request → row committed, gateway and registration-service together;
//! * [`drain`]: the registration-service draining a pre-filled topic, batched and row by row;
//! * [`outage`]: the same after a database outage (MariaDB stopped, or the tests' TCP proxy
//!   cut) under a steady load of sign-ups;
//! * [`dlq`]: the dlq-worker's re-send punctuality with 10,000 other messages waiting;
//! * [`cost`]: the consumer's instructions per message, counted by callgrind;
//! * [`flood`]: one client flooding the gateway, a well-behaved one beside it, with the
//!   per-client budget on and off.
//!
//! Every figure with a goal is measured in rounds, each next to its own raw limit (see
//! [`crate::rounds`]); `main.rs` runs the rounds.

pub mod cost;
pub mod dlq;
pub mod drain;
pub mod end_to_end;
pub mod flood;
pub mod gateway;
pub mod outage;

use std::path::Path;
use std::time::{Duration, Instant};

use crate::environment::Environment;
use crate::plan::Plan;
use crate::services::Binaries;

/// What every scenario needs.
pub struct Context<'a> {
    pub env: &'a Environment,
    pub binaries: &'a Binaries,
    pub plan: &'a Plan,
    /// `scripts/local-services.sh` (`--kafka-tool`): its `db-stop` and `db-start` for the outage.
    pub local_services: &'a Path,
}

/// How long a service may take to become ready before the harness gives up on it.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The registration-service's environment for `topic`, `group` and `database_url`.
pub fn registration_service_env(
    ctx: &Context<'_>,
    topic: &str,
    group: &str,
    database_url: &str,
) -> Vec<(&'static str, String)> {
    vec![
        ("KAFKA_BOOTSTRAP_SERVERS", ctx.env.kafka_bootstrap.clone()),
        ("DATABASE_URL", database_url.to_owned()),
        ("REGISTRATIONS_TOPIC", topic.to_owned()),
        ("CONSUMER_GROUP", group.to_owned()),
    ]
}

/// Polls `probe` every `every` until it returns `Some`, or fails with `what` after `timeout`.
pub async fn poll_until<T, F, Fut>(what: &str, timeout: Duration, every: Duration, mut probe: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe().await? {
            return Ok(v);
        }
        if Instant::now() > deadline {
            anyhow::bail!("timed out after {timeout:?} waiting until {what}");
        }
        tokio::time::sleep(every).await;
    }
}

/// Messages the registration-service has given a durable outcome (stored, rejected or handed
/// to the DLQ), from its `/metrics`.
pub fn settled(scrape: &test_support::prometheus::Scrape) -> anyhow::Result<f64> {
    Ok(scrape.require("registration_service_done_total")?
        + scrape.require("registration_service_rejected_total")?
        + scrape.require("registration_service_dead_lettered_transient_total")?
        + scrape.require("registration_service_dead_lettered_permanent_total")?)
}

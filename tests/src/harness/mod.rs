//! The one place tests start the system under test: a free port ([`free_port`]), each of the
//! three services as a killable OS process ([`process`], with the environment each binary reads
//! in [`gateway`], [`registration`] and [`dlq_worker`]) or in-process on a random port (the same
//! modules), waiting until a service is ready ([`wait_ready`], [`all_ready`]), and stopping or
//! killing it again ([`ServiceProcess`]).
//!
//! Every integration test and the chaos suite go through here, so a change to how a service is
//! started (a new variable, a longer start-up) is made once.

use std::time::Duration;

pub mod dlq_worker;
pub mod gateway;
pub mod process;
pub mod registration;

pub use process::{binary_path, ServiceProcess};

/// A loopback port that is free right now, for a service that must be told its port up front,
/// or as a port nothing listens on. Bound, read and released: another process could take it in
/// between, a race small enough on a test machine.
pub fn free_port() -> u16 {
    test_support::free_port().expect("free port")
}

/// How long one readiness probe may take: a service that accepted the connection but hangs
/// must not hang the wait past its deadline.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether `url` answers 2xx now.
pub async fn answers_ok(client: &reqwest::Client, url: &str) -> bool {
    client.get(url).timeout(PROBE_TIMEOUT).send().await.is_ok_and(|r| r.status().is_success())
}

/// Polls `url` (a `/readyz` or `/healthz`) until it answers 2xx; whether it did within `timeout`.
pub async fn ready_within(url: &str, timeout: Duration) -> bool {
    let client = reqwest::Client::new();
    crate::wait::within(timeout, || answers_ok(&client, url)).await
}

/// Like [`ready_within`], but panics after `timeout`.
pub async fn wait_ready(url: &str, timeout: Duration) {
    if !ready_within(url, timeout).await {
        panic!("timed out after {timeout:?} waiting until {url} answers 200");
    }
}

/// Waits until every URL answers 2xx, each within `timeout`; the first that never did, if any.
pub async fn all_ready(urls: &[String], timeout: Duration) -> Result<(), String> {
    for url in urls {
        if !ready_within(url, timeout).await {
            return Err(url.clone());
        }
    }
    Ok(())
}

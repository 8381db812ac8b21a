//! Polling waits with a deadline, for asserting on eventually-consistent outcomes.

use std::future::Future;
use std::time::Duration;

/// Polls `condition` every 100 ms until it holds; panics with `what` after `timeout`.
pub async fn until<F, Fut>(timeout: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    if !within(timeout, &mut condition).await {
        panic!("timed out after {timeout:?} waiting until {what}");
    }
}

/// Polls `condition` until it holds (`true`) or `timeout` passes (`false`).
pub async fn within<F, Fut>(timeout: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if condition().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

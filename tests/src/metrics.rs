//! A service's `/metrics` page as a test reads it, to see what a process is doing before a
//! fault is injected: e.g. that a consumer holds polled work it has not made durable yet, so
//! a kill now lands on that work instead of on an idle process.

use test_support::prometheus::{fetch_once, Scrape};

/// The `/metrics` page of the service listening on `port`; `None` while it does not answer.
pub async fn scrape(port: u16) -> Option<String> {
    fetch_once(&format!("http://127.0.0.1:{port}")).await
}

/// The value of a metric of a page (summed over its label sets).
pub fn value(page: &str, name: &str) -> Option<f64> {
    Scrape::parse(page).get(name)
}

/// One metric of the service on `port`; `None` while it does not answer or lacks the metric.
pub async fn read(port: u16, name: &str) -> Option<f64> {
    value(&scrape(port).await?, name)
}

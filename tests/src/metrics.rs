//! A service's `/metrics` page as a test reads it, to see what a process is doing before a
//! fault is injected: e.g. that a consumer holds polled work it has not made durable yet, so
//! a kill now lands on that work instead of on an idle process.
//!
//! Every service serves OpenMetrics text (`reliable_messaging::service::endpoints::metrics::CONTENT_TYPE`): sample
//! lines as in the older Prometheus text, `#` lines for metadata and the final `# EOF`.

use std::time::Duration;

/// The `/metrics` page of the service listening on `port`; `None` while it does not answer.
pub async fn scrape(port: u16) -> Option<String> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(3)).build().ok()?;
    let response = client.get(format!("http://127.0.0.1:{port}/metrics")).send().await.ok()?;
    response.text().await.ok()
}

/// The value of an unlabelled sample (`name value`) of a page; metadata lines start with `#`
/// and never match.
pub fn value(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')).and_then(|v| v.trim().parse().ok()))
}

/// One metric of the service on `port`; `None` while it does not answer or lacks the metric.
pub async fn read(port: u16, name: &str) -> Option<f64> {
    value(&scrape(port).await?, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_an_unlabelled_sample_of_an_openmetrics_page() {
        let page = "# HELP svc_in_flight In flight.\n# TYPE svc_in_flight gauge\nsvc_in_flight 2\n\
                    # TYPE svc_in_flight_max gauge\nsvc_in_flight_max 9\n# EOF\n";
        assert_eq!(value(page, "svc_in_flight"), Some(2.0));
        assert_eq!(value(page, "svc_missing"), None);
    }
}

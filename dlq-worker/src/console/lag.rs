//! Consumer lag per partition for the overview, read from each service's own `/metrics` (the
//! `<prefix>_consumer_partition_lag{topic,partition}` gauges the library exports), beside its
//! `/readyz`. A service that does not answer in time is "unknown", never 0.

use std::time::Duration;

/// How long the overview waits for one service's `/metrics`.
const TIMEOUT: Duration = Duration::from_secs(2);

/// The family's name after the service's prefix.
const FAMILY_SUFFIX: &str = "_consumer_partition_lag";

/// What one service said about its lag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceLag {
    /// `(topic, partition, lag)`, as served.
    Partitions(Vec<(String, i32, u64)>),
    /// It answered, with no partition lag (no consumer, or none assigned or computed yet).
    NoneExported,
    /// No answer: why.
    Unknown(String),
}

/// `/metrics` beside a `/readyz` URL, if it ends so.
pub fn metrics_url(readyz_url: &str) -> Option<String> {
    readyz_url.strip_suffix("/readyz").map(|base| format!("{base}/metrics"))
}

pub async fn fetch(client: &reqwest::Client, readyz_url: &str) -> ServiceLag {
    let Some(url) = metrics_url(readyz_url) else {
        return ServiceLag::Unknown(format!("{readyz_url} does not end in /readyz, so its /metrics is not known"));
    };
    let answer = async { client.get(&url).send().await?.error_for_status()?.text().await };
    match tokio::time::timeout(TIMEOUT, answer).await {
        Ok(Ok(page)) => parse(&page),
        Ok(Err(e)) => ServiceLag::Unknown(e.to_string()),
        Err(_) => ServiceLag::Unknown(format!("no answer from {url} within {} s", TIMEOUT.as_secs())),
    }
}

/// The partition lag samples of an OpenMetrics page.
pub fn parse(page: &str) -> ServiceLag {
    let mut partitions: Vec<_> = page.lines().filter_map(sample).collect();
    if partitions.is_empty() {
        return ServiceLag::NoneExported;
    }
    partitions.sort();
    ServiceLag::Partitions(partitions)
}

/// `name{topic="t",partition="0"} 5` with a name ending in [`FAMILY_SUFFIX`].
fn sample(line: &str) -> Option<(String, i32, u64)> {
    let (name, rest) = line.split_once('{')?;
    if !name.ends_with(FAMILY_SUFFIX) || name.starts_with('#') {
        return None;
    }
    let (labels, value) = rest.rsplit_once("} ")?;
    let label =
        |key: &str| labels.split(',').find_map(|kv| kv.strip_prefix(key)?.strip_prefix("=\"")?.strip_suffix('"'));
    // Kafka topic names are [a-zA-Z0-9._-]: nothing a label value would escape.
    let topic = label("topic")?.to_owned();
    let partition = label("partition")?.parse().ok()?;
    let lag = value.split_whitespace().next()?.parse().ok()?;
    Some((topic, partition, lag))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_partition_of_the_family_and_nothing_else() {
        let page = "# HELP svc_consumer_partition_lag Lag.\n# TYPE svc_consumer_partition_lag gauge\n\
                    svc_consumer_partition_lag{topic=\"t\",partition=\"1\"} 7\n\
                    svc_consumer_partition_lag{topic=\"t\",partition=\"0\"} 3\n\
                    svc_consumer_lag 10\nsvc_stage_calls_total{stage=\"poll\"} 1\n# EOF\n";
        assert_eq!(parse(page), ServiceLag::Partitions(vec![("t".into(), 0, 3), ("t".into(), 1, 7)]));
        assert_eq!(parse("svc_consumer_lag 10\n# EOF\n"), ServiceLag::NoneExported);
    }

    #[test]
    fn metrics_is_found_beside_readyz_only() {
        assert_eq!(metrics_url("http://rs:8081/readyz").as_deref(), Some("http://rs:8081/metrics"));
        assert_eq!(metrics_url("http://rs:8081/health"), None);
    }
}

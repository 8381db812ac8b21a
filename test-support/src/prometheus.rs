//! Reads the OpenMetrics text the services serve on `/metrics`, so harnesses count with the
//! numbers an operator sees. Only sample lines are read; `# HELP`, `# TYPE` and the closing
//! `# EOF` are metadata.

use std::collections::HashMap;
use std::time::Duration;

/// One scrape: every sample summed over its label sets, by metric name.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    values: HashMap<String, f64>,
    /// `stage="…"` → value, per metric name, for the stage-timing families.
    stages: HashMap<String, Vec<(String, f64)>>,
}

impl Scrape {
    pub fn parse(text: &str) -> Self {
        let mut values: HashMap<String, f64> = HashMap::new();
        let mut stages: HashMap<String, Vec<(String, f64)>> = HashMap::new();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else { continue };
            let name = series.split('{').next().unwrap_or(series).trim();
            if let Ok(v) = value.trim().parse::<f64>() {
                *values.entry(name.to_owned()).or_default() += v;
                if let Some(stage) = series.split("stage=\"").nth(1).and_then(|rest| rest.split('"').next()) {
                    stages.entry(name.to_owned()).or_default().push((stage.to_owned(), v));
                }
            }
        }
        Scrape { values, stages }
    }

    /// The metric summed over all label sets; `None` when the service does not expose it.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.values.get(name).copied()
    }

    /// Like [`Scrape::get`], with an error naming the missing metric.
    pub fn require(&self, name: &str) -> Result<f64, MissingMetric> {
        self.get(name).ok_or_else(|| MissingMetric(name.to_owned()))
    }

    /// The series of `name` by their `stage` label, in the order served.
    pub fn by_stage(&self, name: &str) -> &[(String, f64)] {
        self.stages.get(name).map_or(&[], Vec::as_slice)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("metric {0} is not exposed on /metrics")]
pub struct MissingMetric(pub String);

/// The `/metrics` page under `base_url` (`http://127.0.0.1:<port>`).
pub async fn fetch(http: &reqwest::Client, base_url: &str) -> reqwest::Result<String> {
    let url = format!("{base_url}/metrics");
    let mut response = http.get(&url).send().await;
    // A pooled keep-alive connection the service closed as idle just as it was reused fails
    // without the request having been read; a second attempt opens a fresh connection.
    if response.as_ref().is_err_and(reqwest::Error::is_request) {
        response = http.get(&url).send().await;
    }
    response?.error_for_status()?.text().await
}

/// [`fetch`] with a client of its own and a 3 s timeout; `None` while the service does not answer.
pub async fn fetch_once(base_url: &str) -> Option<String> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(3)).build().ok()?;
    fetch(&http, base_url).await.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_label_sets_and_skips_metadata() {
        let text = "# HELP x X.\n# TYPE x counter\nx_total 3\n\
                    # TYPE dlq_parked counter\n\
                    dlq_parked_total{reason=\"poison\"} 2\ndlq_parked_total{reason=\"permanent\"} 5\n\
                    lag 1.5e3\n# EOF\n";
        let s = Scrape::parse(text);
        assert_eq!(s.get("x_total"), Some(3.0));
        assert_eq!(s.get("dlq_parked_total"), Some(7.0));
        assert_eq!(s.get("lag"), Some(1500.0));
        assert_eq!(s.get("x"), None, "a family's name is not a sample");
        assert!(s.require("missing").unwrap_err().to_string().contains("missing"));
    }

    #[test]
    fn keeps_stage_series_in_order() {
        let s = Scrape::parse("t{stage=\"poll\"} 1\nt{stage=\"commit\"} 2\n");
        assert_eq!(s.by_stage("t"), [("poll".to_owned(), 1.0), ("commit".to_owned(), 2.0)]);
        assert_eq!(s.get("t"), Some(3.0));
    }
}

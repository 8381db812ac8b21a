//! Reads the OpenMetrics text the services serve on `/metrics`: the harness counts with the
//! same numbers an operator sees (accepted, stored, retried, parked, consumer lag). Only the
//! sample lines are read; `# HELP`, `# TYPE` and the closing `# EOF` are metadata.

use std::collections::HashMap;

/// One scrape: every sample summed over its labels, by metric name.
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
            let (series, value) = match line.rsplit_once(' ') {
                Some(parts) => parts,
                None => continue,
            };
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

    /// The series of `name` by their `stage` label, in the order served.
    pub fn by_stage(&self, name: &str) -> &[(String, f64)] {
        self.stages.get(name).map_or(&[], Vec::as_slice)
    }

    /// The metric summed over all label sets; `None` when the service does not expose it.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.values.get(name).copied()
    }

    /// Like [`Scrape::get`], with an error naming the missing metric.
    pub fn require(&self, name: &str) -> anyhow::Result<f64> {
        self.get(name).ok_or_else(|| anyhow::anyhow!("metric {name} is not exposed on /metrics"))
    }
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
        assert!(s.require("missing").is_err());
    }
}

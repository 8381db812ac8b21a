//! The per-instance registry every service serves on `/metrics`, and its one content type.

use std::fmt;

use prometheus_client::encoding::text;
use prometheus_client::registry::Registry;

use super::build_info;
use super::process::ProcessCollector;

/// OpenMetrics text, the format `prometheus-client` was built around: its counters carry the
/// `_total` suffix by construction, families are typed (`info` for build info), and the
/// page ends with `# EOF`, so a truncated scrape is detected instead of read as zeros.
/// Prometheus asks for it first in its `Accept` header; the sample lines are the same as
/// in the older 0.0.4 text, so a reader of either parses it.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A `/metrics` page could not be encoded (a collector failed to write).
#[derive(Debug, thiserror::Error)]
#[error("encoding the metrics failed")]
pub struct MetricsError(#[from] fmt::Error);

/// The metrics of one service instance: the standard `process_*` metrics under their usual
/// names, and the service's own under its prefix, starting with `<prefix>_build_info`.
#[derive(Debug)]
pub struct MetricsRegistry {
    /// Unprefixed: dashboards find `process_*` by these names whatever the exporter.
    process: Registry,
    service: Registry,
}

impl MetricsRegistry {
    /// A registry for the service whose metrics start with `prefix` (`-` written `_`), built
    /// as `version` (the service crate's `CARGO_PKG_VERSION`).
    pub fn new(prefix: &str, version: &str) -> Self {
        let mut process = Registry::default();
        process.register_collector(Box::new(ProcessCollector));
        let mut service = Registry::with_prefix(prefix.replace('-', "_"));
        build_info::register(&mut service, version);
        Self { process, service }
    }

    /// Where the service registers its metrics; names get the prefix, counters `_total`.
    pub fn service(&mut self) -> &mut Registry {
        &mut self.service
    }

    /// The whole page in [`CONTENT_TYPE`].
    pub fn encode(&self) -> Result<String, MetricsError> {
        let mut page = String::new();
        text::encode_registry(&mut page, &self.service)?;
        text::encode_registry(&mut page, &self.process)?;
        text::encode_eof(&mut page)?;
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::metrics::counter::Counter;

    use super::*;

    #[test]
    fn serves_the_service_metrics_under_their_prefix_then_process_and_eof() {
        let mut registry = MetricsRegistry::new("my-svc", "1.2.3");
        let handled = Counter::<u64>::default();
        registry.service().register("handled", "Messages handled", handled.clone());
        handled.inc_by(3);
        let page = registry.encode().unwrap();
        assert!(page.contains("\nmy_svc_handled_total 3\n"), "{page}");
        assert!(page.contains("my_svc_build_info{version=\"1.2.3\""), "{page}");
        #[cfg(target_os = "linux")]
        assert!(page.contains("\nprocess_resident_memory_bytes "), "{page}");
        assert!(page.ends_with("# EOF\n"), "{page}");
    }

    #[test]
    fn two_instances_in_one_process_count_apart() {
        let (mut a, mut b) = (MetricsRegistry::new("svc", "1"), MetricsRegistry::new("svc", "1"));
        let (ca, cb) = (Counter::<u64>::default(), Counter::<u64>::default());
        a.service().register("handled", "Messages handled", ca.clone());
        b.service().register("handled", "Messages handled", cb.clone());
        ca.inc();
        assert!(a.encode().unwrap().contains("\nsvc_handled_total 1\n"));
        assert!(b.encode().unwrap().contains("\nsvc_handled_total 0\n"));
    }
}

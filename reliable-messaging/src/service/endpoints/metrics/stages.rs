//! [`StageTimings`] as two counter families, `<prefix>_stage_seconds_total{stage}` and
//! `<prefix>_stage_calls_total{stage}`; nothing while no stage was recorded.

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use super::family::counters;
use crate::consumer::stage_timings::StageTimings;

/// Writes both families; shared by the consumer's collector, whose stats hold the timings.
pub(super) fn encode(timings: &StageTimings, encoder: &mut DescriptorEncoder) -> fmt::Result {
    let stages = timings.snapshot();
    if stages.is_empty() {
        return Ok(());
    }
    counters(
        encoder,
        "stage_seconds",
        "Wall-clock seconds spent per processing stage (stages overlap)",
        stages.iter().map(|s| ([("stage", s.name)], s.total.as_secs_f64())),
    )?;
    counters(
        encoder,
        "stage_calls",
        "Times each processing stage ran",
        stages.iter().map(|s| ([("stage", s.name)], s.calls)),
    )
}

impl Collector for StageTimings {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        encode(self, &mut encoder)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use crate::service::endpoints::metrics::MetricsRegistry;

    use super::*;

    #[test]
    fn renders_both_families_per_stage_in_first_seen_order() {
        let timings = Arc::new(StageTimings::default());
        let mut registry = MetricsRegistry::new("svc", "0");
        registry.service().register_collector(Box::new(timings.clone()));
        assert!(!registry.encode().unwrap().contains("svc_stage_"), "nothing before the first stage");
        timings.record("poll", Duration::from_millis(3));
        timings.record("insert", Duration::from_millis(10));
        timings.record("poll", Duration::from_millis(2));
        let page = registry.encode().unwrap();
        assert!(page.contains("svc_stage_seconds_total{stage=\"poll\"} 0.005\n"), "{page}");
        assert!(page.contains("svc_stage_calls_total{stage=\"poll\"} 2\n"), "{page}");
        assert!(page.contains("svc_stage_calls_total{stage=\"insert\"} 1\n"), "{page}");
        assert!(page.find("stage=\"poll\"") < page.find("stage=\"insert\""), "{page}");
    }
}

//! Writing one metric family from a [`Collector`](prometheus_client::collector::Collector):
//! the values a collector reads at scrape time from atomics it does not own.
//!
//! Counter names are given without `_total`: the OpenMetrics encoder appends it (and
//! `prometheus-client` rejects a registered counter that already ends with it).

use std::fmt;

use prometheus_client::encoding::{
    DescriptorEncoder, EncodeCounterValue, EncodeGaugeValue, EncodeLabelSet, EncodeMetric,
};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

/// One unlabelled counter, encoded `<prefix>_<name>_total`.
pub fn counter(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: impl EncodeCounterValue) -> fmt::Result {
    ConstCounter::new(value).encode(encoder.encode_descriptor(name, help, None, MetricType::Counter)?)
}

/// One unlabelled gauge, encoded `<prefix>_<name>`.
pub fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: impl EncodeGaugeValue) -> fmt::Result {
    ConstGauge::new(value).encode(encoder.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

/// A counter family, one series per label set, in the order given.
pub fn counters<S: EncodeLabelSet, V: EncodeCounterValue>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (S, V)>,
) -> fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in series {
        ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// A gauge family, one series per label set, in the order given.
pub fn gauges<S: EncodeLabelSet, V: EncodeGaugeValue>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (S, V)>,
) -> fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in series {
        ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

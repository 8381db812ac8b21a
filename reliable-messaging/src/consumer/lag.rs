//! Consumer lag (high watermark minus committed offset), kept current in the background for
//! `/metrics`: the total and per assigned partition.
//!
//! Apart from the run loop because it is the only part that blocks on broker round trips: it
//! runs on blocking threads and never delays a batch.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::Consumer;
use rdkafka::Offset;
use tokio_util::sync::CancellationToken;

use super::member::Member;
use super::stats::{ConsumerStats, PartitionLag, LAG_REFRESH};

/// Keeps [`ConsumerStats::consumer_lag`] and [`ConsumerStats::partition_lag`] current until
/// `shutdown`. The offset and watermark queries block on broker round trips, so they run on a
/// blocking thread, off the runtime.
pub(crate) async fn monitor_lag(consumer: Arc<Member>, stats: Arc<ConsumerStats>, shutdown: CancellationToken) {
    loop {
        let c = consumer.clone();
        let lags = tokio::task::spawn_blocking(move || partition_lags(&c)).await.ok().flatten();
        // The total keeps its last value without an answer (as the alerts expect); the
        // per-partition series go absent instead, so no reader mistakes an old number for now.
        if let Some(lags) = lags.as_ref().filter(|l| !l.is_empty()) {
            *stats.consumer_lag.lock().expect("consumer lag lock") = Some(lags.iter().map(|p| p.lag).sum());
        }
        *stats.partition_lag.lock().expect("partition lag lock") = lags.unwrap_or_default();
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(LAG_REFRESH) => {}
        }
    }
}

/// Per assigned partition, high watermark minus committed offset (the low watermark where
/// nothing is committed yet). Empty without an assignment; `None` without an answer.
fn partition_lags(consumer: &Member) -> Option<Vec<PartitionLag>> {
    let timeout = Duration::from_secs(2);
    let committed = consumer.committed(timeout).ok()?;
    let mut lags = Vec::with_capacity(committed.count());
    for p in committed.elements() {
        let (low, high) = consumer.fetch_watermarks(p.topic(), p.partition(), timeout).ok()?;
        let from = match p.offset() {
            Offset::Offset(o) => o,
            _ => low,
        };
        lags.push(PartitionLag {
            topic: p.topic().to_owned(),
            partition: p.partition(),
            lag: u64::try_from(high - from).unwrap_or(0),
        });
    }
    Some(lags)
}

//! Consumer lag (high watermark minus committed offset), kept current in the background for
//! `/metrics`: the total and per assigned partition.
//!
//! Apart from the run loop because it is the only part that blocks on broker round trips: it
//! runs on blocking threads and never delays a batch.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::member::Member;
use super::stats::{ConsumerStats, LAG_REFRESH};
use crate::kafka::group;

/// Keeps [`ConsumerStats::consumer_lag`] and [`ConsumerStats::partition_lag`] current until
/// `shutdown`.
pub(crate) async fn monitor_lag(consumer: Arc<Member>, stats: Arc<ConsumerStats>, shutdown: CancellationToken) {
    let record = |lags: Option<Vec<group::PartitionLag>>| {
        // The total keeps its last value without an answer (as the alerts expect); the
        // per-partition series go absent instead, so no reader mistakes an old number for now.
        if let Some(lags) = lags.as_ref().filter(|l| !l.is_empty()) {
            *stats.consumer_lag.lock().expect("consumer lag lock") = Some(lags.iter().map(|p| p.lag).sum());
        }
        *stats.partition_lag.lock().expect("partition lag lock") = lags.unwrap_or_default();
    };
    group::monitor_lag(consumer, LAG_REFRESH, record, shutdown).await;
}

//! Consumer lag (high watermark minus committed offset), kept current in the background for
//! `/metrics`.
//!
//! Apart from the run loop because it is the only part that blocks on broker round trips: it
//! runs on blocking threads and never delays a batch.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::Consumer;
use rdkafka::Offset;
use tokio_util::sync::CancellationToken;

use super::member::Member;
use super::stats::{ConsumerStats, LAG_REFRESH};

/// Keeps [`ConsumerStats::consumer_lag`] current until `shutdown`. The offset and watermark
/// queries block on broker round trips, so they run on a blocking thread, off the runtime.
pub(crate) async fn monitor_lag(consumer: Arc<Member>, stats: Arc<ConsumerStats>, shutdown: CancellationToken) {
    loop {
        let c = consumer.clone();
        if let Ok(Some(lag)) = tokio::task::spawn_blocking(move || consumer_lag(&c)).await {
            *stats.consumer_lag.lock().expect("consumer lag lock") = Some(lag);
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(LAG_REFRESH) => {}
        }
    }
}

/// Sum over the assigned partitions of high watermark minus committed offset (the low
/// watermark where nothing is committed yet). `None` without an assignment or an answer.
fn consumer_lag(consumer: &Member) -> Option<u64> {
    let timeout = Duration::from_secs(2);
    let committed = consumer.committed(timeout).ok()?;
    if committed.count() == 0 {
        return None;
    }
    let mut lag = 0u64;
    for p in committed.elements() {
        let (low, high) = consumer.fetch_watermarks(p.topic(), p.partition(), timeout).ok()?;
        let from = match p.offset() {
            Offset::Offset(o) => o,
            _ => low,
        };
        lag += u64::try_from(high - from).unwrap_or(0);
    }
    Some(lag)
}

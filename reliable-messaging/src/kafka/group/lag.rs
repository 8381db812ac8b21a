//! Consumer lag per assigned partition (high watermark minus committed offset), for any group
//! member: the reliable consumer and the dlq-worker keep it current with [`monitor_lag`].

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{Consumer, ConsumerContext};
use rdkafka::Offset;
use tokio_util::sync::CancellationToken;

/// Consumer lag of one assigned partition: high watermark minus committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    pub lag: u64,
}

/// Per assigned partition, high watermark minus committed offset (the low watermark where
/// nothing is committed yet). Empty without an assignment; `None` without an answer. Blocks
/// on broker round trips: call it off the runtime.
pub fn partition_lags<C: ConsumerContext, K: Consumer<C>>(consumer: &K) -> Option<Vec<PartitionLag>> {
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

/// Computes [`partition_lags`] every `every` on a blocking thread, off the runtime, and hands
/// each result to `record` until `shutdown`.
pub async fn monitor_lag<C, K>(
    consumer: Arc<K>,
    every: Duration,
    record: impl Fn(Option<Vec<PartitionLag>>),
    shutdown: CancellationToken,
) where
    C: ConsumerContext + 'static,
    K: Consumer<C> + Send + Sync + 'static,
{
    loop {
        let c = consumer.clone();
        record(tokio::task::spawn_blocking(move || partition_lags(&*c)).await.ok().flatten());
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

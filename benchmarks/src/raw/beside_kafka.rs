//! The raw batched upsert while the broker serves a drain: the same loop as
//! [`database::measure`](super::database::measure), run while a bare consumer in this process
//! reads the drain's topic at the rate the registration-service drained it.
//!
//! Why it exists: on a 2-core machine the raw loop alone has both cores to itself, while the
//! service's statements share them with the broker's fetches and the client's decompression.
//! This control puts that load (and only that: no parsing, no statements of ours) next to the
//! raw loop, so the report can say how much of the gap to the raw limit is the machine serving
//! Kafka rather than our code.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message};

use super::database;
use crate::environment::BenchDatabase;

/// The raw loop's rate beside the paced read, and the rate the read really reached.
#[derive(Debug, Clone, Copy)]
pub struct BesideKafka {
    pub batched_rows_per_sec: f64,
    pub kafka_messages_per_sec: f64,
}

/// Runs the raw batched loop (`rows` rows in statements of `batch_size`) into the migrated `db`
/// while a consumer of a fresh group reads `topic` from the beginning at `rate` messages per
/// second, copying each payload as the service does.
pub async fn measure(
    db: &BenchDatabase,
    run_id: &str,
    batch_size: usize,
    rows: usize,
    bootstrap: &str,
    topic: &str,
    rate: f64,
) -> anyhow::Result<BesideKafka> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("{topic}-beside-raw-{}", uuid::Uuid::new_v4()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("log_level", "3")
        .create()
        .context("creating the paced consumer")?;
    consumer.subscribe(&[topic]).context("subscribing the paced consumer")?;
    let stop = Arc::new(AtomicBool::new(false));
    let read = Arc::new(AtomicU64::new(0));
    let reader = {
        let (stop, read) = (stop.clone(), read.clone());
        std::thread::spawn(move || paced_read(&consumer, rate, &stop, &read))
    };
    // The read gets going (group join, first fetch) before the loop's clock starts.
    let joined = Instant::now();
    while read.load(Ordering::Relaxed) == 0 && joined.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let read_before = read.load(Ordering::Relaxed);
    let started = Instant::now();
    let limits = database::measure(db, run_id, batch_size, rows, 0).await;
    let elapsed = started.elapsed().as_secs_f64();
    let read_during = read.load(Ordering::Relaxed) - read_before;
    stop.store(true, Ordering::Relaxed);
    reader.join().map_err(|_| anyhow::anyhow!("the paced consumer panicked"))?;
    let limits = limits?;
    if read_during == 0 {
        anyhow::bail!("the paced consumer read nothing while the raw loop ran: the control did not happen");
    }
    Ok(BesideKafka {
        batched_rows_per_sec: limits.batched_rows_per_sec,
        kafka_messages_per_sec: read_during as f64 / elapsed,
    })
}

/// Reads until `stop`, never ahead of `rate` messages per second since the first message.
fn paced_read(consumer: &BaseConsumer, rate: f64, stop: &AtomicBool, read: &AtomicU64) {
    let mut started: Option<Instant> = None;
    let mut copied = 0_usize;
    while !stop.load(Ordering::Relaxed) {
        let done = read.load(Ordering::Relaxed);
        if let Some(started) = started {
            let due = Duration::from_secs_f64(done as f64 / rate);
            if let Some(ahead) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(ahead.min(Duration::from_millis(5)));
                continue;
            }
        }
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            started.get_or_insert_with(Instant::now);
            // Owned, like the service's deliveries.
            copied += m.payload().map(<[u8]>::to_vec).map_or(0, |p| p.len());
            read.fetch_add(1, Ordering::Relaxed);
        }
    }
    std::hint::black_box(copied);
}

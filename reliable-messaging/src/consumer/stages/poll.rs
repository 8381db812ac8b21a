//! The first stage, [`Poll`]: gathering the next batch while the handler works on the current
//! one, and letting the handler prepare it.
//!
//! Batching is a throughput concern with its own rules (take what is ready, keep filling while
//! the handler is busy, linger at most `max_batch_wait`); the stages after it are about
//! durability.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::FutureExt as _;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use std::sync::{Arc, Mutex};

use crate::consumer::batch::Batch;
use crate::consumer::member::Member;
use crate::consumer::{ConsumerStats, Handler};
use crate::kafka::group::{lock_ownership, Ownership};
use crate::message::Delivery;

/// Whether the handler is still busy with the batch before the one being polled, and the
/// signal that it is done.
pub(crate) struct HandlerState<'a> {
    pub(crate) busy: &'a AtomicBool,
    pub(crate) idle: &'a Notify,
}

/// Ready messages copied between two chances for the handler to run.
const YIELD_EVERY: usize = 64;

pub(crate) struct Poll<H> {
    pub(crate) member: Arc<Member>,
    /// The assignment each message is polled under, shared with the rebalance callbacks.
    pub(crate) ownership: Arc<Mutex<Ownership>>,
    /// Shared with the blocking thread that prepares the next batch.
    pub(crate) handler: Arc<H>,
    pub(crate) max_batch_size: usize,
    pub(crate) max_batch_wait: Duration,
    /// How many chunks the batch is prepared in, one per concurrent handler call.
    pub(crate) partition_concurrency: usize,
    pub(crate) stats: Arc<ConsumerStats>,
}

impl<H: Handler> Poll<H> {
    /// Waits for the first message, then takes whatever librdkafka has ready, and keeps
    /// gathering while `handler` is still busy with the previous batch (or for
    /// `max_batch_wait`), up to `max_batch_size`. `None` when shutdown was requested.
    pub(crate) async fn next_batch(
        &self,
        shutdown: &CancellationToken,
        handler: Option<HandlerState<'_>>,
    ) -> Option<Batch> {
        let waiting = std::time::Instant::now();
        let first = tokio::select! {
            _ = shutdown.cancelled() => return None,
            m = self.member.recv() => m,
        };
        // Time with nothing to take: in a drain, time the broker's fetches kept us waiting.
        self.stats.stages.record("wait", waiting.elapsed());
        let mut batch = Batch::default();
        match first {
            Ok(m) => self.take(&mut batch, Delivery::from_message(&m)),
            Err(e) => {
                tracing::warn!(error = %e, "poll failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                return Some(batch);
            }
        }
        let filling = std::time::Instant::now();
        // One timer for the whole fill, not one per message: a timer per `recv` cost a clock
        // read and a timer-wheel entry for every message polled.
        let linger = tokio::time::sleep_until(Instant::now() + self.max_batch_wait);
        tokio::pin!(linger);
        let mut lingered = self.max_batch_wait.is_zero();
        while batch.deliveries.len() < self.max_batch_size {
            // What librdkafka already holds is taken without waiting.
            if let Some(m) = self.member.recv().now_or_never() {
                // Copying hundreds of ready messages takes a while; let the handler joined
                // with this poll see its statement's answer in between (see the prepare below).
                if batch.deliveries.len() % YIELD_EVERY == YIELD_EVERY - 1 {
                    tokio::task::yield_now().await;
                }
                match m {
                    Ok(m) => self.take(&mut batch, Delivery::from_message(&m)),
                    Err(e) => {
                        tracing::warn!(error = %e, "poll failed");
                        break;
                    }
                }
                continue;
            }
            let handler_busy = handler.as_ref().is_some_and(|h| h.busy.load(Ordering::Acquire));
            if lingered && !handler_busy {
                break;
            }
            tokio::select! {
                biased;
                m = self.member.recv() => match m {
                    Ok(m) => self.take(&mut batch, Delivery::from_message(&m)),
                    Err(e) => {
                        tracing::warn!(error = %e, "poll failed");
                        break;
                    }
                },
                // A permit stored by a `notify_one` before this wait still wakes it.
                _ = async { if let Some(h) = &handler { h.idle.notified().await } }, if handler_busy => {}
                _ = &mut linger, if !lingered => lingered = true,
            }
        }
        batch.group_by_partition();
        self.stats.stages.record("poll", filling.elapsed());
        let preparing = std::time::Instant::now();
        // On a thread of its own, not in this task: the poll runs joined with the handler of
        // the previous batch (see `ReliableConsumer::run`), so CPU work here would keep that handler from seeing
        // its statement's answer until the preparation ended. Measured: a drain's `insert`
        // took 5.5 ms per statement this way against 3.9 ms for the same statement alone.
        let handler = self.handler.clone();
        let chunks = self.partition_concurrency;
        let batch = tokio::task::spawn_blocking(move || {
            batch.prepare(&*handler, chunks);
            batch
        })
        .await
        // A panicking `prepare` is the handler's bug; it must not pass as an empty batch.
        .unwrap_or_else(|e| match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("preparing a batch: {e}"),
        });
        self.stats.stages.record("prepare", preparing.elapsed());
        Some(batch)
    }

    /// Adds a polled message to `batch` with the assignment it arrived under. Rebalance
    /// callbacks run inside `recv`, before it returns a message, so the token read here is the
    /// one of the assignment the message was fetched for.
    fn take(&self, batch: &mut Batch, delivery: Delivery) {
        let token = lock_ownership(&self.ownership).token(&delivery.topic, delivery.partition);
        batch.push(delivery, token);
    }
}

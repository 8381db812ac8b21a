//! The run loop: poll, settle, commit, until shutdown, a halt or an interrupted batch.
//!
//! Apart from the type's definition (in the module root) so that the root depends only on the
//! parts it is built from, and every part that adds behaviour to [`ReliableConsumer`] (this
//! file, polling, settling, outages, commits) depends on the root, never the other way round:
//! no import cycles.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::batch::Batch;
use super::dead_letter_routing::Settled;
use super::handler::Handler;
use super::lag::monitor_lag;
use super::poll::HandlerState;
use super::settings::CommitPolicy;
use super::{ConsumerError, ReliableConsumer};

impl<H: Handler> ReliableConsumer<H> {
    /// Consumes until `shutdown` is cancelled. The batch in progress is finished, made durable
    /// and committed before this returns; nothing is left uncommitted-but-stored.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), ConsumerError> {
        tracing::info!(topics = ?self.settings.topics, group = %self.settings.group_id, "consumer started");
        let lag_monitor = tokio::spawn(monitor_lag(self.consumer.clone(), self.stats.clone(), shutdown.clone()));
        let mut prefetched: Option<Batch> = None;
        // When the handler last finished a batch: the time until it starts the next is the
        // `idle` stage, the serial gap a drain wants near zero.
        let mut handler_free_since: Option<std::time::Instant> = None;
        loop {
            let mut batch = match prefetched.take() {
                Some(batch) => batch,
                None => match self.next_batch(&shutdown, None).await {
                    Some(batch) => batch,
                    None => break,
                },
            };
            if batch.deliveries.is_empty() {
                continue;
            }
            self.stats.consumed.fetch_add(batch.deliveries.len() as u64, Ordering::Relaxed);
            // The next batch is polled while this one is handled, so the poll's round trips
            // and copying overlap the handler's database work. This batch's offsets are
            // committed as soon as its outcomes are durable, whatever the poll is doing. The
            // next batch keeps filling while this one is handled (`busy`), and closes when the
            // handler is free and librdkafka has nothing more ready.
            let prepared = std::mem::take(&mut batch.prepared);
            let busy = AtomicBool::new(true);
            let idle = Notify::new();
            if let Some(free_since) = handler_free_since.take() {
                self.stats.stages.record("idle", free_since.elapsed());
            }
            let (settled, next) = tokio::join!(
                async {
                    // Handling and dead-lettering continue the messages' trace (a batch
                    // mixing traces links to each of them).
                    let handling = crate::kafka::trace_context::batch_span(&batch.deliveries);
                    let settled =
                        tracing::Instrument::instrument(self.settle(&batch.deliveries, prepared, &shutdown), handling)
                            .await
                            .inspect(|settled| {
                                if self.settings.commit_policy == CommitPolicy::AfterDurableOutcome {
                                    match settled {
                                        Settled::Durable => self.commit(&batch),
                                        Settled::Halted { durable, .. } => self.commit(&batch.prefix(*durable)),
                                        Settled::Interrupted => {}
                                    }
                                }
                            });
                    // Also on an error: the poll must not wait for a handler that is gone.
                    busy.store(false, Ordering::Release);
                    idle.notify_one();
                    handler_free_since = Some(std::time::Instant::now());
                    settled
                },
                self.next_batch(&shutdown, Some(HandlerState { busy: &busy, idle: &idle }))
            );
            match settled? {
                Settled::Durable => {}
                // Shutdown arrived while a failed message could not reach the DLQ, or while a
                // dependency was still down: leave the offsets uncommitted so the messages are
                // redelivered, never dropped.
                Settled::Interrupted => break,
                Settled::Halted { reason, .. } => {
                    // The batch polled meanwhile is dropped uncommitted: after a restart it
                    // is consumed again, from the message that tripped the limit.
                    self.halt(reason, &shutdown).await;
                    break;
                }
            }
            match next {
                Some(batch) => prefetched = Some(batch),
                None => break,
            }
        }
        lag_monitor.abort();
        // Commits are sent asynchronously; make the last position durable before leaving.
        self.commit_before_exit().await;
        tracing::info!("consumer stopped");
        Ok(())
    }
}

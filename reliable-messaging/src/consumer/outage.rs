//! Stopping consumption without leaving the group: riding out a dependency outage (pause,
//! probe, resume) and halting after the dead-letter flood limit tripped.
//!
//! Both keep polling while paused, so the group does not evict this member and rebalances are
//! served; both leave whatever they could not finish uncommitted, so nothing is lost.

use std::sync::atomic::Ordering;
use std::time::Duration;

use rdkafka::consumer::Consumer as _;
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::handler::Handler;
use super::stats::Outage;
use super::{ConsumerError, ReliableConsumer};
use crate::consumer::delivery::Delivery;
use crate::consumer::outcome::Outcome;
use crate::dead_letter::HaltReason;

impl<H: Handler> ReliableConsumer<H> {
    /// Pauses consumption while the dependency named by a `DependencyDown` outcome is down:
    /// every partition is paused (and any assigned meanwhile), the consumer keeps polling so it
    /// stays in its group, and the messages that met the outage are handled again with
    /// backoff, as the probe. Returns `false` if shutdown came first; the messages are then
    /// left uncommitted. Nothing is dead-lettered for an outage, however long it lasts.
    pub(super) async fn ride_out_outage(
        &self,
        batch: &[Delivery],
        outcomes: &mut [Outcome],
        shutdown: &CancellationToken,
    ) -> Result<bool, ConsumerError> {
        let Some(Outcome::DependencyDown { dependency, message }) =
            outcomes.iter().find(|o| o.is_dependency_down()).cloned()
        else {
            return Ok(true);
        };
        let started = std::time::Instant::now();
        *self.stats.outage.lock().expect("outage lock") =
            Some(Outage { dependency: dependency.clone(), since: started });
        self.stats.outages.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(%dependency, error = %message, "dependency down: consumption paused; nothing is dead-lettered until it answers");
        self.pause_all();
        let mut attempt = 0;
        let result = loop {
            let pending: Vec<usize> = (0..outcomes.len()).filter(|&i| outcomes[i].is_dependency_down()).collect();
            if pending.is_empty() {
                break Ok(true);
            }
            if !self.keep_membership_for(self.settings.outage_probe_backoff.delay(attempt), shutdown).await {
                break Ok(false);
            }
            let subset: Vec<Delivery> = pending.iter().map(|&i| batch[i].clone()).collect();
            let results = match self.handle_with_in_place_retries(&subset, Vec::new(), shutdown).await {
                Ok(results) => results,
                Err(e) => break Err(e),
            };
            for (&i, outcome) in pending.iter().zip(results) {
                outcomes[i] = outcome;
            }
            attempt += 1;
        };
        self.resume_all();
        *self.stats.outage.lock().expect("outage lock") = None;
        if matches!(result, Ok(true)) {
            tracing::info!(%dependency, outage_secs = started.elapsed().as_secs_f64(), "dependency back: consumption resumed");
        }
        result
    }

    /// Stops consuming after the dead-letter flood limit tripped: pauses everything, reports
    /// not-ready with the reason, and keeps the group membership until shutdown. The offsets
    /// from the tripping message on stay uncommitted, so a restart after the fix resumes there.
    pub(super) async fn halt(&self, reason: HaltReason, shutdown: &CancellationToken) {
        tracing::error!(
            reason = %reason.summary,
            first_failures = ?reason.first_failures,
            "dead-letter flood limit reached: consumption halted, the rest stays on the topic uncommitted; fix the cause (or raise the limit) and restart"
        );
        *self.stats.halted.lock().expect("halt lock") = Some(reason);
        self.pause_all();
        while self.keep_membership_for(Duration::from_secs(1), shutdown).await {}
    }

    fn pause_all(&self) {
        self.set_paused(true);
    }

    fn resume_all(&self) {
        self.set_paused(false);
    }

    /// Pauses or resumes every assigned partition; `hold` makes the rebalance callbacks treat
    /// partitions assigned meanwhile the same way.
    fn set_paused(&self, paused: bool) {
        self.hold.store(paused, Ordering::SeqCst);
        let (verb, result) = match self.consumer.assignment() {
            Ok(tpl) if paused => ("pause", self.consumer.pause(&tpl)),
            Ok(tpl) => ("resume", self.consumer.resume(&tpl)),
            Err(e) => return tracing::warn!(error = %e, paused, "could not read the assignment"),
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not {verb} the assigned partitions");
        }
        if !paused {
            self.wake_fetchers();
        }
    }

    /// Gets the fetchers going again right after a resume. librdkafka does not wake a broker's
    /// thread when a partition is resumed (its fetch state does not change), so the thread
    /// sleeps out its idle wait of up to 1 s before fetching again: a backlog waited 0.5 s
    /// after the database came back, by librdkafka's debug log (`KAFKA_DEBUG=fetch`), and the
    /// drain counted from the restore lost half its rate. A request to each partition's leader
    /// (reading its high watermark, which is otherwise unused) wakes that broker's thread, and
    /// the thread's next pass fetches every resumed partition it leads. Off the runtime: the
    /// query blocks for a round trip.
    fn wake_fetchers(&self) {
        let Ok(assignment) = self.consumer.assignment() else { return };
        let partitions: Vec<(String, i32)> =
            assignment.elements().iter().map(|e| (e.topic().to_owned(), e.partition())).collect();
        if partitions.is_empty() {
            return;
        }
        let consumer = self.consumer.clone();
        tokio::task::spawn_blocking(move || {
            for (topic, partition) in partitions {
                if let Err(e) = consumer.fetch_watermarks(&topic, partition, Duration::from_secs(1)) {
                    tracing::debug!(error = %e, topic, partition, "waking the fetcher after a resume failed");
                }
            }
        });
    }

    /// Polls for `period` while paused, so the group does not evict this member
    /// (`max.poll.interval.ms`) and rebalances are served. Paused partitions deliver nothing; a
    /// message that arrives anyway (a partition assigned before it could be paused) is not
    /// handled now: its partition is paused and rewound to it, so it is fetched again after
    /// the resume. `false` once shutdown is requested.
    async fn keep_membership_for(&self, period: Duration, shutdown: &CancellationToken) -> bool {
        let deadline = Instant::now() + period;
        while Instant::now() < deadline {
            let slice = (deadline - Instant::now()).min(Duration::from_millis(500));
            tokio::select! {
                _ = shutdown.cancelled() => return false,
                polled = tokio::time::timeout(slice, self.consumer.recv()) => {
                    if let Ok(Ok(m)) = polled {
                        let (topic, partition, offset) = (m.topic().to_owned(), m.partition(), m.offset());
                        drop(m);
                        self.hold_back(&topic, partition, offset);
                    }
                }
            }
        }
        !shutdown.is_cancelled()
    }

    fn hold_back(&self, topic: &str, partition: i32, offset: i64) {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(topic, partition);
        if let Err(e) = self.consumer.pause(&tpl) {
            tracing::warn!(error = %e, topic, partition, "could not pause a partition");
        }
        if let Err(e) = self.consumer.seek(topic, partition, Offset::Offset(offset), Duration::from_secs(5)) {
            tracing::warn!(error = %e, topic, partition, offset, "could not rewind a partition polled while paused");
        }
    }
}

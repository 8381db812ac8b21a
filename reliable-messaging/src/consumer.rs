//! At-least-once consumption: poll a batch, let the handler decide each message's outcome,
//! make every outcome durable, and only then commit the offsets.
//!
//! ```text
//!   poll batch ──▶ handler ──▶ Done / Rejected ─────────────────────────────┐
//!                     │                                                      ▼
//!                     ├─▶ Transient ─▶ in-place retry ─▶ still failing ─▶ <topic>-dlq ─▶ commit
//!                     └─▶ Permanent ─────────────────────────────────────▶ <topic>-dlq (parked by the DLQ worker)
//! ```
//!
//! A crash anywhere before the commit redelivers the batch; handlers are idempotent, so
//! that duplicates work, never data.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::KafkaResult;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::dead_letter::DeadLetterPublisher;
use crate::delivery::Delivery;
use crate::outcome::{Failure, FailureKind, Outcome};
use crate::settings::KafkaSettings;

/// Application logic for one topic. Implement [`Handler::handle`]; override
/// [`Handler::handle_batch`] when the work batches well (one multi-row upsert per batch).
///
/// Handlers must be idempotent: after a crash the same message arrives again.
pub trait Handler: Send + Sync + 'static {
    /// Decides the outcome of one message, making `Done` / `Rejected` durable before returning.
    fn handle(&self, delivery: &Delivery) -> impl Future<Output = Outcome> + Send;

    /// Decides the outcomes of a batch: one per delivery, in the same order.
    fn handle_batch(&self, batch: &[Delivery]) -> impl Future<Output = Vec<Outcome>> + Send {
        async move {
            let mut outcomes = Vec::with_capacity(batch.len());
            for delivery in batch {
                outcomes.push(self.handle(delivery).await);
            }
            outcomes
        }
    }
}

/// When offsets are committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CommitPolicy {
    /// Commit after every message of the batch has a durable outcome: at-least-once.
    #[default]
    AfterDurableOutcome,
    /// Kafka's auto-commit: offsets are committed in the background as soon as messages are
    /// polled, whatever happens to them. **Loses messages on a crash.** It exists only so the
    /// test suite can prove that its loss detector detects the article's failure.
    UnsafeAutoCommit,
}

impl CommitPolicy {
    /// `COMMIT_POLICY=after-durable-outcome` (default) or `unsafe-auto-commit`.
    pub fn from_env() -> Result<Self, String> {
        match std::env::var("COMMIT_POLICY").as_deref() {
            Err(_) | Ok("after-durable-outcome") => Ok(CommitPolicy::AfterDurableOutcome),
            Ok("unsafe-auto-commit") => Ok(CommitPolicy::UnsafeAutoCommit),
            Ok(other) => Err(format!("COMMIT_POLICY must be after-durable-outcome or unsafe-auto-commit, got {other:?}")),
        }
    }
}

/// How a [`ReliableConsumer`] polls, retries and commits.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    pub group_id: String,
    pub topics: Vec<String>,
    /// Most messages handed to the handler at once.
    pub max_batch_size: usize,
    /// How long to wait for a batch to fill once its first message arrived. Bounds the
    /// latency batching adds when traffic is light.
    pub max_batch_wait: Duration,
    /// In-place retries of transient failures before the message goes to the DLQ. Short on
    /// purpose: a consumer stuck retrying holds up its whole partition.
    pub in_place_retries: u32,
    pub in_place_backoff: Backoff,
    pub commit_policy: CommitPolicy,
    /// Static group membership (`group.instance.id`): a restarted instance with the same id
    /// gets its partitions back at once instead of waiting for a rebalance.
    pub instance_id: Option<String>,
}

impl ConsumerSettings {
    pub fn new(group_id: impl Into<String>, topics: &[&str]) -> Self {
        Self {
            group_id: group_id.into(),
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
            max_batch_size: 500,
            max_batch_wait: Duration::from_millis(20),
            in_place_retries: 3,
            in_place_backoff: Backoff::exponential(Duration::from_millis(200), 2.0, Duration::from_secs(2)),
            commit_policy: CommitPolicy::AfterDurableOutcome,
            instance_id: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    #[error("could not set up the Kafka consumer: {0}")]
    Setup(#[source] rdkafka::error::KafkaError),
    #[error("handler returned {got} outcomes for a batch of {expected}")]
    HandlerContract { expected: usize, got: usize },
}

/// Counters of what the consumer did, for `/metrics` and tests.
#[derive(Debug, Default)]
pub struct ConsumerStats {
    pub consumed: AtomicU64,
    pub done: AtomicU64,
    pub rejected: AtomicU64,
    pub dead_lettered_transient: AtomicU64,
    pub dead_lettered_permanent: AtomicU64,
    pub in_place_retries: AtomicU64,
    pub commits: AtomicU64,
    pub assigned_partitions: AtomicUsize,
    /// Messages of the assigned partitions past the committed offsets (high watermark minus
    /// committed offset), refreshed every [`LAG_REFRESH`]; `None` until first computed.
    pub consumer_lag: std::sync::Mutex<Option<u64>>,
}

/// How often [`ConsumerStats::consumer_lag`] is recomputed while the consumer runs.
pub const LAG_REFRESH: Duration = Duration::from_secs(1);

impl ConsumerStats {
    /// The counters in Prometheus text format, names prefixed with `prefix`.
    pub fn render_prometheus(&self, prefix: &str) -> String {
        let counters: [(&str, &str, &AtomicU64); 7] = [
            ("consumed_total", "Messages polled from Kafka", &self.consumed),
            ("done_total", "Messages handled successfully", &self.done),
            ("rejected_total", "Messages rejected for a business reason (recorded, not retried)", &self.rejected),
            ("dead_lettered_transient_total", "Messages handed to the DLQ after transient failures", &self.dead_lettered_transient),
            ("dead_lettered_permanent_total", "Messages handed to the DLQ as permanent failures (parked)", &self.dead_lettered_permanent),
            ("in_place_retries_total", "In-place retries of transient failures", &self.in_place_retries),
            ("commits_total", "Offset commits the broker confirmed", &self.commits),
        ];
        let mut out = String::new();
        for (name, help, value) in counters {
            out.push_str(&format!(
                "# HELP {prefix}_{name} {help}\n# TYPE {prefix}_{name} counter\n{prefix}_{name} {}\n",
                value.load(Ordering::Relaxed)
            ));
        }
        out.push_str(&format!(
            "# HELP {prefix}_assigned_partitions Partitions currently assigned\n# TYPE {prefix}_assigned_partitions gauge\n{prefix}_assigned_partitions {}\n",
            self.assigned_partitions.load(Ordering::Relaxed)
        ));
        if let Some(lag) = *self.consumer_lag.lock().expect("consumer lag lock") {
            out.push_str(&format!(
                "# HELP {prefix}_consumer_lag Messages on the assigned partitions not yet committed\n# TYPE {prefix}_consumer_lag gauge\n{prefix}_consumer_lag {lag}\n"
            ));
        }
        out
    }
}

/// Tracks the assignment (for readiness) and logs rebalances.
pub struct AssignmentTracker {
    stats: Arc<ConsumerStats>,
}

impl ClientContext for AssignmentTracker {}

impl ConsumerContext for AssignmentTracker {
    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        match result {
            Ok(()) => {
                self.stats.commits.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => tracing::warn!(error = %e, "offset commit failed; the batch may be redelivered"),
        }
    }

    fn post_rebalance(&self, _base: &rdkafka::consumer::BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                self.stats.assigned_partitions.store(tpl.count(), Ordering::Relaxed);
                tracing::info!(partitions = tpl.count(), "partitions assigned");
            }
            Rebalance::Revoke(tpl) => {
                self.stats.assigned_partitions.store(0, Ordering::Relaxed);
                tracing::info!(partitions = tpl.count(), "partitions revoked");
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
    }
}

/// Runs a [`Handler`] over a topic with at-least-once delivery; see the module docs.
pub struct ReliableConsumer<H: Handler> {
    consumer: Arc<StreamConsumer<AssignmentTracker>>,
    handler: H,
    dead_letters: DeadLetterPublisher,
    settings: ConsumerSettings,
    stats: Arc<ConsumerStats>,
}

impl<H: Handler> ReliableConsumer<H> {
    pub fn new(
        kafka: &KafkaSettings,
        settings: ConsumerSettings,
        handler: H,
        dead_letters: DeadLetterPublisher,
    ) -> Result<Self, ConsumerError> {
        Self::with_stats(kafka, settings, handler, dead_letters, Arc::default())
    }

    /// Like [`ReliableConsumer::new`], counting into `stats`, which the caller may already
    /// serve on `/metrics` and `/readyz` before the consumer exists.
    pub fn with_stats(
        kafka: &KafkaSettings,
        settings: ConsumerSettings,
        handler: H,
        dead_letters: DeadLetterPublisher,
        stats: Arc<ConsumerStats>,
    ) -> Result<Self, ConsumerError> {
        let mut config = kafka.client_config();
        config
            .set("group.id", &settings.group_id)
            .set("auto.offset.reset", "earliest")
            // A crashed member is noticed after this long; short so a restart resumes quickly.
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "1500");
        if let Some(id) = &settings.instance_id {
            config.set("group.instance.id", id);
        }
        match settings.commit_policy {
            CommitPolicy::AfterDurableOutcome => {
                config.set("enable.auto.commit", "false").set("enable.auto.offset.store", "false");
            }
            CommitPolicy::UnsafeAutoCommit => {
                tracing::warn!("COMMIT_POLICY=unsafe-auto-commit: messages WILL be lost on a crash");
                config
                    .set("enable.auto.commit", "true")
                    .set("enable.auto.offset.store", "true")
                    .set("auto.commit.interval.ms", "100");
            }
        }
        let consumer: StreamConsumer<AssignmentTracker> =
            config.create_with_context(AssignmentTracker { stats: stats.clone() }).map_err(ConsumerError::Setup)?;
        let topics: Vec<&str> = settings.topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics).map_err(ConsumerError::Setup)?;
        Ok(Self { consumer: Arc::new(consumer), handler, dead_letters, settings, stats })
    }

    /// Counters shared with the running consumer.
    pub fn stats(&self) -> Arc<ConsumerStats> {
        self.stats.clone()
    }

    /// Consumes until `shutdown` is cancelled. The batch in progress is finished, made durable
    /// and committed before this returns; nothing is left uncommitted-but-stored.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), ConsumerError> {
        tracing::info!(topics = ?self.settings.topics, group = %self.settings.group_id, "consumer started");
        let lag_monitor = tokio::spawn(monitor_lag(self.consumer.clone(), self.stats.clone(), shutdown.clone()));
        let mut committed = CommittedOffsets::default();
        let mut prefetched: Option<Vec<Delivery>> = None;
        loop {
            let batch = match prefetched.take() {
                Some(batch) => batch,
                None => match self.next_batch(&shutdown).await {
                    Some(batch) => batch,
                    None => break,
                },
            };
            if batch.is_empty() {
                continue;
            }
            self.stats.consumed.fetch_add(batch.len() as u64, Ordering::Relaxed);
            // The next batch is polled while this one is handled, so the poll's round trips
            // and copying overlap the handler's database work. This batch's offsets are
            // committed as soon as its outcomes are durable, whatever the poll is doing.
            let (settled, next) = tokio::join!(
                async {
                    let durable = self.settle(&batch, &shutdown).await?;
                    if durable && self.settings.commit_policy == CommitPolicy::AfterDurableOutcome {
                        self.commit(&batch, &mut committed);
                    }
                    Ok::<bool, ConsumerError>(durable)
                },
                self.next_batch(&shutdown)
            );
            if !settled? {
                // Shutdown arrived while a failed message could not reach the DLQ: leave its
                // offset uncommitted so it is redelivered, never dropped.
                break;
            }
            match next {
                Some(batch) => prefetched = Some(batch),
                None => break,
            }
        }
        lag_monitor.abort();
        // Commits are sent asynchronously; make the last position durable before leaving.
        self.commit_before_exit(committed).await;
        tracing::info!("consumer stopped");
        Ok(())
    }

    /// Waits for the first message, then gathers more for at most `max_batch_wait`.
    /// `None` when shutdown was requested.
    async fn next_batch(&self, shutdown: &CancellationToken) -> Option<Vec<Delivery>> {
        let first = tokio::select! {
            _ = shutdown.cancelled() => return None,
            m = self.consumer.recv() => m,
        };
        let mut batch = Vec::new();
        match first {
            Ok(m) => batch.push(Delivery::from_message(&m)),
            Err(e) => {
                tracing::warn!(error = %e, "poll failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                return Some(batch);
            }
        }
        let deadline = Instant::now() + self.settings.max_batch_wait;
        while batch.len() < self.settings.max_batch_size {
            match tokio::time::timeout_at(deadline, self.consumer.recv()).await {
                Ok(Ok(m)) => batch.push(Delivery::from_message(&m)),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "poll failed");
                    break;
                }
                Err(_) => break,
            }
        }
        Some(batch)
    }

    /// Gives every message of the batch a durable outcome. Returns `false` only when
    /// shutdown interrupted a DLQ hand-off (then the batch must not be committed).
    async fn settle(&self, batch: &[Delivery], shutdown: &CancellationToken) -> Result<bool, ConsumerError> {
        let outcomes = self.handle_with_in_place_retries(batch, shutdown).await?;
        let mut failures = Vec::new();
        for (delivery, outcome) in batch.iter().zip(outcomes) {
            match outcome {
                Outcome::Done => {
                    self.stats.done.fetch_add(1, Ordering::Relaxed);
                }
                Outcome::Rejected { reason } => {
                    self.stats.rejected.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(position = %delivery.position(), %reason, "rejected");
                }
                Outcome::Failed(failure) => failures.push((delivery, failure)),
            }
        }
        Ok(self.route_to_dead_letter_topic(failures, shutdown).await)
    }

    /// Calls the handler; transient failures are retried in place a few times with backoff.
    async fn handle_with_in_place_retries(
        &self,
        batch: &[Delivery],
        shutdown: &CancellationToken,
    ) -> Result<Vec<Outcome>, ConsumerError> {
        let mut outcomes: Vec<Option<Outcome>> = batch
            .iter()
            .map(|d| d.retry_metadata_error.as_ref().map(|e| Outcome::permanent(e.to_string())))
            .collect();
        let mut pending: Vec<usize> = (0..batch.len()).filter(|&i| outcomes[i].is_none()).collect();
        let mut attempt = 0;
        while !pending.is_empty() {
            let results = if pending.len() == batch.len() {
                self.handler.handle_batch(batch).await
            } else {
                let subset: Vec<Delivery> = pending.iter().map(|&i| batch[i].clone()).collect();
                self.handler.handle_batch(&subset).await
            };
            if results.len() != pending.len() {
                return Err(ConsumerError::HandlerContract { expected: pending.len(), got: results.len() });
            }
            let retry_again = attempt < self.settings.in_place_retries && !shutdown.is_cancelled();
            let mut still_failing = Vec::new();
            for (&i, outcome) in pending.iter().zip(results) {
                if retry_again && outcome.is_transient() {
                    still_failing.push(i);
                }
                outcomes[i] = Some(outcome);
            }
            if still_failing.is_empty() {
                break;
            }
            let delay = self.settings.in_place_backoff.delay(attempt);
            tracing::debug!(count = still_failing.len(), attempt, ?delay, "transient failures, retrying in place");
            self.stats.in_place_retries.fetch_add(still_failing.len() as u64, Ordering::Relaxed);
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(delay) => {}
            }
            attempt += 1;
            pending = still_failing;
        }
        Ok(outcomes.into_iter().map(|o| o.expect("every message has an outcome")).collect())
    }

    /// Publishes every failure to its DLQ and waits for `acks=all`. A DLQ write that fails
    /// (broker down) is retried until it succeeds: the offset cannot be committed before.
    async fn route_to_dead_letter_topic(&self, mut failures: Vec<(&Delivery, Failure)>, shutdown: &CancellationToken) -> bool {
        let mut attempt = 0;
        while !failures.is_empty() {
            let results = join_all(failures.iter().map(|(d, f)| self.dead_letters.publish(d, f))).await;
            let mut unsent = Vec::new();
            for ((delivery, failure), result) in failures.into_iter().zip(results) {
                match result {
                    Ok(stored) => {
                        let counter = match failure.kind {
                            FailureKind::Transient => &self.stats.dead_lettered_transient,
                            FailureKind::Permanent => &self.stats.dead_lettered_permanent,
                        };
                        counter.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(
                            position = %delivery.position(),
                            kind = %failure.kind,
                            error = %failure.message,
                            retry_count = delivery.retry_count(),
                            dlq_partition = stored.partition,
                            dlq_offset = stored.offset,
                            "handed to the dead-letter topic"
                        );
                    }
                    Err(e) => {
                        tracing::error!(position = %delivery.position(), error = %e, "dead-letter write failed; will retry");
                        unsent.push((delivery, failure));
                    }
                }
            }
            if unsent.is_empty() {
                break;
            }
            if shutdown.is_cancelled() {
                return false;
            }
            let delay = Backoff::exponential(Duration::from_millis(250), 2.0, Duration::from_secs(5)).delay(attempt);
            tokio::select! {
                _ = shutdown.cancelled() => return false,
                _ = tokio::time::sleep(delay) => {}
            }
            attempt += 1;
            failures = unsent;
        }
        true
    }

    /// Commits the next offset of every partition in the batch. Asynchronous: the request is
    /// queued and the loop moves on (the result arrives in [`AssignmentTracker`]'s commit
    /// callback); at-least-once holds because the outcomes are already durable.
    ///
    /// A failed commit is logged, not fatal: the worst case is a redelivery that the
    /// idempotent handler absorbs.
    fn commit(&self, batch: &[Delivery], committed: &mut CommittedOffsets) {
        committed.advance(batch);
        match next_offsets(batch) {
            Ok(tpl) => {
                if let Err(e) = self.consumer.commit(&tpl, CommitMode::Async) {
                    tracing::warn!(error = %e, "offset commit failed; the batch may be redelivered");
                }
            }
            Err(e) => tracing::error!(error = %e, "could not build the commit list"),
        }
    }

    /// One synchronous commit of everything committed asynchronously so far, so a graceful
    /// stop leaves no stored-but-uncommitted batch behind.
    async fn commit_before_exit(&self, committed: CommittedOffsets) {
        let tpl = match committed.to_list() {
            Ok(tpl) if tpl.count() > 0 => tpl,
            Ok(_) => return,
            Err(e) => return tracing::error!(error = %e, "could not build the final commit list"),
        };
        let consumer = self.consumer.clone();
        match tokio::task::spawn_blocking(move || consumer.commit(&tpl, CommitMode::Sync)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "final offset commit failed; the last batch may be redelivered"),
            Err(e) => tracing::warn!(error = %e, "final offset commit task failed"),
        }
    }
}

/// The next offset to consume of every partition this consumer has committed.
#[derive(Debug, Default)]
struct CommittedOffsets(BTreeMap<(String, i32), i64>);

impl CommittedOffsets {
    fn advance(&mut self, batch: &[Delivery]) {
        for d in batch {
            let next = self.0.entry((d.topic.clone(), d.partition)).or_insert(d.offset + 1);
            *next = (*next).max(d.offset + 1);
        }
    }

    fn to_list(&self) -> KafkaResult<TopicPartitionList> {
        let mut tpl = TopicPartitionList::with_capacity(self.0.len());
        for ((topic, partition), next) in &self.0 {
            tpl.add_partition_offset(topic, *partition, Offset::Offset(*next))?;
        }
        Ok(tpl)
    }
}

/// Keeps [`ConsumerStats::consumer_lag`] current until `shutdown`. The offset and watermark
/// queries block on broker round trips, so they run on a blocking thread, off the runtime.
async fn monitor_lag(consumer: Arc<StreamConsumer<AssignmentTracker>>, stats: Arc<ConsumerStats>, shutdown: CancellationToken) {
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
fn consumer_lag(consumer: &StreamConsumer<AssignmentTracker>) -> Option<u64> {
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

/// For each partition in the batch, the offset after the highest one seen.
fn next_offsets(batch: &[Delivery]) -> KafkaResult<TopicPartitionList> {
    let mut highest: BTreeMap<(&str, i32), i64> = BTreeMap::new();
    for d in batch {
        let e = highest.entry((d.topic.as_str(), d.partition)).or_insert(d.offset);
        *e = (*e).max(d.offset);
    }
    let mut tpl = TopicPartitionList::with_capacity(highest.len());
    for ((topic, partition), offset) in highest {
        tpl.add_partition_offset(topic, partition, Offset::Offset(offset + 1))?;
    }
    Ok(tpl)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumer_lag_is_rendered_once_known() {
        let stats = ConsumerStats::default();
        assert!(!stats.render_prometheus("svc").contains("svc_consumer_lag"));
        *stats.consumer_lag.lock().unwrap() = Some(42);
        assert!(stats.render_prometheus("svc").contains("# TYPE svc_consumer_lag gauge\nsvc_consumer_lag 42\n"));
    }
}

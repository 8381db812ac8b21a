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
//!
//! Two states stop the flow without losing anything:
//! * **paused** while a dependency is down (`Outcome::DependencyDown`): the partitions are
//!   paused, the group membership kept (the consumer keeps polling), the failed messages are
//!   re-tried with backoff as the probe, and consumption resumes from the uncommitted position
//!   when they go through. Nothing is dead-lettered for an outage, however long.
//! * **halted** when the dead-letter flood limit trips ([`crate::dead_letter_limit`]): the
//!   messages from the tripping one on stay uncommitted, the consumer stops consuming and
//!   reports why until it is restarted.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::future::join_all;
use futures::FutureExt as _;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::KafkaResult;
use rdkafka::message::Message as _;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::dead_letter::DeadLetterPublisher;
use crate::dead_letter_limit::{DeadLetterLimit, FloodGuard, HaltReason};
use crate::delivery::Delivery;
use crate::outcome::{Failure, FailureKind, Outcome};
use crate::partition_chunks::partition_chunks;
use crate::settings::KafkaSettings;
use crate::stage_timings::StageTimings;

/// Application logic for one topic. Implement [`Handler::handle`]; override
/// [`Handler::handle_batch`] when the work batches well (one multi-row upsert per batch).
///
/// Handlers must be idempotent: after a crash the same message arrives again. They may be
/// called concurrently, for different partitions of one batch
/// ([`ConsumerSettings::partition_concurrency`]); one partition's messages are never handled
/// by two calls at once, and always in their order.
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
            Ok(other) => {
                Err(format!("COMMIT_POLICY must be after-durable-outcome or unsafe-auto-commit, got {other:?}"))
            }
        }
    }
}

/// What the consumer does while a dependency is down (`Outcome::DependencyDown`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutagePolicy {
    /// Pause, keep the group membership, probe, resume: nothing dead-lettered, no retry spent.
    #[default]
    Pause,
    /// The article's original design: treat it as any transient failure (in-place retries,
    /// then the DLQ with its retry budget; parked once the budget is spent). Kept for
    /// consumers whose dependency outages are expected to be per-message, and for the tests
    /// that drive the dead-letter path with a database cut.
    DeadLetter,
}

impl OutagePolicy {
    /// `DEPENDENCY_OUTAGE=pause` (default) or `dead-letter`.
    pub fn from_env() -> Result<Self, String> {
        match std::env::var("DEPENDENCY_OUTAGE").as_deref() {
            Err(_) | Ok("pause") => Ok(OutagePolicy::Pause),
            Ok("dead-letter") => Ok(OutagePolicy::DeadLetter),
            Ok(other) => Err(format!("DEPENDENCY_OUTAGE must be pause or dead-letter, got {other:?}")),
        }
    }
}

/// How a [`ReliableConsumer`] polls, retries and commits.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    pub group_id: String,
    pub topics: Vec<String>,
    /// Most messages polled into one batch.
    pub max_batch_size: usize,
    /// Most handler calls running at once on one batch: the batch is split by partition (a
    /// partition's messages stay together and in order) into at most this many chunks, each
    /// handled concurrently, e.g. on its own database connection. 1 hands the whole batch to
    /// one call. Keep it at or below the handler's connection pool size.
    pub partition_concurrency: usize,
    /// How long a batch may wait for more messages once librdkafka has none ready and the
    /// handler is idle. 0 (the default) closes it at once: batches still fill under load,
    /// because the next batch keeps filling for as long as the handler is busy with the
    /// previous one, and a sign-up at light load waits for nothing.
    pub max_batch_wait: Duration,
    /// In-place retries of transient failures before the message goes to the DLQ. Short on
    /// purpose: a consumer stuck retrying holds up its whole partition.
    pub in_place_retries: u32,
    pub in_place_backoff: Backoff,
    pub commit_policy: CommitPolicy,
    pub outage_policy: OutagePolicy,
    /// Delays between probes of a dependency that is down (the failed messages are handled
    /// again as the probe).
    pub outage_probe_backoff: Backoff,
    /// When permanent failures stop being dead-lettered and the consumer halts.
    pub dead_letter_limit: DeadLetterLimit,
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
            partition_concurrency: 4,
            max_batch_wait: Duration::ZERO,
            in_place_retries: 3,
            in_place_backoff: Backoff::exponential(Duration::from_millis(200), 2.0, Duration::from_secs(2)),
            commit_policy: CommitPolicy::AfterDurableOutcome,
            outage_policy: OutagePolicy::Pause,
            // Capped at 250 ms: the cap is how late a recovered dependency is noticed, and the
            // backlog waits that long on top of the outage. A probe (the failed batch again)
            // against a stopped server is a refused connection: nothing for either side.
            outage_probe_backoff: Backoff::exponential(Duration::from_millis(50), 2.0, Duration::from_millis(250)),
            dead_letter_limit: DeadLetterLimit::default(),
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
    /// The dependency outage the consumer is paused for, if any.
    pub outage: std::sync::Mutex<Option<Outage>>,
    pub outages: AtomicU64,
    /// Why the consumer halted (dead-letter flood limit), if it did.
    pub halted: std::sync::Mutex<Option<HaltReason>>,
    /// Time per stage: the consumer's (`poll`, `handle`, `dead_letter`, `commit`) and any
    /// the handler records.
    pub stages: Arc<StageTimings>,
}

/// A dependency outage in progress.
#[derive(Debug, Clone)]
pub struct Outage {
    pub dependency: String,
    pub since: std::time::Instant,
}

/// How often [`ConsumerStats::consumer_lag`] is recomputed while the consumer runs.
pub const LAG_REFRESH: Duration = Duration::from_secs(1);

impl ConsumerStats {
    /// Messages taken into processing whose outcome is not durable yet: polled, but neither
    /// stored, rejected nor handed to the DLQ, so their offsets must not be committed. A crash
    /// now has to redeliver them; crash tests read it to prove a kill landed on such work.
    /// The batch prefetched while another one is handled is not counted until it is taken.
    pub fn in_flight(&self) -> u64 {
        let settled = [&self.done, &self.rejected, &self.dead_lettered_transient, &self.dead_lettered_permanent]
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum::<u64>();
        self.consumed.load(Ordering::Relaxed).saturating_sub(settled)
    }

    /// `Err` with the reason while the consumer is paused for an outage or halted.
    pub fn consuming(&self) -> Result<(), String> {
        if let Some(halt) = self.halted.lock().expect("halt lock").as_ref() {
            return Err(format!("halted: {halt}"));
        }
        if let Some(outage) = self.outage.lock().expect("outage lock").as_ref() {
            return Err(format!("paused: {} down for {} s", outage.dependency, outage.since.elapsed().as_secs()));
        }
        Ok(())
    }

    /// The counters in Prometheus text format, names prefixed with `prefix`.
    pub fn render_prometheus(&self, prefix: &str) -> String {
        let counters: [(&str, &str, &AtomicU64); 7] = [
            ("consumed_total", "Messages polled from Kafka", &self.consumed),
            ("done_total", "Messages handled successfully", &self.done),
            ("rejected_total", "Messages rejected for a business reason (recorded, not retried)", &self.rejected),
            (
                "dead_lettered_transient_total",
                "Messages handed to the DLQ after transient failures",
                &self.dead_lettered_transient,
            ),
            (
                "dead_lettered_permanent_total",
                "Messages handed to the DLQ as permanent failures (parked)",
                &self.dead_lettered_permanent,
            ),
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
        out.push_str(&format!(
            "# HELP {prefix}_in_flight Messages polled and taken into processing whose outcome is not durable yet\n# TYPE {prefix}_in_flight gauge\n{prefix}_in_flight {}\n",
            self.in_flight()
        ));
        let outage = self.outage.lock().expect("outage lock").clone();
        // One stable series; which dependency is down is said by readiness and the log.
        out.push_str(&format!(
            "# HELP {prefix}_paused 1 while consumption is paused because a dependency is down\n# TYPE {prefix}_paused gauge\n{prefix}_paused {}\n",
            u8::from(outage.is_some())
        ));
        out.push_str(&format!(
            "# HELP {prefix}_outage_seconds How long the current dependency outage has lasted (0 when none)\n# TYPE {prefix}_outage_seconds gauge\n{prefix}_outage_seconds {:.3}\n",
            outage.as_ref().map_or(0.0, |o| o.since.elapsed().as_secs_f64())
        ));
        out.push_str(&format!(
            "# HELP {prefix}_outages_total Dependency outages the consumer paused for\n# TYPE {prefix}_outages_total counter\n{prefix}_outages_total {}\n",
            self.outages.load(Ordering::Relaxed)
        ));
        out.push_str(&format!(
            "# HELP {prefix}_halted 1 once the dead-letter flood limit stopped consumption\n# TYPE {prefix}_halted gauge\n{prefix}_halted {}\n",
            u8::from(self.halted.lock().expect("halt lock").is_some())
        ));
        if let Some(lag) = *self.consumer_lag.lock().expect("consumer lag lock") {
            out.push_str(&format!(
                "# HELP {prefix}_consumer_lag Messages on the assigned partitions not yet committed\n# TYPE {prefix}_consumer_lag gauge\n{prefix}_consumer_lag {lag}\n"
            ));
        }
        out.push_str(&self.stages.render_prometheus(prefix));
        out
    }
}

/// Tracks the assignment (what this member owns, for commits and readiness), commits the
/// durable position of partitions before they are revoked, and logs rebalances.
pub struct AssignmentTracker {
    stats: Arc<ConsumerStats>,
    ownership: Arc<Mutex<Ownership>>,
    /// `false` under [`CommitPolicy::UnsafeAutoCommit`]: then librdkafka commits, not us.
    manual_commits: bool,
    /// Set while paused or halted: partitions assigned meanwhile are paused at once, so no
    /// message arrives that could not be handled now.
    hold: Arc<std::sync::atomic::AtomicBool>,
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

    /// Runs inside the poll (`recv`) of the run loop, before librdkafka applies the change.
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => lock_ownership(&self.ownership).assign(tpl),
            Rebalance::Revoke(tpl) => self.on_revoke(consumer, tpl),
            Rebalance::Error(_) => {}
        }
    }

    fn post_rebalance(&self, base: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            if self.hold.load(Ordering::SeqCst) {
                if let Err(e) = base.pause(tpl) {
                    tracing::warn!(error = %e, "could not pause newly assigned partitions");
                }
            }
        }
        let owned = lock_ownership(&self.ownership).partitions.len();
        self.stats.assigned_partitions.store(owned, Ordering::Relaxed);
        match rebalance {
            Rebalance::Assign(tpl) => tracing::info!(partitions = tpl.count(), owned, "partitions assigned"),
            Rebalance::Revoke(tpl) => tracing::info!(partitions = tpl.count(), owned, "partitions revoked"),
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
    }
}

impl AssignmentTracker {
    /// Commits what is durable of the revoked partitions while they are still ours, then forgets
    /// them: from now on this member commits nothing for them (neither a batch that was in
    /// flight during the revocation nor the final commit at exit), so it can never write its
    /// stale position over the newer one of the member that takes them over.
    fn on_revoke(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) {
        // Held across the synchronous commit so no batch commit for these partitions can slip
        // in between (the run loop is parked in this very poll anyway).
        let mut ownership = lock_ownership(&self.ownership);
        let positions = ownership.revoke(tpl);
        if !self.manual_commits || positions.is_empty() {
            return;
        }
        match offset_list(&positions).and_then(|list| consumer.commit(&list, CommitMode::Sync)) {
            Ok(()) => {
                self.stats.commits.fetch_add(1, Ordering::Relaxed);
            }
            // The new owner redelivers what this commit would have covered: duplicates only.
            Err(e) => tracing::warn!(error = %e, "commit before revocation failed; the new owner may redeliver"),
        }
    }
}

/// A partition: topic and partition number.
type PartitionKey = (String, i32);

/// The partitions this member owns right now, and how far each one's outcomes are durable.
///
/// Shared by the run loop and the rebalance callbacks, and the only source of what is
/// committed: a partition is added when assigned and removed when revoked, so this member
/// never commits a partition another member owns. Each assignment of a partition gets a fresh
/// token; a batch remembers the token its messages were polled under and commits nothing for a
/// partition whose token changed meanwhile (revoked, perhaps moved on by another member, and
/// assigned back).
#[derive(Debug, Default)]
struct Ownership {
    last_token: u64,
    partitions: HashMap<PartitionKey, Owned>,
}

#[derive(Debug)]
struct Owned {
    token: u64,
    /// The offset after the last message this member made durable: what may be committed.
    durable: Option<i64>,
    /// What a synchronous commit confirmed, so it is not committed again.
    confirmed: Option<i64>,
}

fn lock_ownership(ownership: &Mutex<Ownership>) -> MutexGuard<'_, Ownership> {
    // Every update is a single call that leaves consistent data, even if a panic interrupted it.
    ownership.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Ownership {
    fn assign(&mut self, tpl: &TopicPartitionList) {
        for e in tpl.elements() {
            self.last_token += 1;
            let owned = Owned { token: self.last_token, durable: None, confirmed: None };
            self.partitions.insert((e.topic().to_owned(), e.partition()), owned);
        }
    }

    /// Forgets the revoked partitions; returns their durable positions not yet confirmed.
    fn revoke(&mut self, tpl: &TopicPartitionList) -> Vec<(PartitionKey, i64)> {
        tpl.elements()
            .iter()
            .filter_map(|e| {
                let key = (e.topic().to_owned(), e.partition());
                let owned = self.partitions.remove(&key)?;
                owned.unconfirmed().map(|next| (key, next))
            })
            .collect()
    }

    /// The token of the partition's current assignment; `None` when this member does not own it.
    fn token(&self, topic: &str, partition: i32) -> Option<u64> {
        self.partitions.get(&(topic.to_owned(), partition)).map(|o| o.token)
    }

    /// Records a durable batch and returns the positions to commit for it: only partitions
    /// still owned under the assignment the batch was polled under, never moving backwards.
    fn advance(&mut self, batch: &BTreeMap<PartitionKey, (u64, i64)>) -> Vec<(PartitionKey, i64)> {
        let mut positions = Vec::with_capacity(batch.len());
        for (key, &(token, next)) in batch {
            match self.partitions.get_mut(key) {
                Some(owned) if owned.token == token => {
                    let durable = owned.durable.map_or(next, |d| d.max(next));
                    owned.durable = Some(durable);
                    positions.push((key.clone(), durable));
                }
                _ => tracing::info!(
                    topic = %key.0,
                    partition = key.1,
                    "partition revoked while its batch was handled; not committing it, its owner redelivers"
                ),
            }
        }
        positions
    }

    /// Durable positions of every owned partition not yet confirmed by a synchronous commit.
    fn unconfirmed(&self) -> Vec<(PartitionKey, i64)> {
        self.partitions.iter().filter_map(|(key, owned)| owned.unconfirmed().map(|next| (key.clone(), next))).collect()
    }

    fn confirm(&mut self, positions: &[(PartitionKey, i64)]) {
        for (key, next) in positions {
            if let Some(owned) = self.partitions.get_mut(key) {
                owned.confirmed = Some(owned.confirmed.map_or(*next, |c| c.max(*next)));
            }
        }
    }
}

impl Owned {
    fn unconfirmed(&self) -> Option<i64> {
        self.durable.filter(|d| self.confirmed.is_none_or(|c| *d > c))
    }
}

fn offset_list(positions: &[(PartitionKey, i64)]) -> KafkaResult<TopicPartitionList> {
    let mut tpl = TopicPartitionList::with_capacity(positions.len());
    for ((topic, partition), next) in positions {
        tpl.add_partition_offset(topic, *partition, Offset::Offset(*next))?;
    }
    Ok(tpl)
}

/// Polled messages, and for each partition among them the assignment token they were polled
/// under and the offset after the last one.
#[derive(Default)]
struct Batch {
    deliveries: Vec<Delivery>,
    /// The assignment token each delivery was polled under, in the same order.
    tokens: Vec<Option<u64>>,
    positions: BTreeMap<PartitionKey, (u64, i64)>,
}

impl Batch {
    /// The first `n` deliveries as a batch of their own: what may be committed when the
    /// messages from `n` on must stay uncommitted.
    fn prefix(&self, n: usize) -> Batch {
        let mut prefix = Batch::default();
        for (delivery, token) in self.deliveries.iter().zip(&self.tokens).take(n) {
            prefix.push(delivery.clone(), *token);
        }
        prefix
    }

    /// Orders the deliveries by topic and partition, keeping each partition's order, so that
    /// [`partition_chunks`] can hand out plain slices. Order across partitions means nothing.
    fn group_by_partition(&mut self) {
        let deliveries = std::mem::take(&mut self.deliveries);
        let mut pairs: Vec<(Delivery, Option<u64>)> = deliveries.into_iter().zip(self.tokens.drain(..)).collect();
        // Stable: within a partition the polled order (the offset order) is kept.
        pairs.sort_by(|(a, _), (b, _)| (a.topic.as_str(), a.partition).cmp(&(b.topic.as_str(), b.partition)));
        (self.deliveries, self.tokens) = pairs.into_iter().unzip();
    }

    /// `token` is `None` for a message of a partition not (or no longer) owned: it is handled
    /// but never committed by this member.
    fn push(&mut self, delivery: Delivery, token: Option<u64>) {
        if let Some(token) = token {
            let next = delivery.offset + 1;
            let entry = self.positions.entry((delivery.topic.clone(), delivery.partition)).or_insert((token, next));
            // A later assignment replaces an earlier one; within one, the position only grows.
            if token > entry.0 {
                *entry = (token, next);
            } else if token == entry.0 {
                entry.1 = entry.1.max(next);
            }
        }
        self.deliveries.push(delivery);
        self.tokens.push(token);
    }
}

/// Whether the handler is still busy with the batch before the one being polled, and the
/// signal that it is done.
struct HandlerState<'a> {
    busy: &'a std::sync::atomic::AtomicBool,
    idle: &'a tokio::sync::Notify,
}

/// What became of a batch.
enum Settled {
    /// Every message has a durable outcome: commit the batch.
    Durable,
    /// Shutdown came first (a DLQ hand-off or an outage not over): commit nothing of it.
    Interrupted,
    /// The dead-letter flood limit tripped at message `durable`: the messages before it have
    /// durable outcomes, the rest must stay uncommitted.
    Halted { durable: usize, reason: HaltReason },
}

/// Runs a [`Handler`] over a topic with at-least-once delivery; see the module docs.
pub struct ReliableConsumer<H: Handler> {
    consumer: Arc<StreamConsumer<AssignmentTracker>>,
    ownership: Arc<Mutex<Ownership>>,
    handler: H,
    dead_letters: DeadLetterPublisher,
    settings: ConsumerSettings,
    stats: Arc<ConsumerStats>,
    /// Shared with the rebalance callbacks: keep new partitions paused.
    hold: Arc<std::sync::atomic::AtomicBool>,
    flood_guard: Mutex<FloodGuard>,
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
        let ownership = Arc::new(Mutex::new(Ownership::default()));
        let hold = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let context = AssignmentTracker {
            stats: stats.clone(),
            ownership: ownership.clone(),
            manual_commits: settings.commit_policy == CommitPolicy::AfterDurableOutcome,
            hold: hold.clone(),
        };
        let consumer: StreamConsumer<AssignmentTracker> =
            config.create_with_context(context).map_err(ConsumerError::Setup)?;
        let topics: Vec<&str> = settings.topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics).map_err(ConsumerError::Setup)?;
        let flood_guard = Mutex::new(FloodGuard::new(settings.dead_letter_limit));
        Ok(Self { consumer: Arc::new(consumer), ownership, handler, dead_letters, settings, stats, hold, flood_guard })
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
        let mut prefetched: Option<Batch> = None;
        loop {
            let batch = match prefetched.take() {
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
            let busy = std::sync::atomic::AtomicBool::new(true);
            let idle = tokio::sync::Notify::new();
            let (settled, next) = tokio::join!(
                async {
                    // Handling and dead-lettering continue the messages' trace (a batch
                    // mixing traces links to each of them).
                    let handling = crate::trace_context::batch_span(&batch.deliveries);
                    let settled = tracing::Instrument::instrument(self.settle(&batch.deliveries, &shutdown), handling)
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

    /// Waits for the first message, then takes whatever librdkafka has ready, and keeps
    /// gathering while `handler` is still busy with the previous batch (or for
    /// `max_batch_wait`), up to `max_batch_size`. `None` when shutdown was requested.
    async fn next_batch(&self, shutdown: &CancellationToken, handler: Option<HandlerState<'_>>) -> Option<Batch> {
        let first = tokio::select! {
            _ = shutdown.cancelled() => return None,
            m = self.consumer.recv() => m,
        };
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
        let linger = tokio::time::sleep_until(Instant::now() + self.settings.max_batch_wait);
        tokio::pin!(linger);
        let mut lingered = self.settings.max_batch_wait.is_zero();
        while batch.deliveries.len() < self.settings.max_batch_size {
            // What librdkafka already holds is taken without waiting.
            if let Some(m) = self.consumer.recv().now_or_never() {
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
                m = self.consumer.recv() => match m {
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
        Some(batch)
    }

    /// Adds a polled message to `batch` with the assignment it arrived under. Rebalance
    /// callbacks run inside `recv`, before it returns a message, so the token read here is the
    /// one of the assignment the message was fetched for.
    fn take(&self, batch: &mut Batch, delivery: Delivery) {
        let token = lock_ownership(&self.ownership).token(&delivery.topic, delivery.partition);
        batch.push(delivery, token);
    }

    /// Gives every message of the batch a durable outcome, or says why it could not.
    async fn settle(&self, batch: &[Delivery], shutdown: &CancellationToken) -> Result<Settled, ConsumerError> {
        let mut outcomes = self.handle_with_in_place_retries(batch, shutdown).await?;
        if outcomes.iter().any(Outcome::is_dependency_down)
            && !self.ride_out_outage(batch, &mut outcomes, shutdown).await?
        {
            return Ok(Settled::Interrupted);
        }
        let mut failures = Vec::new();
        let mut halted = None;
        {
            let mut guard = self.flood_guard.lock().unwrap_or_else(|p| p.into_inner());
            for (i, (delivery, outcome)) in batch.iter().zip(&outcomes).enumerate() {
                let permanent = match outcome {
                    Outcome::Failed(f) if f.kind == FailureKind::Permanent => Some(f.message.as_str()),
                    _ => None,
                };
                if let Some(reason) = guard.observe(permanent) {
                    halted = Some((i, reason));
                    break;
                }
                match outcome {
                    Outcome::Done => {
                        self.stats.done.fetch_add(1, Ordering::Relaxed);
                    }
                    Outcome::Rejected { reason } => {
                        self.stats.rejected.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(position = %delivery.position(), %reason, "rejected");
                    }
                    Outcome::Failed(failure) => failures.push((delivery, failure.clone())),
                    Outcome::DependencyDown { .. } => {
                        unreachable!("outages are ridden out before outcomes are settled")
                    }
                }
            }
        }
        let routed = match failures.is_empty() {
            true => true,
            false => self.stats.stages.time("dead_letter", self.route_to_dead_letter_topic(failures, shutdown)).await,
        };
        if !routed {
            return Ok(Settled::Interrupted);
        }
        Ok(match halted {
            Some((durable, reason)) => Settled::Halted { durable, reason },
            None => Settled::Durable,
        })
    }

    /// Pauses consumption while the dependency named by a `DependencyDown` outcome is down:
    /// every partition is paused (and any assigned meanwhile), the consumer keeps polling so it
    /// stays in its group, and the messages that met the outage are handled again with
    /// backoff, as the probe. Returns `false` if shutdown came first; the messages are then
    /// left uncommitted. Nothing is dead-lettered for an outage, however long it lasts.
    async fn ride_out_outage(
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
            let results = match self.handle_with_in_place_retries(&subset, shutdown).await {
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
    async fn halt(&self, reason: HaltReason, shutdown: &CancellationToken) {
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
        self.hold.store(true, Ordering::SeqCst);
        match self.consumer.assignment() {
            Ok(tpl) => {
                if let Err(e) = self.consumer.pause(&tpl) {
                    tracing::warn!(error = %e, "could not pause the assigned partitions");
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not read the assignment to pause it"),
        }
    }

    fn resume_all(&self) {
        self.hold.store(false, Ordering::SeqCst);
        match self.consumer.assignment() {
            Ok(tpl) => {
                if let Err(e) = self.consumer.resume(&tpl) {
                    tracing::warn!(error = %e, "could not resume the assigned partitions");
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not read the assignment to resume it"),
        }
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

    /// Calls the handler; transient failures are retried in place a few times with backoff.
    async fn handle_with_in_place_retries(
        &self,
        batch: &[Delivery],
        shutdown: &CancellationToken,
    ) -> Result<Vec<Outcome>, ConsumerError> {
        let mut outcomes: Vec<Option<Outcome>> =
            batch.iter().map(|d| d.retry_metadata_error.as_ref().map(|e| Outcome::permanent(e.to_string()))).collect();
        let mut pending: Vec<usize> = (0..batch.len()).filter(|&i| outcomes[i].is_none()).collect();
        let mut attempt = 0;
        while !pending.is_empty() {
            let started = std::time::Instant::now();
            let results = if pending.len() == batch.len() {
                self.handle_by_partition(batch).await?
            } else {
                let subset: Vec<Delivery> = pending.iter().map(|&i| batch[i].clone()).collect();
                self.handle_by_partition(&subset).await?
            };
            self.stats.stages.record("handle", started.elapsed());
            let results = results.into_iter().map(|o| self.apply_outage_policy(o));
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

    /// Hands `batch` (grouped by partition) to the handler in at most
    /// `partition_concurrency` concurrent calls, one contiguous chunk of partitions each, and
    /// returns the outcomes in the batch's order.
    async fn handle_by_partition(&self, batch: &[Delivery]) -> Result<Vec<Outcome>, ConsumerError> {
        let partitions: Vec<(&str, i32)> = batch.iter().map(|d| (d.topic.as_str(), d.partition)).collect();
        let chunks = partition_chunks(&partitions, self.settings.partition_concurrency);
        let results = join_all(chunks.iter().map(|chunk| self.handler.handle_batch(&batch[chunk.clone()]))).await;
        let mut outcomes = Vec::with_capacity(batch.len());
        for (chunk, result) in chunks.iter().zip(results) {
            if result.len() != chunk.len() {
                return Err(ConsumerError::HandlerContract { expected: chunk.len(), got: result.len() });
            }
            outcomes.extend(result);
        }
        Ok(outcomes)
    }

    /// Under [`OutagePolicy::DeadLetter`], an outage is an ordinary transient failure.
    fn apply_outage_policy(&self, outcome: Outcome) -> Outcome {
        match (self.settings.outage_policy, outcome) {
            (OutagePolicy::DeadLetter, Outcome::DependencyDown { dependency, message }) => {
                Outcome::transient(format!("{dependency} down: {message}"))
            }
            (_, outcome) => outcome,
        }
    }

    /// Publishes every failure to its DLQ and waits for `acks=all`. A DLQ write that fails
    /// (broker down) is retried until it succeeds: the offset cannot be committed before.
    async fn route_to_dead_letter_topic(
        &self,
        mut failures: Vec<(&Delivery, Failure)>,
        shutdown: &CancellationToken,
    ) -> bool {
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

    /// Commits, for every partition in the batch this member still owns under the assignment
    /// the batch was polled under, the offset after the batch. Asynchronous: the request is
    /// queued and the loop moves on (the result arrives in [`AssignmentTracker`]'s commit
    /// callback); at-least-once holds because the outcomes are already durable. A partition
    /// revoked meanwhile is left to its new owner, which redelivers the batch's part of it:
    /// committing it here could move the new owner's committed offset backwards.
    ///
    /// A failed commit is logged, not fatal: the worst case is a redelivery that the
    /// idempotent handler absorbs.
    fn commit(&self, batch: &Batch) {
        let started = std::time::Instant::now();
        self.commit_owned(batch);
        self.stats.stages.record("commit", started.elapsed());
    }

    fn commit_owned(&self, batch: &Batch) {
        // Checked and queued under the lock, so a revocation cannot fall in between.
        let mut ownership = lock_ownership(&self.ownership);
        let positions = ownership.advance(&batch.positions);
        if positions.is_empty() {
            return;
        }
        match offset_list(&positions) {
            Ok(tpl) => {
                if let Err(e) = self.consumer.commit(&tpl, CommitMode::Async) {
                    tracing::warn!(error = %e, "offset commit failed; the batch may be redelivered");
                }
            }
            Err(e) => tracing::error!(error = %e, "could not build the commit list"),
        }
    }

    /// One synchronous commit of the durable position of every partition this member still
    /// owns, so a graceful stop leaves no stored-but-uncommitted batch behind. Partitions it
    /// owned once and lost in a rebalance are not among them: their committed offsets belong
    /// to their new owner.
    async fn commit_before_exit(&self) {
        // The loop has stopped polling, so no rebalance callback runs until the commit is done.
        let positions = lock_ownership(&self.ownership).unconfirmed();
        if positions.is_empty() {
            return;
        }
        let tpl = match offset_list(&positions) {
            Ok(tpl) => tpl,
            Err(e) => return tracing::error!(error = %e, "could not build the final commit list"),
        };
        let consumer = self.consumer.clone();
        match tokio::task::spawn_blocking(move || consumer.commit(&tpl, CommitMode::Sync)).await {
            // Confirmed: the revocation when the consumer closes need not commit it again.
            Ok(Ok(())) => lock_ownership(&self.ownership).confirm(&positions),
            Ok(Err(e)) => tracing::warn!(error = %e, "final offset commit failed; the last batch may be redelivered"),
            Err(e) => tracing::warn!(error = %e, "final offset commit task failed"),
        }
    }
}

/// Keeps [`ConsumerStats::consumer_lag`] current until `shutdown`. The offset and watermark
/// queries block on broker round trips, so they run on a blocking thread, off the runtime.
async fn monitor_lag(
    consumer: Arc<StreamConsumer<AssignmentTracker>>,
    stats: Arc<ConsumerStats>,
    shutdown: CancellationToken,
) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_counts_taken_messages_without_a_durable_outcome() {
        let stats = ConsumerStats::default();
        stats.consumed.store(10, Ordering::Relaxed);
        stats.done.store(4, Ordering::Relaxed);
        stats.rejected.store(1, Ordering::Relaxed);
        stats.dead_lettered_transient.store(2, Ordering::Relaxed);
        stats.dead_lettered_permanent.store(1, Ordering::Relaxed);
        assert_eq!(stats.in_flight(), 2);
        assert!(stats.render_prometheus("svc").contains("# TYPE svc_in_flight gauge\nsvc_in_flight 2\n"));
        stats.done.store(6, Ordering::Relaxed);
        assert_eq!(stats.in_flight(), 0, "everything settled");
    }

    fn partitions(ps: &[i32]) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        for p in ps {
            tpl.add_partition("t", *p);
        }
        tpl
    }

    fn delivery(partition: i32, offset: i64) -> Delivery {
        Delivery {
            topic: "t".into(),
            partition,
            offset,
            key: None,
            payload: None,
            headers: Vec::new(),
            timestamp_ms: None,
            retry: None,
            retry_metadata_error: None,
        }
    }

    /// A batch of `(partition, offset)` polled under the current assignment.
    fn polled(ownership: &Ownership, messages: &[(i32, i64)]) -> Batch {
        let mut batch = Batch::default();
        for &(p, o) in messages {
            batch.push(delivery(p, o), ownership.token("t", p));
        }
        batch
    }

    fn key(p: i32) -> PartitionKey {
        ("t".to_owned(), p)
    }

    #[test]
    fn revoked_partitions_are_committed_on_revoke_and_never_again() {
        let mut ownership = Ownership::default();
        ownership.assign(&partitions(&[0, 1]));
        let batch = polled(&ownership, &[(0, 9), (1, 19)]);
        assert_eq!(ownership.advance(&batch.positions), vec![(key(0), 10), (key(1), 20)]);
        assert_eq!(ownership.revoke(&partitions(&[1])), vec![(key(1), 20)], "committed before it goes");
        assert_eq!(ownership.unconfirmed(), vec![(key(0), 10)], "the exit commit leaves partition 1 to its new owner");
    }

    #[test]
    fn a_batch_in_flight_across_a_revocation_commits_nothing_for_the_moved_partition() {
        let mut ownership = Ownership::default();
        ownership.assign(&partitions(&[0, 1]));
        let batch = polled(&ownership, &[(0, 50), (1, 50)]);
        // Partition 1 moves to another member (which commits far past 51) and comes back.
        ownership.revoke(&partitions(&[0, 1]));
        ownership.assign(&partitions(&[0]));
        assert!(ownership.advance(&batch.positions).is_empty(), "revoked under the batch: nothing to commit");
        ownership.assign(&partitions(&[1]));
        assert!(ownership.advance(&batch.positions).is_empty(), "assigned again: the old batch still commits nothing");
        assert!(ownership.unconfirmed().is_empty());
    }

    #[test]
    fn positions_never_move_backwards_and_confirmed_ones_are_not_repeated() {
        let mut ownership = Ownership::default();
        ownership.assign(&partitions(&[0]));
        let later = polled(&ownership, &[(0, 7), (0, 8)]);
        let earlier = polled(&ownership, &[(0, 3)]);
        assert_eq!(ownership.advance(&later.positions), vec![(key(0), 9)]);
        assert_eq!(ownership.advance(&earlier.positions), vec![(key(0), 9)]);
        ownership.confirm(&[(key(0), 9)]);
        assert!(ownership.unconfirmed().is_empty());
        assert!(ownership.revoke(&partitions(&[0])).is_empty(), "nothing left to commit on revoke");
    }

    #[test]
    fn messages_of_partitions_not_owned_are_never_committed() {
        let mut ownership = Ownership::default();
        ownership.assign(&partitions(&[0]));
        let batch = polled(&ownership, &[(0, 1), (5, 1)]);
        assert_eq!(batch.deliveries.len(), 2, "handled all the same");
        assert_eq!(ownership.advance(&batch.positions), vec![(key(0), 2)]);
    }

    #[test]
    fn consumer_lag_is_rendered_once_known() {
        let stats = ConsumerStats::default();
        assert!(!stats.render_prometheus("svc").contains("svc_consumer_lag"));
        *stats.consumer_lag.lock().unwrap() = Some(42);
        assert!(stats.render_prometheus("svc").contains("# TYPE svc_consumer_lag gauge\nsvc_consumer_lag 42\n"));
    }
}

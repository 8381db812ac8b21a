//! How a [`ReliableConsumer`](super::ReliableConsumer) polls, retries and commits, and the
//! librdkafka configuration that follows from it.
//!
//! Kept apart from the run loop: these are the knobs an operator turns (via the service kit's
//! arguments), and the only place that decides which rdkafka settings a consumer gets.

use std::time::Duration;

use rdkafka::ClientConfig;

use crate::dead_letter::Backoff;
use crate::dead_letter::DeadLetterLimit;
use crate::kafka::group::group_member_config;
use crate::kafka::KafkaSettings;

/// When offsets are committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CommitPolicy {
    /// Commit after every message of the batch has a durable outcome: at-least-once.
    #[default]
    AfterDurableOutcome,
    /// Kafka's auto-commit: offsets are committed in the background as soon as messages are
    /// polled, whatever happens to them. **Loses messages on a crash.** It exists only so the
    /// test suite can prove that its loss detector detects the article's failure. Only in a
    /// build with the `negative-control` feature, which production builds never turn on.
    #[cfg(feature = "negative-control")]
    UnsafeAutoCommit,
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

/// How a [`ReliableConsumer`](super::ReliableConsumer) polls, retries and commits.
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
            // Every 50 ms: the pause between probes is how late a recovered dependency is
            // noticed, and a backlog drained in half a second loses a tenth of its rate per
            // 50 ms. A probe (the failed batch again) against a stopped server is a refused
            // connection: nothing for either side.
            outage_probe_backoff: Backoff::exponential(Duration::from_millis(50), 2.0, Duration::from_millis(50)),
            dead_letter_limit: DeadLetterLimit::default(),
            instance_id: None,
        }
    }

    /// The librdkafka configuration of the consumer: [`group_member_config`], plus static
    /// membership and commits as [`ConsumerSettings::commit_policy`] says.
    pub(super) fn client_config(&self, kafka: &KafkaSettings) -> ClientConfig {
        let mut config = group_member_config(kafka, &self.group_id);
        if let Some(id) = &self.instance_id {
            config.set("group.instance.id", id);
        }
        #[cfg(feature = "negative-control")]
        if self.commit_policy == CommitPolicy::UnsafeAutoCommit {
            tracing::warn!("COMMIT_POLICY=unsafe-auto-commit: messages WILL be lost on a crash");
            config
                .set("enable.auto.commit", "true")
                .set("enable.auto.offset.store", "true")
                .set("auto.commit.interval.ms", "100");
        }
        config
    }
}

//! The worker loop: read dead-letter topics, decide each record's fate, re-send or park it when
//! its time comes, and commit only what is durably done.
//!
//! ```text
//!  *-dlq ──recv──▶ triage ──▶ Park ───────────────────────────▶ parking lot ─┐
//!                     └────▶ Resend ─▶ waiting (by due time) ─▶ original topic ─┴▶ offset done ─▶ commit prefix
//! ```
//!
//! Polling never stops while messages wait, so a message due in 1 s is not held up by one due in
//! 30 s on the same partition; commits cover only the contiguous prefix of finished offsets, so
//! a crash re-sends at worst and never loses. When too many messages wait, the partitions are
//! paused until the backlog drains.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;
use reliable_messaging::consumer::LAG_REFRESH;
use reliable_messaging::kafka::group::group_member_config;
use reliable_messaging::kafka::group::{
    commit_list, hold_back, monitor_lag, set_assignment_paused, wake_fetchers, GroupContext, TopicPartition,
};
use reliable_messaging::Delivery;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::actions::{Actions, Finished, Scheduled};
use crate::configuration::Settings;
use crate::metrics::Metrics;
use crate::rebalance::{lock, SharedState, WorkerBook, WorkerContext};
use crate::triage::{triage, Decision, RetryPolicy};
use reliable_messaging::dead_letter::FloodGuard;
use reliable_messaging::parking::ParkReason;

/// Bounds on memory and concurrency.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_scheduled: usize,
    pub resume_below: usize,
    pub max_in_flight: usize,
    pub commit_interval: Duration,
    /// How long shutdown waits for re-sends in flight.
    pub drain_timeout: Duration,
}

/// A finished task: which record, and how it ended.
struct TaskDone {
    partition: TopicPartition,
    offset: i64,
    finished: Finished,
}

pub struct DlqWorker {
    consumer: Arc<StreamConsumer<WorkerContext>>,
    state: SharedState,
    actions: Actions,
    policy: RetryPolicy,
    limits: Limits,
    metrics: Arc<Metrics>,
    /// Counts permanent and poison parks; trips the parking flood limit.
    park_guard: std::sync::Mutex<FloodGuard>,
}

/// How often the worker asks the database whether it answers, and how long it waits.
const DATABASE_PROBE_EVERY: Duration = Duration::from_secs(1);

impl DlqWorker {
    /// Creates the consumer and subscribes to the dead-letter topic pattern.
    pub fn new(settings: &Settings, actions: Actions, metrics: Arc<Metrics>) -> Result<Self, KafkaError> {
        let state = SharedState::default();
        // The group member every consumer in the workspace is (manual commits, earliest offset,
        // quick failure detection), plus what a pattern subscription needs.
        let mut config = group_member_config(&settings.kafka, &settings.group_id);
        config
            // New dead-letter topics matching the pattern are picked up within this interval.
            .set("topic.metadata.refresh.interval.ms", settings.metadata_refresh.as_millis().to_string())
            .set("allow.auto.create.topics", "false");
        let consumer: StreamConsumer<WorkerContext> = config.create_with_context(GroupContext {
            book: WorkerBook { state: state.clone(), metrics: metrics.clone() },
            gauges: metrics.group.clone(),
        })?;
        consumer.subscribe(&[settings.topic_pattern.as_str()])?;
        metrics.subscribed.store(true, Ordering::Relaxed);
        tracing::info!(pattern = %settings.topic_pattern, group = %settings.group_id, "subscribed to dead-letter topics");
        Ok(Self {
            consumer: Arc::new(consumer),
            state,
            actions,
            policy: RetryPolicy { threshold: settings.retry_threshold, schedule: settings.retry_schedule.clone() },
            limits: Limits {
                max_scheduled: settings.max_scheduled,
                resume_below: settings.resume_below,
                max_in_flight: settings.max_in_flight,
                commit_interval: settings.commit_interval,
                drain_timeout: settings.publish_timeout + Duration::from_secs(1),
            },
            metrics,
            park_guard: std::sync::Mutex::new(FloodGuard::new(settings.park_limit)),
        })
    }

    /// Runs until `shutdown`; then lets re-sends in flight finish (bounded), commits the finished
    /// prefix and returns. Messages still waiting are redelivered to the next worker.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut tasks: JoinSet<TaskDone> = JoinSet::new();
        let task_shutdown = shutdown.child_token();
        let mut commit_tick = tokio::time::interval(self.limits.commit_interval);
        commit_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let probe = tokio::spawn(probe_database(self.actions.pool.clone(), self.metrics.clone(), shutdown.clone()));
        let metrics = self.metrics.clone();
        let record_lag = move |lags: Option<Vec<_>>| {
            *metrics.partition_lag.lock().expect("partition lag lock") = lags.unwrap_or_default();
        };
        let lag = tokio::spawn(monitor_lag(self.consumer.clone(), LAG_REFRESH, record_lag, shutdown.clone()));
        loop {
            let next_due = lock(&self.state).waiting.next_due();
            // While the database is down, due re-sends wait: the consumers that would take them
            // are paused for the same outage, so a re-send would only spend a retry.
            let database_down = self.metrics.database_down.load(Ordering::Relaxed);
            let may_dispatch = next_due.is_some() && tasks.len() < self.limits.max_in_flight && !database_down;
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                Some(joined) = tasks.join_next() => match joined {
                    Ok(done) => self.settle(done),
                    Err(e) => tracing::error!(error = %e, "a re-send task failed; its offset stays uncommitted"),
                },
                _ = tokio::time::sleep_until(next_due.unwrap_or_else(Instant::now)), if may_dispatch => {
                    self.dispatch_due(&mut tasks, &task_shutdown);
                }
                // Wakes the loop to re-check the probe while re-sends are held.
                _ = tokio::time::sleep(DATABASE_PROBE_EVERY), if database_down && next_due.is_some() => {}
                _ = commit_tick.tick() => self.commit().await,
                message = self.consumer.recv() => self.intake(message, &mut tasks, &task_shutdown),
            }
            self.metrics.in_flight.store(tasks.len(), Ordering::Relaxed);
            self.apply_back_pressure(tasks.len());
        }
        probe.abort();
        lag.abort();
        tracing::info!(in_flight = tasks.len(), "stopping: finishing re-sends in flight");
        task_shutdown.cancel();
        let drained = tokio::time::timeout(self.limits.drain_timeout, async {
            while let Some(joined) = tasks.join_next().await {
                if let Ok(done) = joined {
                    self.settle(done);
                }
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(abandoned = tasks.len(), "re-sends still in flight at shutdown; they will be redelivered");
            tasks.abort_all();
        }
        self.commit().await;
        tracing::info!(
            waiting = lock(&self.state).waiting.len(),
            "dlq-worker stopped; waiting messages will be redelivered"
        );
    }

    /// Tracks a new record and either parks it or schedules its re-send.
    fn intake(
        &self,
        message: Result<BorrowedMessage<'_>, KafkaError>,
        tasks: &mut JoinSet<TaskDone>,
        shutdown: &CancellationToken,
    ) {
        let delivery = match message {
            Ok(m) => Delivery::from_message(&m),
            Err(e) => {
                tracing::warn!(error = %e, "poll failed");
                return;
            }
        };
        if self.metrics.halted.lock().expect("halt lock").is_some() {
            // Halted: nothing new is taken; the record is fetched again after a restart.
            self.hold_back(&delivery);
            return;
        }
        let partition = TopicPartition::new(delivery.topic.clone(), delivery.partition);
        let now_ms = Utc::now().timestamp_millis();
        let decision = triage(&delivery, &self.policy, now_ms);
        let parked_for_the_message = match &decision {
            Decision::Park { reason: ParkReason::Permanent | ParkReason::Poison, explanation, .. } => {
                Some(explanation.as_str())
            }
            _ => None,
        };
        let trip = self.park_guard.lock().unwrap_or_else(|p| p.into_inner()).observe(parked_for_the_message);
        if let Some(reason) = trip {
            tracing::error!(
                reason = %reason.summary,
                first_failures = ?reason.first_failures,
                "parking flood limit reached: intake halted, the rest stays on the dead-letter topics uncommitted; fix the cause (or raise the limit) and restart"
            );
            *self.metrics.halted.lock().expect("halt lock") = Some(reason.to_string());
            self.hold_back(&delivery);
            self.pause_assignment();
            return;
        }
        self.metrics.consumed.fetch_add(1, Ordering::Relaxed);
        let mut state = lock(&self.state);
        state.offsets.track(&partition, delivery.offset);
        match decision {
            Decision::Park { source_topic, reason, explanation } => {
                drop(state);
                tracing::info!(position = %delivery.position(), %reason, %explanation, "parking");
                let actions = self.actions.clone();
                let shutdown = shutdown.clone();
                let offset = delivery.offset;
                tasks.spawn(async move {
                    let finished = actions.park(&delivery, &source_topic, reason, &explanation, shutdown).await;
                    TaskDone { partition, offset, finished }
                });
            }
            Decision::Resend { target_topic, due_ms } => {
                let wait = Duration::from_millis(u64::try_from(due_ms.saturating_sub(now_ms)).unwrap_or(0));
                tracing::debug!(position = %delivery.position(), %target_topic, ?wait, "scheduled");
                state.waiting.push(
                    Instant::now() + wait,
                    partition,
                    Scheduled { delivery, target_topic, failed_sends: 0 },
                );
                self.metrics.scheduled.store(state.waiting.len(), Ordering::Relaxed);
                self.metrics.set_next_due(state.waiting.next_due());
            }
        }
    }

    /// Leaves `delivery` for later: its partition is paused and rewound to it, so it is not
    /// tracked, not committed past, and fetched again after a restart.
    fn hold_back(&self, delivery: &Delivery) {
        hold_back(&self.consumer, &delivery.topic, delivery.partition, delivery.offset);
    }

    fn pause_assignment(&self) {
        set_assignment_paused(&self.consumer, true);
    }

    /// Starts the re-sends that are due, as many as the in-flight limit allows.
    fn dispatch_due(&self, tasks: &mut JoinSet<TaskDone>, shutdown: &CancellationToken) {
        let room = self.limits.max_in_flight.saturating_sub(tasks.len());
        let due = {
            let mut state = lock(&self.state);
            let due = state.waiting.pop_due(Instant::now(), room);
            self.metrics.scheduled.store(state.waiting.len(), Ordering::Relaxed);
            self.metrics.set_next_due(state.waiting.next_due());
            due
        };
        for (partition, entry) in due {
            let actions = self.actions.clone();
            let shutdown = shutdown.clone();
            tasks.spawn(async move {
                let offset = entry.delivery.offset;
                let finished = actions.resend(entry, shutdown).await;
                TaskDone { partition, offset, finished }
            });
        }
    }

    fn settle(&self, done: TaskDone) {
        let mut state = lock(&self.state);
        match done.finished {
            Finished::Settled => {
                state.offsets.complete(&done.partition, done.offset);
            }
            Finished::RetryLater(entry, delay) => {
                // Only if the partition is still ours: after a revocation the new owner has it.
                if state.offsets.is_outstanding(&done.partition, done.offset) {
                    state.waiting.push(Instant::now() + delay, done.partition, *entry);
                    self.metrics.scheduled.store(state.waiting.len(), Ordering::Relaxed);
                }
            }
            Finished::Abandoned => {}
        }
    }

    /// Commits the finished prefix of every partition that moved.
    async fn commit(&self) {
        let positions = lock(&self.state).offsets.to_commit();
        if positions.is_empty() {
            return;
        }
        let list = match commit_list(&positions) {
            Ok(list) => list,
            Err(e) => {
                tracing::error!(error = %e, "could not build the commit list");
                return;
            }
        };
        let consumer = self.consumer.clone();
        match tokio::task::spawn_blocking(move || consumer.commit(&list, CommitMode::Sync)).await {
            Ok(Ok(())) => {
                lock(&self.state).offsets.mark_committed(&positions);
                self.metrics.group.commits.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(?positions, "committed");
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "offset commit failed; will retry"),
            Err(e) => tracing::warn!(error = %e, "offset commit task failed"),
        }
    }

    /// Pauses every assigned partition while more than `max_scheduled` messages wait, and
    /// resumes them once fewer than `resume_below` do: memory stays bounded however large the
    /// dead-letter backlog.
    fn apply_back_pressure(&self, in_flight: usize) {
        if self.metrics.halted.lock().expect("halt lock").is_some() {
            // Halted: everything stays paused.
            return;
        }
        let mut state = lock(&self.state);
        let load = state.waiting.len() + in_flight;
        let pause = !state.paused && load > self.limits.max_scheduled;
        let resume = state.paused && load <= self.limits.resume_below;
        if !pause && !resume {
            return;
        }
        let Some(partitions) = set_assignment_paused(&self.consumer, pause) else { return };
        state.paused = pause;
        if pause {
            self.metrics.pauses.fetch_add(1, Ordering::Relaxed);
        } else {
            wake_fetchers(&self.consumer);
        }
        self.metrics.paused_partitions.store(if pause { partitions } else { 0 }, Ordering::Relaxed);
        tracing::info!(waiting = load, partitions, paused = pause, "back-pressure");
    }
}

/// Keeps `metrics.database_down` current: the worker's own probe of the database it parks
/// into and records status in. In this deployment that is the database whose outage pauses the
/// consumers the worker re-sends to, so "down" here means "a re-send would only spend a retry".
/// One log line when an outage starts and one when it ends.
async fn probe_database(pool: sqlx::MySqlPool, metrics: Arc<Metrics>, shutdown: CancellationToken) {
    let mut since: Option<Instant> = None;
    loop {
        let answered = matches!(
            tokio::time::timeout(DATABASE_PROBE_EVERY, sqlx::query("SELECT 1").execute(&pool)).await,
            Ok(Ok(_))
        );
        match (answered, since) {
            (false, None) => {
                tracing::warn!("database down: re-sends held until it answers; no retry is spent meanwhile");
                metrics.outages.fetch_add(1, Ordering::Relaxed);
                metrics.database_down.store(true, Ordering::Relaxed);
                since = Some(Instant::now());
            }
            (true, Some(started)) => {
                tracing::info!(outage_secs = started.elapsed().as_secs_f64(), "database back: re-sends resumed");
                metrics.database_down.store(false, Ordering::Relaxed);
                since = None;
            }
            _ => {}
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(DATABASE_PROBE_EVERY) => {}
        }
    }
}

//! Stopping consumption without leaving the group: pausing and resuming a member's partitions,
//! rewinding one polled while paused, and polling while paused so the group keeps the member.
//!
//! The consumer pauses for a dependency outage and after a halt; the dlq-worker for
//! back-pressure and after a halt. Both leave what they did not finish uncommitted, so nothing
//! is lost, and both must keep polling or the group evicts them (`max.poll.interval.ms`).

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{Consumer as _, ConsumerContext, StreamConsumer};
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Pauses (`true`) or resumes every assigned partition; returns how many there are, or `None`
/// when the assignment could not be read or changed (logged).
pub fn set_assignment_paused<C: ConsumerContext + 'static>(
    consumer: &StreamConsumer<C>,
    paused: bool,
) -> Option<usize> {
    let assignment = match consumer.assignment() {
        Ok(assignment) => assignment,
        Err(e) => {
            tracing::warn!(error = %e, paused, "could not read the assignment");
            return None;
        }
    };
    let (verb, result) = match paused {
        true => ("pause", consumer.pause(&assignment)),
        false => ("resume", consumer.resume(&assignment)),
    };
    match result {
        Ok(()) => Some(assignment.count()),
        Err(e) => {
            tracing::warn!(error = %e, "could not {verb} the assigned partitions");
            None
        }
    }
}

/// Leaves the record at `offset` for later: its partition is paused and rewound to it, so it is
/// neither handled nor committed past now, and is fetched again after a resume or a restart.
pub fn hold_back<C: ConsumerContext + 'static>(consumer: &StreamConsumer<C>, topic: &str, partition: i32, offset: i64) {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, partition);
    if let Err(e) = consumer.pause(&tpl) {
        tracing::warn!(error = %e, topic, partition, "could not pause a partition");
    }
    if let Err(e) = consumer.seek(topic, partition, Offset::Offset(offset), Duration::from_secs(5)) {
        tracing::warn!(error = %e, topic, partition, offset, "could not rewind a partition polled while paused");
    }
}

/// Gets the fetchers going again right after a resume. librdkafka does not wake a broker's
/// thread when a partition is resumed (its fetch state does not change), so the thread sleeps
/// out its idle wait of up to 1 s before fetching again: a backlog waited 0.5 s after the
/// database came back, by librdkafka's debug log (`KAFKA_DEBUG=fetch`), and the drain counted
/// from the restore lost half its rate. A request to each partition's leader (reading its high
/// watermark, which is otherwise unused) wakes that broker's thread, and the thread's next pass
/// fetches every resumed partition it leads. Off the runtime: the query blocks for a round trip.
pub fn wake_fetchers<C: ConsumerContext + 'static>(consumer: &Arc<StreamConsumer<C>>) {
    let Ok(assignment) = consumer.assignment() else { return };
    let partitions: Vec<(String, i32)> =
        assignment.elements().iter().map(|e| (e.topic().to_owned(), e.partition())).collect();
    if partitions.is_empty() {
        return;
    }
    let consumer = consumer.clone();
    tokio::task::spawn_blocking(move || {
        for (topic, partition) in partitions {
            if let Err(e) = consumer.fetch_watermarks(&topic, partition, Duration::from_secs(1)) {
                tracing::debug!(error = %e, topic, partition, "waking the fetcher after a resume failed");
            }
        }
    });
}

/// Polls for `period` while paused, so the group does not evict this member and rebalances are
/// served. Paused partitions deliver nothing; a message that arrives anyway (a partition
/// assigned before it could be paused) is held back for after the resume. `false` once
/// shutdown is requested.
pub async fn keep_membership_for<C: ConsumerContext + 'static>(
    consumer: &StreamConsumer<C>,
    period: Duration,
    shutdown: &CancellationToken,
) -> bool {
    let deadline = Instant::now() + period;
    while Instant::now() < deadline {
        let slice = (deadline - Instant::now()).min(Duration::from_millis(500));
        tokio::select! {
            _ = shutdown.cancelled() => return false,
            polled = tokio::time::timeout(slice, consumer.recv()) => {
                if let Ok(Ok(m)) = polled {
                    let (topic, partition, offset) = (m.topic().to_owned(), m.partition(), m.offset());
                    drop(m);
                    hold_back(consumer, &topic, partition, offset);
                }
            }
        }
    }
    !shutdown.is_cancelled()
}

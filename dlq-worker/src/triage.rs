//! Decides, for each dead-lettered record, whether it goes back to its topic (and when) or to
//! the parking lot (and why). Pure: no I/O, so every rule is unit-tested.

use reliable_messaging::dead_letter::Backoff;
use reliable_messaging::dead_letter::DEAD_LETTER_SUFFIX;
use reliable_messaging::message::FailureKind;
use reliable_messaging::parking::ParkReason;
use reliable_messaging::Delivery;

/// The retry rules.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Records re-sent this many times are parked.
    pub threshold: u32,
    /// Delay before a re-send when the record carries no `x-not-before`.
    pub schedule: Backoff,
}

/// Where a dead-lettered record goes next.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Re-send to `target_topic` at `due_ms` (epoch milliseconds) or later.
    Resend { target_topic: String, due_ms: i64 },
    /// Stop retrying; `source_topic` is where a redrive would send it.
    Park { source_topic: String, reason: ParkReason, explanation: String },
}

/// The topic a dead-lettered record came from: its metadata says so, or the DLQ's name does
/// (`orders-dlq` → `orders`, the article's naming rule).
pub fn origin_topic(delivery: &Delivery) -> Option<String> {
    if let Some(topic) = delivery.retry.as_ref().and_then(|r| r.original_topic.clone()) {
        return Some(topic);
    }
    delivery.topic.strip_suffix(DEAD_LETTER_SUFFIX).filter(|t| !t.is_empty()).map(str::to_owned)
}

/// Decides `delivery`'s next stop; `now_ms` is when this worker read it.
pub fn triage(delivery: &Delivery, policy: &RetryPolicy, now_ms: i64) -> Decision {
    let origin = origin_topic(delivery);
    // Where a redrive would go; for a record of unknown origin, back to where it was found.
    let source_topic = origin.clone().unwrap_or_else(|| delivery.topic.clone());
    let park = |reason, explanation: String| Decision::Park { source_topic: source_topic.clone(), reason, explanation };

    if let Some(error) = &delivery.retry_metadata_error {
        return park(ParkReason::Poison, error.to_string());
    }
    let Some(target_topic) = origin else {
        return park(
            ParkReason::MissingTopic,
            format!("cannot tell the original topic of {}: no retry metadata names it and the name does not end in {DEAD_LETTER_SUFFIX}", delivery.topic),
        );
    };
    if target_topic == delivery.topic {
        return park(
            ParkReason::Poison,
            format!("retry metadata names the dead-letter topic {target_topic} itself as the origin"),
        );
    }
    let retry = delivery.retry.as_ref();
    let last_error = retry.and_then(|r| r.error_message.clone());
    if retry.and_then(|r| r.error_kind) == Some(FailureKind::Permanent) {
        return park(ParkReason::Permanent, last_error.unwrap_or_else(|| "permanent failure".to_owned()));
    }
    let retry_count = delivery.retry_count();
    if retry_count >= policy.threshold {
        let last_error = last_error.unwrap_or_else(|| "unknown error".to_owned());
        return park(
            ParkReason::RetriesExhausted,
            format!("{last_error}; retry budget of {} exhausted", policy.threshold),
        );
    }
    Decision::Resend { target_topic, due_ms: due_ms(delivery, policy, now_ms) }
}

/// When the re-send is due, from a moment this worker can trust.
///
/// `x-not-before` is honoured: the consumer that failed the message wrote it on this very hop
/// (a re-send never carries one, so it cannot be a stale copy from an earlier hop). Otherwise
/// the delay counts from `read_ms`, when this worker read the dead letter. Neither the
/// record's timestamp nor `x-last-failure-at` can be trusted for that: a foreign writer (Kafka
/// Connect's dead-letter queue) copies the original record's timestamp and never updates our
/// failure headers, so hop 2 onwards would be due in the past and the whole retry budget
/// would be spent in milliseconds. Reading late (a backlog, a restart) only delays a retry.
fn due_ms(delivery: &Delivery, policy: &RetryPolicy, read_ms: i64) -> i64 {
    if let Some(not_before) = delivery.retry.as_ref().and_then(|r| r.not_before_ms) {
        return not_before;
    }
    let delay = policy.schedule.delay(delivery.retry_count());
    read_ms.saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use reliable_messaging::message::retry_metadata::{header, MetadataError, MetadataSource, RetryMetadata};
    use reliable_messaging::message::Header;

    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy { threshold: 5, schedule: Backoff::constant(Duration::from_secs(2)) }
    }

    fn dead_letter(topic: &str, retry: Option<RetryMetadata>) -> Delivery {
        Delivery {
            topic: topic.into(),
            partition: 0,
            offset: 3,
            key: None,
            payload: Some(b"{}".to_vec()),
            headers: vec![Header { key: header::RETRY_COUNT.into(), value: Some(b"0".to_vec()) }],
            timestamp_ms: Some(10_000),
            retry,
            retry_metadata_error: None,
        }
    }

    fn metadata(count: u32, kind: FailureKind) -> RetryMetadata {
        RetryMetadata {
            retry_count: count,
            original_topic: Some("orders".into()),
            original_partition: Some(1),
            original_offset: Some(7),
            first_failure_at: None,
            last_failure_at: None,
            error_kind: Some(kind),
            error_message: Some("db down".into()),
            not_before_ms: None,
            source: MetadataSource::Headers,
        }
    }

    #[test]
    fn transient_failure_is_resent_to_its_origin_after_the_backoff() {
        let d = dead_letter("orders-dlq", Some(metadata(2, FailureKind::Transient)));
        assert_eq!(triage(&d, &policy(), 11_000), Decision::Resend { target_topic: "orders".into(), due_ms: 13_000 });
    }

    /// Kafka Connect's DLQ copies the original record's timestamp and leaves our failure
    /// headers as the previous hop wrote them: both are long past on hops 2 to 5.
    #[test]
    fn a_stale_timestamp_or_failure_time_never_makes_a_retry_due_early() {
        let mut m = metadata(3, FailureKind::Transient);
        m.last_failure_at = chrono::DateTime::from_timestamp_millis(1_000);
        let mut d = dead_letter("orders-dlq", Some(m));
        d.timestamp_ms = Some(1_000);
        let read_at = 3_600_000;
        assert_eq!(
            triage(&d, &policy(), read_at),
            Decision::Resend { target_topic: "orders".into(), due_ms: read_at + 2_000 }
        );
    }

    #[test]
    fn not_before_wins_over_the_backoff() {
        let mut m = metadata(0, FailureKind::Transient);
        m.not_before_ms = Some(99_000);
        let d = dead_letter("orders-dlq", Some(m));
        assert_eq!(triage(&d, &policy(), 0), Decision::Resend { target_topic: "orders".into(), due_ms: 99_000 });
    }

    #[test]
    fn retry_budget_exhausted_is_parked_with_the_last_error() {
        let d = dead_letter("orders-dlq", Some(metadata(5, FailureKind::Transient)));
        match triage(&d, &policy(), 0) {
            Decision::Park { source_topic, reason, explanation } => {
                assert_eq!(source_topic, "orders");
                assert_eq!(reason, ParkReason::RetriesExhausted);
                assert_eq!(explanation, "db down; retry budget of 5 exhausted");
            }
            other => panic!("expected park, got {other:?}"),
        }
        let below = dead_letter("orders-dlq", Some(metadata(4, FailureKind::Transient)));
        assert!(matches!(triage(&below, &policy(), 0), Decision::Resend { .. }));
    }

    #[test]
    fn permanent_failure_is_parked_at_once() {
        let d = dead_letter("orders-dlq", Some(metadata(0, FailureKind::Permanent)));
        assert!(matches!(triage(&d, &policy(), 0), Decision::Park { reason: ParkReason::Permanent, .. }));
    }

    #[test]
    fn unreadable_metadata_is_poison() {
        let mut d = dead_letter("orders-dlq", None);
        d.retry_metadata_error = Some(MetadataError("negative retry count -1".into()));
        match triage(&d, &policy(), 0) {
            Decision::Park { reason: ParkReason::Poison, explanation, source_topic } => {
                assert!(explanation.contains("negative retry count"), "{explanation}");
                assert_eq!(source_topic, "orders", "origin still derived from the DLQ name");
            }
            other => panic!("expected poison, got {other:?}"),
        }
    }

    #[test]
    fn origin_comes_from_the_dlq_name_when_metadata_has_none() {
        let d = dead_letter("payments-dlq", None);
        assert_eq!(triage(&d, &policy(), 50_000), Decision::Resend { target_topic: "payments".into(), due_ms: 52_000 });
    }

    #[test]
    fn unknown_origin_is_parked() {
        let d = dead_letter("payments.DLT", None);
        assert!(matches!(triage(&d, &policy(), 0), Decision::Park { reason: ParkReason::MissingTopic, .. }));
        let mut m = metadata(0, FailureKind::Transient);
        m.original_topic = Some("orders-dlq".into());
        let looping = dead_letter("orders-dlq", Some(m));
        assert!(matches!(triage(&looping, &policy(), 0), Decision::Park { reason: ParkReason::Poison, .. }));
    }
}

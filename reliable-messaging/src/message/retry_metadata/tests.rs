//! Round trips through every format: a record fails, is encoded for its DLQ, is read back;
//! and what is read from foreign writers.
//!
//! In one file because they share the record that goes around ([`Record`], standing in for a
//! consumed delivery so that these tests need nothing outside this module).

use chrono::Utc;

use super::*;
use crate::message::header::Header;
use crate::message::{Failure, FailureKind};

/// The parts of a consumed record that the formats read and write.
#[derive(Debug, Clone)]
struct Record {
    topic: String,
    partition: i32,
    offset: i64,
    payload: Option<Vec<u8>>,
    headers: Vec<Header>,
    retry: Option<RetryMetadata>,
    retry_metadata_error: Option<MetadataError>,
}

impl Record {
    fn retry_count(&self) -> u32 {
        self.retry.as_ref().map_or(0, |r| r.retry_count)
    }

    fn header_str(&self, name: &str) -> Option<&str> {
        crate::message::header::first_value(&self.headers, name).and_then(|v| std::str::from_utf8(v).ok())
    }
}

/// Decodes what `r` carries, as a consumed delivery does.
fn attach(r: &mut Record) {
    match decode(&r.headers, r.payload.as_deref()) {
        Ok(Some((metadata, unwrapped))) => {
            if let Some(payload) = unwrapped {
                r.payload = payload;
            }
            r.retry = Some(metadata);
        }
        Ok(None) => {}
        Err(e) => r.retry_metadata_error = Some(e),
    }
}

fn encode_record(r: &Record, metadata: &RetryMetadata, format: MetadataFormat) -> (Option<Vec<u8>>, Vec<Header>) {
    encode(&r.headers, r.payload.as_deref(), metadata, format)
}

fn consumed(payload: &[u8], headers: Vec<(&str, &[u8])>) -> Record {
    let mut d = Record {
        topic: "user-registrations".into(),
        partition: 2,
        offset: 41,
        payload: Some(payload.to_vec()),
        headers: headers.into_iter().map(|(k, v)| Header { key: k.into(), value: Some(v.to_vec()) }).collect(),
        retry: None,
        retry_metadata_error: None,
    };
    attach(&mut d);
    d
}

fn failure(kind: FailureKind) -> Failure {
    Failure { kind, message: "database unreachable".into() }
}

fn hop(d: &Record, format: MetadataFormat, topic: &str, offset: i64) -> Record {
    let now = Utc::now();
    let meta = RetryMetadata::after_failure(
        d.retry.as_ref(),
        (&d.topic, d.partition, d.offset),
        &failure(FailureKind::Transient),
        now,
        now,
    );
    let (payload, headers) = encode_record(d, &meta, format);
    let mut next = Record { topic: topic.into(), offset, payload, headers, retry: None, ..d.clone() };
    attach(&mut next);
    next
}

#[test]
fn first_failure_records_origin_and_preserves_foreign_headers() {
    let d = consumed(br#"{"a":1}"#, vec![("traceparent", b"00-abc")]);
    let dlq = hop(&d, MetadataFormat::Headers, "user-registrations-dlq", 7);
    let m = dlq.retry.as_ref().unwrap();
    assert_eq!(m.retry_count, 0);
    assert_eq!(m.original_topic.as_deref(), Some("user-registrations"));
    assert_eq!((m.original_partition, m.original_offset), (Some(2), Some(41)));
    assert_eq!(m.error_kind, Some(FailureKind::Transient));
    assert_eq!(dlq.header_str("traceparent"), Some("00-abc"));
    assert_eq!(dlq.payload.as_deref(), Some(&br#"{"a":1}"#[..]));
}

#[test]
fn headers_are_replaced_not_appended_across_hops() {
    let mut d = consumed(br#"{"a":1}"#, vec![]);
    for round in 0..5u32 {
        let dlq = hop(&d, MetadataFormat::Headers, "user-registrations-dlq", 100 + i64::from(round));
        let next = dlq.retry.as_ref().unwrap().next_attempt();
        let (payload, headers) = encode_record(&dlq, &next, MetadataFormat::Headers);
        d = Record { topic: "user-registrations".into(), offset: 500, payload, headers, retry: None, ..dlq };
        attach(&mut d);
    }
    assert_eq!(d.retry_count(), 5);
    assert_eq!(d.headers.iter().filter(|h| h.key == header::RETRY_COUNT).count(), 1);
    // The origin is the very first position, not any intermediate one.
    assert_eq!(d.retry.as_ref().unwrap().original_offset, Some(41));
}

#[test]
fn wrapper_round_trips_json_payload_byte_for_byte() {
    let original = br#"{"request_id": "x",  "n": [1, 2]}"#;
    let d = consumed(original, vec![]);
    let dlq = hop(&d, MetadataFormat::Wrapper, "user-registrations-dlq", 3);
    assert_eq!(dlq.payload.as_deref(), Some(&original[..]), "handler sees the unwrapped message");
    let m = dlq.retry.as_ref().unwrap();
    assert_eq!(m.source, MetadataSource::Wrapper);
    assert_eq!(m.original_topic.as_deref(), Some("user-registrations"));
}

#[test]
fn wrapper_carries_non_json_payload_as_base64() {
    let d = consumed(b"\xff not json", vec![]);
    let dlq = hop(&d, MetadataFormat::Wrapper, "t-dlq", 0);
    assert_eq!(dlq.payload.as_deref(), Some(&b"\xff not json"[..]));
}

#[test]
fn article_wrapper_without_origin_is_understood() {
    let d = consumed(br#"{"retryCount": 2, "message": {"data": "..."}}"#, vec![]);
    assert_eq!(d.retry_count(), 2);
    assert_eq!(d.payload.as_deref(), Some(&br#"{"data": "..."}"#[..]));
}

#[test]
fn garbage_and_negative_retry_counts_are_errors() {
    for bad in [&b"-1"[..], b"abc", b"99999999999"] {
        let d = consumed(b"{}", vec![(header::RETRY_COUNT, bad)]);
        assert!(d.retry_metadata_error.is_some(), "{:?} should be rejected", String::from_utf8_lossy(bad));
    }
    let d = consumed(br#"{"retryCount": -3, "message": {}}"#, vec![]);
    assert!(d.retry_metadata_error.as_ref().unwrap().0.contains("negative"));
}

#[test]
fn spring_dead_letter_headers_give_the_origin() {
    let d = consumed(
        b"{}",
        vec![
            (header::SPRING_ORIGINAL_TOPIC, b"orders"),
            (header::SPRING_ORIGINAL_PARTITION, &3i32.to_be_bytes()),
            (header::SPRING_ORIGINAL_OFFSET, &77i64.to_be_bytes()),
            (header::SPRING_EXCEPTION_MESSAGE, b"boom"),
        ],
    );
    let m = d.retry.unwrap();
    assert_eq!(m.source, MetadataSource::SpringDeadLetter);
    assert_eq!(m.original_topic.as_deref(), Some("orders"));
    assert_eq!((m.original_partition, m.original_offset), (Some(3), Some(77)));
    assert_eq!(m.error_message.as_deref(), Some("boom"));
}

#[test]
fn kafka_connect_headers_give_the_origin() {
    let d = consumed(
        b"{}",
        vec![(header::CONNECT_TOPIC, b"payments"), (header::CONNECT_PARTITION, b"1"), (header::CONNECT_OFFSET, b"9")],
    );
    let m = d.retry.unwrap();
    assert_eq!(m.source, MetadataSource::KafkaConnect);
    assert_eq!(
        (m.original_topic.as_deref(), m.original_partition, m.original_offset),
        (Some("payments"), Some(1), Some(9))
    );
}

#[test]
fn the_articles_headers_give_count_and_origin() {
    let d = consumed(
        b"{}",
        vec![(header::ARTICLE_ORIGINAL_TOPIC, b"user-registrations"), (header::ARTICLE_RETRY_COUNT, b"2")],
    );
    let m = d.retry.as_ref().unwrap();
    assert_eq!(m.source, MetadataSource::ArticleHeaders);
    assert_eq!((m.retry_count, m.original_topic.as_deref()), (2, Some("user-registrations")));
    // The next re-send counts on from 2, and from then on our headers travel and win.
    let next = m.next_attempt();
    let (_, headers) = encode_record(&d, &next, MetadataFormat::Headers);
    let mut resent = Record { headers, retry: None, ..d.clone() };
    attach(&mut resent);
    assert_eq!(resent.retry_count(), 3);
    assert_eq!(resent.retry.unwrap().source, MetadataSource::Headers);
    // An origin other than the DLQ's name is honoured.
    let elsewhere = consumed(b"{}", vec![(header::ARTICLE_ORIGINAL_TOPIC, b"orders")]);
    assert_eq!(elsewhere.retry.as_ref().unwrap().original_topic.as_deref(), Some("orders"));
    assert_eq!(elsewhere.retry_count(), 0);
    let garbage = consumed(b"{}", vec![(header::ARTICLE_RETRY_COUNT, b"two")]);
    assert!(garbage.retry_metadata_error.is_some(), "an unreadable count is poison, not zero");
}

#[test]
fn our_headers_win_over_the_articles() {
    let d = consumed(b"{}", vec![(header::ARTICLE_RETRY_COUNT, b"1"), (header::RETRY_COUNT, b"4")]);
    assert_eq!(d.retry_count(), 4);
}

/// Kafka Connect appends `__connect.errors.*` (with a stack trace of several KB) on every
/// hop, Spring its `kafka_dlt-*`: five hops must not carry five stack traces.
#[test]
fn foreign_error_headers_are_bounded_to_the_newest_set() {
    let mut headers: Vec<(&str, Vec<u8>)> = vec![("traceparent", b"00-abc".to_vec())];
    for hop in 0..5 {
        headers.push((header::CONNECT_TOPIC, b"payments".to_vec()));
        headers.push((
            "__connect.errors.exception.stacktrace",
            format!("hop {hop}: {}", "at x.y(Z.java:1)\n".repeat(300)).into_bytes(),
        ));
        headers.push((header::SPRING_EXCEPTION_MESSAGE, format!("spring hop {hop}").into_bytes()));
    }
    let as_refs: Vec<(&str, &[u8])> = headers.iter().map(|(k, v)| (*k, v.as_slice())).collect();
    let d = consumed(b"{}", as_refs);
    let before: usize = d.headers.iter().map(|h| h.key.len() + h.value.as_ref().map_or(0, Vec::len)).sum();
    let meta = d.retry.as_ref().unwrap().next_attempt();
    let (_, out) = encode_record(&d, &meta, MetadataFormat::Headers);
    let size: usize = out.iter().map(|h| h.key.len() + h.value.as_ref().map_or(0, Vec::len)).sum();
    assert!(before > 20_000, "the input is realistic: {before} bytes");
    assert!(size < 4_000, "{size} bytes of headers carried forward");
    let values = |key: &str| {
        out.iter()
            .filter(|h| h.key == key)
            .map(|h| String::from_utf8_lossy(h.value.as_deref().unwrap()).into_owned())
            .collect::<Vec<_>>()
    };
    let trace = values("__connect.errors.exception.stacktrace");
    assert_eq!(trace.len(), 1);
    assert!(trace[0].starts_with("hop 4:"), "the newest is kept");
    assert!(trace[0].len() <= MAX_FOREIGN_ERROR_HEADER_BYTES);
    assert_eq!(values(header::SPRING_EXCEPTION_MESSAGE), vec!["spring hop 4"]);
    assert_eq!(values("traceparent"), vec!["00-abc"], "other headers pass unchanged");
}

#[test]
fn error_messages_are_bounded() {
    let long = "é".repeat(5_000);
    let t = truncate(&long, MAX_ERROR_MESSAGE_BYTES);
    assert!(t.len() <= MAX_ERROR_MESSAGE_BYTES && t.chars().all(|c| c == 'é'));
}

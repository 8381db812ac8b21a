//! What a parked message is: why it was parked, what it carried, and what became of it.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::message::retry_metadata::{self, MetadataFormat, RetryMetadata};
use crate::message::Delivery;
use crate::message::Header;
use crate::message::REQUEST_ID_HEADER;

/// Longest error message stored; longer ones are cut.
pub const MAX_STORED_ERROR_BYTES: usize = 2048;

/// Why a message stopped being retried. The label is stored and used as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParkReason {
    /// The failure was marked permanent: retrying cannot help.
    Permanent,
    /// The retry count reached the threshold.
    RetriesExhausted,
    /// The retry metadata is unreadable, so the message cannot be scheduled safely.
    Poison,
    /// The topic the message should go back to does not exist.
    MissingTopic,
}

impl ParkReason {
    pub const ALL: [ParkReason; 4] =
        [ParkReason::Permanent, ParkReason::RetriesExhausted, ParkReason::Poison, ParkReason::MissingTopic];

    pub fn as_str(self) -> &'static str {
        match self {
            ParkReason::Permanent => "permanent",
            ParkReason::RetriesExhausted => "retries_exhausted",
            ParkReason::Poison => "poison",
            ParkReason::MissingTopic => "missing_topic",
        }
    }
}

impl fmt::Display for ParkReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What became of a parked message. Only `parked` ones can be redriven or discarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ParkedState {
    Parked,
    Redriven,
    Discarded,
}

impl ParkedState {
    pub fn as_str(self) -> &'static str {
        match self {
            ParkedState::Parked => "parked",
            ParkedState::Redriven => "redriven",
            ParkedState::Discarded => "discarded",
        }
    }
}

impl FromStr for ParkedState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "parked" => Ok(ParkedState::Parked),
            "redriven" => Ok(ParkedState::Redriven),
            "discarded" => Ok(ParkedState::Discarded),
            other => Err(format!("state must be parked, redriven or discarded, got {other:?}")),
        }
    }
}

impl fmt::Display for ParkedState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A message about to be parked.
#[derive(Debug, Clone)]
pub struct NewParkedMessage {
    /// The topic the message was first published to and would be redriven to.
    pub source_topic: String,
    pub dlq_topic: String,
    pub dlq_partition: i32,
    pub dlq_offset: i64,
    pub original_partition: Option<i32>,
    pub original_offset: Option<i64>,
    pub key: Option<Vec<u8>>,
    pub headers: Vec<Header>,
    /// The original message (a JSON retry wrapper is already removed, when it was readable).
    pub payload: Option<Vec<u8>>,
    pub reason: ParkReason,
    /// The kind of the last failure (`transient`, `permanent`), or `unknown`.
    pub error_kind: String,
    pub error_message: Option<String>,
    pub retry_count: u32,
    pub first_failure_at: Option<DateTime<Utc>>,
    pub last_failure_at: Option<DateTime<Utc>>,
    pub request_id: Option<Uuid>,
}

impl NewParkedMessage {
    /// Parks `delivery`, read from a dead-letter topic, that should have gone back to
    /// `source_topic`; `explanation` is the human-readable reason stored as the error message.
    pub fn from_dead_letter(delivery: &Delivery, source_topic: &str, reason: ParkReason, explanation: &str) -> Self {
        let retry = delivery.retry.as_ref();
        let record_time = delivery.timestamp_ms.and_then(DateTime::<Utc>::from_timestamp_millis);
        NewParkedMessage {
            source_topic: source_topic.to_owned(),
            dlq_topic: delivery.topic.clone(),
            dlq_partition: delivery.partition,
            dlq_offset: delivery.offset,
            original_partition: retry.and_then(|r| r.original_partition),
            original_offset: retry.and_then(|r| r.original_offset),
            key: delivery.key.clone(),
            headers: delivery.headers.clone(),
            payload: delivery.payload.clone(),
            reason,
            error_kind: retry.and_then(|r| r.error_kind).map_or("unknown", |k| k.as_str()).to_owned(),
            error_message: Some(retry_metadata::truncate(explanation, MAX_STORED_ERROR_BYTES)),
            retry_count: retry.map_or(0, |r| r.retry_count),
            first_failure_at: retry.and_then(|r| r.first_failure_at).or(record_time),
            last_failure_at: retry.and_then(|r| r.last_failure_at).or(record_time),
            request_id: delivery.header_str(REQUEST_ID_HEADER).and_then(|s| Uuid::parse_str(s.trim()).ok()),
        }
    }
}

/// One row of `parked_messages`, whole.
#[derive(Debug, Clone, PartialEq)]
pub struct ParkedMessage {
    pub id: u64,
    pub source_topic: String,
    pub dlq_topic: String,
    pub dlq_partition: i32,
    pub dlq_offset: i64,
    pub original_partition: Option<i32>,
    pub original_offset: Option<i64>,
    pub key: Option<Vec<u8>>,
    pub headers: Vec<Header>,
    pub payload: Option<Vec<u8>>,
    pub reason: String,
    pub error_kind: String,
    pub error_message: Option<String>,
    pub retry_count: u32,
    pub first_failure_at: Option<DateTime<Utc>>,
    pub last_failure_at: Option<DateTime<Utc>>,
    pub parked_at: DateTime<Utc>,
    pub state: ParkedState,
    pub request_id: Option<Uuid>,
}

impl ParkedMessage {
    /// The retry metadata a redriven copy carries: a fresh budget (count 0) and no delay, but
    /// the same origin and failure history, so `first_failure_at` still tells how old it is.
    pub fn redrive_metadata(&self) -> RetryMetadata {
        RetryMetadata {
            retry_count: 0,
            original_topic: Some(self.source_topic.clone()),
            original_partition: self.original_partition,
            original_offset: self.original_offset,
            first_failure_at: self.first_failure_at,
            last_failure_at: self.last_failure_at,
            error_kind: crate::message::FailureKind::parse(&self.error_kind),
            error_message: self
                .error_message
                .as_deref()
                .map(|m| retry_metadata::truncate(m, retry_metadata::MAX_ERROR_MESSAGE_BYTES)),
            not_before_ms: None,
            source: retry_metadata::MetadataSource::Headers,
        }
    }

    /// The record that puts this message back on its original topic: key, payload and foreign
    /// headers as parked, retry metadata replaced by [`ParkedMessage::redrive_metadata`].
    pub fn redrive_record(&self, format: MetadataFormat) -> crate::producer::OutboundRecord {
        let (payload, headers) =
            retry_metadata::encode(&self.headers, self.payload.as_deref(), &self.redrive_metadata(), format);
        crate::producer::OutboundRecord { topic: self.source_topic.clone(), key: self.key.clone(), payload, headers }
    }

    pub fn summary(&self) -> ParkedSummary {
        ParkedSummary {
            id: self.id,
            source_topic: self.source_topic.clone(),
            dlq_topic: self.dlq_topic.clone(),
            dlq_partition: self.dlq_partition,
            dlq_offset: self.dlq_offset,
            key: self.key.as_deref().map(readable),
            reason: self.reason.clone(),
            error_kind: self.error_kind.clone(),
            error_message: self.error_message.clone(),
            retry_count: self.retry_count,
            first_failure_at: self.first_failure_at,
            last_failure_at: self.last_failure_at,
            parked_at: self.parked_at,
            state: self.state,
            request_id: self.request_id,
        }
    }

    /// Everything, as JSON for an operator: bytes as text when they are UTF-8, else base64.
    pub fn to_json(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self.summary()).expect("summary serialises");
        let extra = serde_json::json!({
            "signature": self.signature(),
            "failed_by": self.failed_by(),
            "original_partition": self.original_partition,
            "original_offset": self.original_offset,
            "headers": serde_json::from_str::<serde_json::Value>(&super::headers_json::headers_to_json(&self.headers)).expect("valid"),
            "payload": self.payload.as_deref().map(readable),
        });
        if let (Some(map), serde_json::Value::Object(extra)) = (value.as_object_mut(), extra) {
            map.extend(extra);
        }
        value
    }
}

/// Bytes for display: the text when UTF-8, else `base64:` and the base64 encoding.
fn readable(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => format!("base64:{}", base64::engine::general_purpose::STANDARD.encode(bytes)),
    }
}

/// A parked message without its payload and headers, for listings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParkedSummary {
    pub id: u64,
    pub source_topic: String,
    pub dlq_topic: String,
    pub dlq_partition: i32,
    pub dlq_offset: i64,
    pub key: Option<String>,
    pub reason: String,
    pub error_kind: String,
    pub error_message: Option<String>,
    pub retry_count: u32,
    pub first_failure_at: Option<DateTime<Utc>>,
    pub last_failure_at: Option<DateTime<Utc>>,
    pub parked_at: DateTime<Utc>,
    pub state: ParkedState,
    pub request_id: Option<Uuid>,
}

/// Which parked messages to list (or redrive). Unset fields match everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParkedFilter {
    pub source_topic: Option<String>,
    pub error_kind: Option<String>,
    pub reason: Option<String>,
    /// Parked at or after.
    pub since: Option<DateTime<Utc>>,
    /// Parked before (with `since`, a time window: an hour of the console's chart, say).
    pub until: Option<DateTime<Utc>>,
    pub state: Option<ParkedState>,
    /// At most this many rows, oldest first; `None` means the store's default.
    pub limit: Option<u32>,
    /// The request the message belongs to (`x-request-id`).
    pub request_id: Option<Uuid>,
    /// The record key, as text.
    pub key: Option<String>,
    /// A failure signature (see [`super::signature`]); computed, so matched after the query.
    pub signature: Option<String>,
}

/// One operator action on a parked message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    pub id: u64,
    pub parked_message_id: u64,
    pub action: String,
    pub actor: String,
    pub reason: Option<String>,
    pub at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::retry_metadata::header;
    use crate::message::FailureKind;

    fn parked(headers: Vec<Header>, payload: &[u8]) -> ParkedMessage {
        ParkedMessage {
            id: 1,
            source_topic: "user-registrations".into(),
            dlq_topic: "user-registrations-dlq".into(),
            dlq_partition: 0,
            dlq_offset: 9,
            original_partition: Some(2),
            original_offset: Some(41),
            key: Some(b"a@example.com".to_vec()),
            headers,
            payload: Some(payload.to_vec()),
            reason: "retries_exhausted".into(),
            error_kind: "transient".into(),
            error_message: Some("db down; retry budget of 5 exhausted".into()),
            retry_count: 5,
            first_failure_at: Some(DateTime::from_timestamp_millis(1_000).unwrap()),
            last_failure_at: Some(DateTime::from_timestamp_millis(9_000).unwrap()),
            parked_at: DateTime::from_timestamp_millis(10_000).unwrap(),
            state: ParkedState::Parked,
            request_id: None,
        }
    }

    fn h(key: &str, value: &str) -> Header {
        Header { key: key.into(), value: Some(value.as_bytes().to_vec()) }
    }

    #[test]
    fn redrive_resets_the_count_but_keeps_origin_history_and_foreign_headers() {
        let p = parked(vec![h(header::RETRY_COUNT, "5"), h("traceparent", "00-abc")], br#"{"a":1}"#);
        let record = p.redrive_record(MetadataFormat::Headers);
        assert_eq!(record.topic, "user-registrations");
        assert_eq!(record.key.as_deref(), Some(&b"a@example.com"[..]));
        assert_eq!(record.payload.as_deref(), Some(&br#"{"a":1}"#[..]));
        let value = |k: &str| {
            let values: Vec<_> = record.headers.iter().filter(|x| x.key == k).collect();
            assert!(values.len() <= 1, "{k} must not be duplicated");
            values.first().and_then(|x| x.value.clone()).map(|v| String::from_utf8(v).unwrap())
        };
        assert_eq!(value(header::RETRY_COUNT).as_deref(), Some("0"));
        assert_eq!(value("traceparent").as_deref(), Some("00-abc"));
        assert_eq!(value(header::FIRST_FAILURE_AT).as_deref(), Some("1970-01-01T00:00:01.000Z"));
        assert_eq!(value(header::ORIGINAL_OFFSET).as_deref(), Some("41"));
        assert_eq!(value(header::NOT_BEFORE), None);
        assert_eq!(p.redrive_metadata().error_kind, Some(FailureKind::Transient));
    }

    #[test]
    fn redrive_in_wrapper_format_wraps_the_payload() {
        let p = parked(vec![], br#"{"a":1}"#);
        let record = p.redrive_record(MetadataFormat::Wrapper);
        let v: serde_json::Value = serde_json::from_slice(record.payload.as_deref().unwrap()).unwrap();
        assert_eq!(v["retryCount"], 0);
        assert_eq!(v["message"]["a"], 1);
    }

    #[test]
    fn json_view_shows_text_as_text_and_binary_as_base64() {
        let mut p = parked(vec![h("x-request-id", "r1")], b"\xff\x00");
        p.key = Some(b"k".to_vec());
        let v = p.to_json();
        assert_eq!(v["key"], "k");
        assert_eq!(v["payload"], "base64:/wA=");
        assert_eq!(v["headers"][0]["value"], "r1");
        assert_eq!(v["state"], "parked");
    }
}

//! The retry metadata a failed message carries between its topic and its dead-letter topic.
//!
//! Two wire formats, both read everywhere, one chosen for writing ([`MetadataFormat`]):
//!
//! * **Headers** (default): `x-retry-count`, `x-original-topic`, `x-original-partition`,
//!   `x-original-offset`, `x-first-failure-at`, `x-last-failure-at`, `x-error-kind`,
//!   `x-error-message`, `x-not-before`. Every hop *replaces* these; key, payload and all other
//!   headers travel unchanged.
//! * **Wrapper**: the article's `{"retryCount": n, "message": {...}}` JSON envelope with the
//!   same fields in camelCase, for brokers and tools without header support. A payload that is
//!   not JSON travels base64-encoded in `messageBase64` instead of `message`.
//!
//! For redriving the DLQs of mixed fleets, foreign formats are read too. Precedence, first
//! match wins: our `x-` headers; the wrapper; the article's reference implementation's headers
//! (`retryCount`, `originalTopic`: count and origin honoured); Spring Kafka's dead-letter
//! recoverer (`kafka_dlt-original-*`, count from `retry_topic-attempts`); Kafka Connect's error
//! reporter (`__connect.errors.*`). Once this system has re-sent a record its own headers
//! travel with it and win from then on.
//!
//! Foreign writers append their error headers on every hop (Connect: a stack trace of several
//! KB each time). What is carried forward is bounded: of each foreign error header only the
//! newest value is kept, cut to [`MAX_FOREIGN_ERROR_HEADER_BYTES`].

use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::delivery::{Delivery, Header};
use crate::outcome::{Failure, FailureKind};

/// Header names of the headers format. Lower-case, `x-` prefixed, stable: other teams' producers
/// and tools rely on them (see `docs/message-contract.md`).
pub mod header {
    pub const RETRY_COUNT: &str = "x-retry-count";
    pub const ORIGINAL_TOPIC: &str = "x-original-topic";
    pub const ORIGINAL_PARTITION: &str = "x-original-partition";
    pub const ORIGINAL_OFFSET: &str = "x-original-offset";
    pub const FIRST_FAILURE_AT: &str = "x-first-failure-at";
    pub const LAST_FAILURE_AT: &str = "x-last-failure-at";
    pub const ERROR_KIND: &str = "x-error-kind";
    pub const ERROR_MESSAGE: &str = "x-error-message";
    pub const NOT_BEFORE: &str = "x-not-before";

    /// Every header this module owns; all are replaced together on each hop.
    pub const ALL: [&str; 9] = [
        RETRY_COUNT,
        ORIGINAL_TOPIC,
        ORIGINAL_PARTITION,
        ORIGINAL_OFFSET,
        FIRST_FAILURE_AT,
        LAST_FAILURE_AT,
        ERROR_KIND,
        ERROR_MESSAGE,
        NOT_BEFORE,
    ];

    /// The article's reference implementation: plain-text headers.
    pub const ARTICLE_RETRY_COUNT: &str = "retryCount";
    pub const ARTICLE_ORIGINAL_TOPIC: &str = "originalTopic";

    /// Prefixes of the error headers foreign dead-letter writers append on every hop.
    pub(crate) const FOREIGN_ERROR_PREFIXES: [&str; 3] = ["__connect.errors.", "kafka_dlt-", "retry_topic-"];

    pub(crate) const SPRING_ORIGINAL_TOPIC: &str = "kafka_dlt-original-topic";
    pub(crate) const SPRING_ORIGINAL_PARTITION: &str = "kafka_dlt-original-partition";
    pub(crate) const SPRING_ORIGINAL_OFFSET: &str = "kafka_dlt-original-offset";
    pub(crate) const SPRING_EXCEPTION_MESSAGE: &str = "kafka_dlt-exception-message";
    pub(crate) const SPRING_EXCEPTION_CLASS: &str = "kafka_dlt-exception-fqcn";
    pub(crate) const SPRING_ATTEMPTS: &str = "retry_topic-attempts";
    pub(crate) const CONNECT_TOPIC: &str = "__connect.errors.topic";
    pub(crate) const CONNECT_PARTITION: &str = "__connect.errors.partition";
    pub(crate) const CONNECT_OFFSET: &str = "__connect.errors.offset";
    pub(crate) const CONNECT_EXCEPTION_MESSAGE: &str = "__connect.errors.exception.message";
    pub(crate) const CONNECT_EXCEPTION_CLASS: &str = "__connect.errors.exception.class.name";
}

/// Error messages are cut to this many bytes so a stack trace cannot bloat every hop.
pub const MAX_ERROR_MESSAGE_BYTES: usize = 1024;

/// Each foreign error header carried forward is cut to this many bytes.
pub const MAX_FOREIGN_ERROR_HEADER_BYTES: usize = 1024;

/// Which format a writer uses. Readers always understand both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MetadataFormat {
    #[default]
    Headers,
    Wrapper,
}

impl MetadataFormat {
    /// `RETRY_METADATA_FORMAT=headers|wrapper`, default headers.
    pub fn from_env() -> Result<Self, String> {
        match std::env::var("RETRY_METADATA_FORMAT").as_deref() {
            Err(_) | Ok("headers") => Ok(MetadataFormat::Headers),
            Ok("wrapper") => Ok(MetadataFormat::Wrapper),
            Ok(other) => Err(format!("RETRY_METADATA_FORMAT must be headers or wrapper, got {other:?}")),
        }
    }
}

/// Where the metadata of a record was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataSource {
    Headers,
    Wrapper,
    ArticleHeaders,
    SpringDeadLetter,
    KafkaConnect,
}

/// How a message failed so far.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryMetadata {
    /// How many times the message has been re-sent to its original topic.
    pub retry_count: u32,
    pub original_topic: Option<String>,
    pub original_partition: Option<i32>,
    pub original_offset: Option<i64>,
    pub first_failure_at: Option<DateTime<Utc>>,
    pub last_failure_at: Option<DateTime<Utc>>,
    pub error_kind: Option<FailureKind>,
    pub error_message: Option<String>,
    /// Epoch milliseconds before which the message must not be re-sent.
    pub not_before_ms: Option<i64>,
    pub source: MetadataSource,
}

/// Metadata that is present but unreadable: the record is poison and must be parked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unreadable retry metadata: {0}")]
pub struct MetadataError(pub String);

impl RetryMetadata {
    /// The metadata to write when `delivery` has just failed with `failure`: the retry count
    /// and origin carry over from earlier hops, the failure fields describe this one.
    pub fn after_failure(
        delivery: &Delivery,
        failure: &Failure,
        now: DateTime<Utc>,
        not_before: DateTime<Utc>,
    ) -> Self {
        let previous = delivery.retry.as_ref();
        RetryMetadata {
            retry_count: previous.map_or(0, |p| p.retry_count),
            original_topic: Some(
                previous.and_then(|p| p.original_topic.clone()).unwrap_or_else(|| delivery.topic.clone()),
            ),
            original_partition: Some(previous.and_then(|p| p.original_partition).unwrap_or(delivery.partition)),
            original_offset: Some(previous.and_then(|p| p.original_offset).unwrap_or(delivery.offset)),
            first_failure_at: Some(previous.and_then(|p| p.first_failure_at).unwrap_or(now)),
            last_failure_at: Some(now),
            error_kind: Some(failure.kind),
            error_message: Some(truncate(&failure.message, MAX_ERROR_MESSAGE_BYTES)),
            not_before_ms: Some(not_before.timestamp_millis()),
            source: MetadataSource::Headers,
        }
    }

    /// The metadata of the next attempt, as the DLQ worker sends it back to the original topic.
    pub fn next_attempt(&self) -> Self {
        RetryMetadata { retry_count: self.retry_count.saturating_add(1), not_before_ms: None, ..self.clone() }
    }

    fn header_values(&self) -> Vec<(&'static str, String)> {
        let mut values = vec![(header::RETRY_COUNT, self.retry_count.to_string())];
        let mut push = |name: &'static str, value: Option<String>| {
            if let Some(v) = value {
                values.push((name, v));
            }
        };
        push(header::ORIGINAL_TOPIC, self.original_topic.clone());
        push(header::ORIGINAL_PARTITION, self.original_partition.map(|p| p.to_string()));
        push(header::ORIGINAL_OFFSET, self.original_offset.map(|o| o.to_string()));
        push(header::FIRST_FAILURE_AT, self.first_failure_at.map(rfc3339));
        push(header::LAST_FAILURE_AT, self.last_failure_at.map(rfc3339));
        push(header::ERROR_KIND, self.error_kind.map(|k| k.as_str().to_owned()));
        push(header::ERROR_MESSAGE, self.error_message.clone());
        push(header::NOT_BEFORE, self.not_before_ms.map(|n| n.to_string()));
        values
    }
}

/// The record to produce for `delivery` carrying `metadata`, in `format`.
///
/// Key and every foreign header are preserved; our own headers are replaced, never appended,
/// so a message that went around five times still carries one `x-retry-count`.
pub fn encode(delivery: &Delivery, metadata: &RetryMetadata, format: MetadataFormat) -> (Option<Vec<u8>>, Vec<Header>) {
    let mut headers = bound_foreign_error_headers(
        delivery.headers.iter().filter(|h| !header::ALL.contains(&h.key.as_str())).cloned().collect(),
    );
    match format {
        MetadataFormat::Headers => {
            headers.extend(
                metadata
                    .header_values()
                    .into_iter()
                    .map(|(k, v)| Header { key: k.to_owned(), value: Some(v.into_bytes()) }),
            );
            (delivery.payload.clone(), headers)
        }
        MetadataFormat::Wrapper => (Some(wrap(delivery.payload.as_deref(), metadata)), headers),
    }
}

/// Keeps the newest value of each foreign error header, cut to
/// [`MAX_FOREIGN_ERROR_HEADER_BYTES`]; every other header passes unchanged, in order.
fn bound_foreign_error_headers(headers: Vec<Header>) -> Vec<Header> {
    let is_foreign_error = |key: &str| header::FOREIGN_ERROR_PREFIXES.iter().any(|p| key.starts_with(p));
    let newest: std::collections::HashMap<&str, usize> = headers
        .iter()
        .enumerate()
        .filter(|(_, h)| is_foreign_error(&h.key))
        .map(|(i, h)| (h.key.as_str(), i))
        .collect();
    let keep: Vec<bool> = headers
        .iter()
        .enumerate()
        .map(|(i, h)| !is_foreign_error(&h.key) || newest.get(h.key.as_str()) == Some(&i))
        .collect();
    headers
        .into_iter()
        .zip(keep)
        .filter(|(_, keep)| *keep)
        .map(|(mut h, _)| {
            if is_foreign_error(&h.key) {
                if let Some(value) = h.value.as_mut() {
                    cut_bytes(value, MAX_FOREIGN_ERROR_HEADER_BYTES);
                }
            }
            h
        })
        .collect()
}

/// Cuts `value` to at most `max` bytes, on a character boundary when it is UTF-8 text.
fn cut_bytes(value: &mut Vec<u8>, max: usize) {
    if value.len() <= max {
        return;
    }
    let mut end = max;
    if std::str::from_utf8(value).is_ok() {
        while end > 0 && (value[end] & 0b1100_0000) == 0b1000_0000 {
            end -= 1;
        }
    }
    value.truncate(end);
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wrapper<'a> {
    retry_count: i64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    original_topic: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    original_partition: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    original_offset: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    first_failure_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    last_failure_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    error_kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    error_message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    not_before: Option<i64>,
    #[serde(borrow, skip_serializing_if = "Option::is_none", default)]
    message: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    message_base64: Option<String>,
}

fn wrap(payload: Option<&[u8]>, m: &RetryMetadata) -> Vec<u8> {
    let text = payload.and_then(|p| std::str::from_utf8(p).ok());
    let raw: Option<&RawValue> = text.and_then(|t| serde_json::from_str(t).ok());
    let wrapper = Wrapper {
        retry_count: i64::from(m.retry_count),
        original_topic: m.original_topic.clone(),
        original_partition: m.original_partition,
        original_offset: m.original_offset,
        first_failure_at: m.first_failure_at.map(rfc3339),
        last_failure_at: m.last_failure_at.map(rfc3339),
        error_kind: m.error_kind.map(|k| k.as_str().to_owned()),
        error_message: m.error_message.clone(),
        not_before: m.not_before_ms,
        message: raw,
        message_base64: match (raw, payload) {
            (None, Some(bytes)) => Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
            _ => None,
        },
    };
    serde_json::to_vec(&wrapper).expect("wrapper serialises")
}

/// Decodes the retry metadata of `delivery` in place: unwraps a wrapper payload, and records
/// either the metadata or the reason it is unreadable.
pub(crate) fn attach(delivery: &mut Delivery) {
    match decode(delivery) {
        Ok(Some((metadata, unwrapped))) => {
            if let Some(payload) = unwrapped {
                delivery.payload = payload;
            }
            delivery.retry = Some(metadata);
        }
        Ok(None) => {}
        Err(e) => delivery.retry_metadata_error = Some(e),
    }
}

type Decoded = (RetryMetadata, Option<Option<Vec<u8>>>);

fn decode(d: &Delivery) -> Result<Option<Decoded>, MetadataError> {
    if d.headers.iter().any(|h| header::ALL.contains(&h.key.as_str())) {
        return from_our_headers(d).map(|m| Some((m, None)));
    }
    if let Some(decoded) = from_wrapper(d.payload.as_deref())? {
        return Ok(Some(decoded));
    }
    if d.header(header::ARTICLE_RETRY_COUNT).is_some() || d.header(header::ARTICLE_ORIGINAL_TOPIC).is_some() {
        return from_article_headers(d).map(|m| Some((m, None)));
    }
    if d.header(header::SPRING_ORIGINAL_TOPIC).is_some() {
        return from_spring_headers(d).map(|m| Some((m, None)));
    }
    if d.header(header::CONNECT_TOPIC).is_some() {
        return from_connect_headers(d).map(|m| Some((m, None)));
    }
    Ok(None)
}

fn text_header<'a>(d: &'a Delivery, name: &str) -> Result<Option<&'a str>, MetadataError> {
    match d.header(name) {
        None => Ok(None),
        Some(bytes) => std::str::from_utf8(bytes)
            .map(|s| Some(s.trim()))
            .map_err(|_| MetadataError(format!("header {name} is not UTF-8"))),
    }
}

fn parsed_header<T: std::str::FromStr>(d: &Delivery, name: &str) -> Result<Option<T>, MetadataError> {
    match text_header(d, name)? {
        None => Ok(None),
        Some(s) => {
            s.parse::<T>().map(Some).map_err(|_| MetadataError(format!("header {name} has invalid value {s:?}")))
        }
    }
}

fn time_header(d: &Delivery, name: &str) -> Result<Option<DateTime<Utc>>, MetadataError> {
    match text_header(d, name)? {
        None => Ok(None),
        Some(s) => parse_time(s).map(Some).map_err(|_| MetadataError(format!("header {name} is not RFC 3339: {s:?}"))),
    }
}

fn from_our_headers(d: &Delivery) -> Result<RetryMetadata, MetadataError> {
    let retry_count = match text_header(d, header::RETRY_COUNT)? {
        None => 0,
        Some(s) => parse_retry_count(s)?,
    };
    let error_kind = match text_header(d, header::ERROR_KIND)? {
        None => None,
        Some(s) => Some(
            FailureKind::parse(s)
                .ok_or_else(|| MetadataError(format!("header {} has unknown kind {s:?}", header::ERROR_KIND)))?,
        ),
    };
    Ok(RetryMetadata {
        retry_count,
        original_topic: non_empty(text_header(d, header::ORIGINAL_TOPIC)?),
        original_partition: parsed_header(d, header::ORIGINAL_PARTITION)?,
        original_offset: parsed_header(d, header::ORIGINAL_OFFSET)?,
        first_failure_at: time_header(d, header::FIRST_FAILURE_AT)?,
        last_failure_at: time_header(d, header::LAST_FAILURE_AT)?,
        error_kind,
        error_message: text_header(d, header::ERROR_MESSAGE)?.map(str::to_owned),
        not_before_ms: parsed_header(d, header::NOT_BEFORE)?,
        source: MetadataSource::Headers,
    })
}

fn parse_retry_count(s: &str) -> Result<u32, MetadataError> {
    match s.parse::<i64>() {
        Ok(n) if n < 0 => Err(MetadataError(format!("negative retry count {n}"))),
        Ok(n) => u32::try_from(n).map_err(|_| MetadataError(format!("retry count {n} out of range"))),
        Err(_) => Err(MetadataError(format!("retry count {s:?} is not a number"))),
    }
}

fn from_wrapper(payload: Option<&[u8]>) -> Result<Option<Decoded>, MetadataError> {
    // Only a JSON object with a top-level `retryCount` is a wrapper; anything else is the
    // plain message of a first attempt.
    let Some(text) = payload.and_then(|p| std::str::from_utf8(p).ok()) else { return Ok(None) };
    if !text.trim_start().starts_with('{') || !text.contains("\"retryCount\"") {
        return Ok(None);
    }
    let Ok(probe) = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text) else { return Ok(None) };
    if !probe.contains_key("retryCount") {
        return Ok(None);
    }
    let w: Wrapper<'_> =
        serde_json::from_str(text).map_err(|e| MetadataError(format!("retry wrapper is malformed: {e}")))?;
    if w.retry_count < 0 {
        return Err(MetadataError(format!("negative retry count {}", w.retry_count)));
    }
    let retry_count = u32::try_from(w.retry_count)
        .map_err(|_| MetadataError(format!("retry count {} out of range", w.retry_count)))?;
    let inner = match (w.message, &w.message_base64) {
        (Some(raw), _) => Some(raw.get().as_bytes().to_vec()),
        (None, Some(b64)) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|_| MetadataError("retry wrapper messageBase64 is not base64".into()))?,
        ),
        (None, None) => return Err(MetadataError("retry wrapper has no message".into())),
    };
    let time = |v: &Option<String>, field: &str| -> Result<Option<DateTime<Utc>>, MetadataError> {
        v.as_deref()
            .map(|s| parse_time(s).map_err(|_| MetadataError(format!("retry wrapper {field} is not RFC 3339"))))
            .transpose()
    };
    let metadata = RetryMetadata {
        retry_count,
        original_topic: non_empty(w.original_topic.as_deref()),
        original_partition: w.original_partition,
        original_offset: w.original_offset,
        first_failure_at: time(&w.first_failure_at, "firstFailureAt")?,
        last_failure_at: time(&w.last_failure_at, "lastFailureAt")?,
        error_kind: match w.error_kind.as_deref() {
            None => None,
            Some(k) => Some(
                FailureKind::parse(k)
                    .ok_or_else(|| MetadataError(format!("retry wrapper errorKind {k:?} is unknown")))?,
            ),
        },
        error_message: w.error_message,
        not_before_ms: w.not_before,
        source: MetadataSource::Wrapper,
    };
    Ok(Some((metadata, Some(inner))))
}

/// The article's reference implementation: `retryCount` (decimal) and `originalTopic`
/// headers. Both are honoured; a record with only one of them still counts.
fn from_article_headers(d: &Delivery) -> Result<RetryMetadata, MetadataError> {
    let retry_count = match text_header(d, header::ARTICLE_RETRY_COUNT)? {
        None => 0,
        Some(s) => parse_retry_count(s)?,
    };
    Ok(RetryMetadata {
        retry_count,
        original_topic: non_empty(text_header(d, header::ARTICLE_ORIGINAL_TOPIC)?),
        original_partition: None,
        original_offset: None,
        first_failure_at: None,
        last_failure_at: None,
        error_kind: None,
        error_message: None,
        not_before_ms: None,
        source: MetadataSource::ArticleHeaders,
    })
}

/// Spring Kafka writes partition and offset as big-endian binary integers.
fn be_int(d: &Delivery, name: &str) -> Result<Option<i64>, MetadataError> {
    match d.header(name) {
        None => Ok(None),
        Some(b) if b.len() == 4 => Ok(Some(i64::from(i32::from_be_bytes(b.try_into().expect("4 bytes"))))),
        Some(b) if b.len() == 8 => Ok(Some(i64::from_be_bytes(b.try_into().expect("8 bytes")))),
        Some(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .map(Some)
            .ok_or_else(|| MetadataError(format!("header {name} is neither a binary nor a decimal integer"))),
    }
}

fn from_spring_headers(d: &Delivery) -> Result<RetryMetadata, MetadataError> {
    let attempts = be_int(d, header::SPRING_ATTEMPTS)?.unwrap_or(0);
    Ok(RetryMetadata {
        retry_count: u32::try_from(attempts.max(0)).unwrap_or(u32::MAX),
        original_topic: non_empty(text_header(d, header::SPRING_ORIGINAL_TOPIC)?),
        original_partition: be_int(d, header::SPRING_ORIGINAL_PARTITION)?.and_then(|p| i32::try_from(p).ok()),
        original_offset: be_int(d, header::SPRING_ORIGINAL_OFFSET)?,
        first_failure_at: None,
        last_failure_at: None,
        error_kind: None,
        error_message: exception_text(
            text_header(d, header::SPRING_EXCEPTION_CLASS)?,
            text_header(d, header::SPRING_EXCEPTION_MESSAGE)?,
        ),
        not_before_ms: None,
        source: MetadataSource::SpringDeadLetter,
    })
}

fn from_connect_headers(d: &Delivery) -> Result<RetryMetadata, MetadataError> {
    Ok(RetryMetadata {
        retry_count: 0,
        original_topic: non_empty(text_header(d, header::CONNECT_TOPIC)?),
        original_partition: parsed_header(d, header::CONNECT_PARTITION)?,
        original_offset: parsed_header(d, header::CONNECT_OFFSET)?,
        first_failure_at: None,
        last_failure_at: None,
        error_kind: None,
        error_message: exception_text(
            text_header(d, header::CONNECT_EXCEPTION_CLASS)?,
            text_header(d, header::CONNECT_EXCEPTION_MESSAGE)?,
        ),
        not_before_ms: None,
        source: MetadataSource::KafkaConnect,
    })
}

fn exception_text(class: Option<&str>, message: Option<&str>) -> Option<String> {
    match (class, message) {
        (Some(c), Some(m)) => Some(truncate(&format!("{c}: {m}"), MAX_ERROR_MESSAGE_BYTES)),
        (None, Some(m)) => Some(truncate(m, MAX_ERROR_MESSAGE_BYTES)),
        (Some(c), None) => Some(c.to_owned()),
        (None, None) => None,
    }
}

fn non_empty(s: Option<&str>) -> Option<String> {
    s.filter(|s| !s.is_empty()).map(str::to_owned)
}

pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc))
}

/// Cuts `s` to at most `max` bytes on a character boundary.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(payload: &[u8], headers: Vec<(&str, &[u8])>) -> Delivery {
        let mut d = Delivery {
            topic: "user-registrations".into(),
            partition: 2,
            offset: 41,
            key: Some(b"a@example.com".to_vec()),
            payload: Some(payload.to_vec()),
            headers: headers.into_iter().map(|(k, v)| Header { key: k.into(), value: Some(v.to_vec()) }).collect(),
            timestamp_ms: None,
            retry: None,
            retry_metadata_error: None,
        };
        attach(&mut d);
        d
    }

    fn failure(kind: FailureKind) -> Failure {
        Failure { kind, message: "database unreachable".into() }
    }

    fn hop(d: &Delivery, format: MetadataFormat, topic: &str, offset: i64) -> Delivery {
        let now = Utc::now();
        let meta = RetryMetadata::after_failure(d, &failure(FailureKind::Transient), now, now);
        let (payload, headers) = encode(d, &meta, format);
        let mut next = Delivery { topic: topic.into(), offset, payload, headers, retry: None, ..d.clone() };
        attach(&mut next);
        next
    }

    #[test]
    fn first_failure_records_origin_and_preserves_foreign_headers() {
        let d = delivery(br#"{"a":1}"#, vec![("traceparent", b"00-abc")]);
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
        let mut d = delivery(br#"{"a":1}"#, vec![]);
        for round in 0..5u32 {
            let dlq = hop(&d, MetadataFormat::Headers, "user-registrations-dlq", 100 + i64::from(round));
            let next = dlq.retry.as_ref().unwrap().next_attempt();
            let (payload, headers) = encode(&dlq, &next, MetadataFormat::Headers);
            d = Delivery { topic: "user-registrations".into(), offset: 500, payload, headers, retry: None, ..dlq };
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
        let d = delivery(original, vec![]);
        let dlq = hop(&d, MetadataFormat::Wrapper, "user-registrations-dlq", 3);
        assert_eq!(dlq.payload.as_deref(), Some(&original[..]), "handler sees the unwrapped message");
        let m = dlq.retry.as_ref().unwrap();
        assert_eq!(m.source, MetadataSource::Wrapper);
        assert_eq!(m.original_topic.as_deref(), Some("user-registrations"));
    }

    #[test]
    fn wrapper_carries_non_json_payload_as_base64() {
        let d = delivery(b"\xff not json", vec![]);
        let dlq = hop(&d, MetadataFormat::Wrapper, "t-dlq", 0);
        assert_eq!(dlq.payload.as_deref(), Some(&b"\xff not json"[..]));
    }

    #[test]
    fn article_wrapper_without_origin_is_understood() {
        let d = delivery(br#"{"retryCount": 2, "message": {"data": "..."}}"#, vec![]);
        assert_eq!(d.retry_count(), 2);
        assert_eq!(d.payload.as_deref(), Some(&br#"{"data": "..."}"#[..]));
    }

    #[test]
    fn garbage_and_negative_retry_counts_are_errors() {
        for bad in [&b"-1"[..], b"abc", b"99999999999"] {
            let d = delivery(b"{}", vec![(header::RETRY_COUNT, bad)]);
            assert!(d.retry_metadata_error.is_some(), "{:?} should be rejected", String::from_utf8_lossy(bad));
        }
        let d = delivery(br#"{"retryCount": -3, "message": {}}"#, vec![]);
        assert!(d.retry_metadata_error.as_ref().unwrap().0.contains("negative"));
    }

    #[test]
    fn spring_dead_letter_headers_give_the_origin() {
        let d = delivery(
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
        let d = delivery(
            b"{}",
            vec![
                (header::CONNECT_TOPIC, b"payments"),
                (header::CONNECT_PARTITION, b"1"),
                (header::CONNECT_OFFSET, b"9"),
            ],
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
        let d = delivery(
            b"{}",
            vec![(header::ARTICLE_ORIGINAL_TOPIC, b"user-registrations"), (header::ARTICLE_RETRY_COUNT, b"2")],
        );
        let m = d.retry.as_ref().unwrap();
        assert_eq!(m.source, MetadataSource::ArticleHeaders);
        assert_eq!((m.retry_count, m.original_topic.as_deref()), (2, Some("user-registrations")));
        // The next re-send counts on from 2, and from then on our headers travel and win.
        let next = m.next_attempt();
        let (_, headers) = encode(&d, &next, MetadataFormat::Headers);
        let mut resent = Delivery { headers, retry: None, ..d.clone() };
        attach(&mut resent);
        assert_eq!(resent.retry_count(), 3);
        assert_eq!(resent.retry.unwrap().source, MetadataSource::Headers);
        // An origin other than the DLQ's name is honoured.
        let elsewhere = delivery(b"{}", vec![(header::ARTICLE_ORIGINAL_TOPIC, b"orders")]);
        assert_eq!(elsewhere.retry.as_ref().unwrap().original_topic.as_deref(), Some("orders"));
        assert_eq!(elsewhere.retry_count(), 0);
        let garbage = delivery(b"{}", vec![(header::ARTICLE_RETRY_COUNT, b"two")]);
        assert!(garbage.retry_metadata_error.is_some(), "an unreadable count is poison, not zero");
    }

    #[test]
    fn our_headers_win_over_the_articles() {
        let d = delivery(b"{}", vec![(header::ARTICLE_RETRY_COUNT, b"1"), (header::RETRY_COUNT, b"4")]);
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
        let d = delivery(b"{}", as_refs);
        let before: usize = d.headers.iter().map(|h| h.key.len() + h.value.as_ref().map_or(0, Vec::len)).sum();
        let meta = d.retry.as_ref().unwrap().next_attempt();
        let (_, out) = encode(&d, &meta, MetadataFormat::Headers);
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
}

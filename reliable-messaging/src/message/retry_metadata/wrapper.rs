//! The wrapper format: the article's `{"retryCount": n, "message": {...}}` JSON envelope with
//! the same fields in camelCase, for brokers and tools without header support. A payload that
//! is not JSON travels base64-encoded in `messageBase64` instead of `message`.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::metadata::{Decoded, MetadataError, MetadataSource, RetryMetadata};
use super::text::{non_empty, parse_time, rfc3339};
use crate::message::FailureKind;

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

/// `payload` wrapped with `m`.
pub(super) fn wrap(payload: Option<&[u8]>, m: &RetryMetadata) -> Vec<u8> {
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

/// Reads a wrapper payload: the metadata and the unwrapped message; `None` when the payload
/// is not a wrapper.
pub(super) fn from_wrapper(payload: Option<&[u8]>) -> Result<Option<Decoded>, MetadataError> {
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

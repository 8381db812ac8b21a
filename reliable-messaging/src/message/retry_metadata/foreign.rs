//! Foreign dead-letter formats, read for redriving the DLQs of mixed fleets: the article's
//! reference implementation (`retryCount`, `originalTopic`), Spring Kafka's dead-letter
//! recoverer (`kafka_dlt-original-*`, `retry_topic-attempts`) and Kafka Connect's error
//! reporter (`__connect.errors.*`).
//!
//! Foreign writers append their error headers on every hop (Connect: a stack trace of several
//! KB each time). What is carried forward is bounded: of each foreign error header only the
//! newest value is kept, cut to [`MAX_FOREIGN_ERROR_HEADER_BYTES`].

use super::header;
use super::metadata::{MetadataError, MetadataSource, RetryMetadata};
use super::text::{non_empty, truncate, MAX_ERROR_MESSAGE_BYTES};
use super::values::{parse_retry_count, parsed_header, text_header};
use crate::message::header::{first_value, Header};

/// Each foreign error header carried forward is cut to this many bytes.
pub const MAX_FOREIGN_ERROR_HEADER_BYTES: usize = 1024;

/// Keeps the newest value of each foreign error header, cut to
/// [`MAX_FOREIGN_ERROR_HEADER_BYTES`]; every other header passes unchanged, in order.
pub(super) fn bound_foreign_error_headers(headers: Vec<Header>) -> Vec<Header> {
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

/// The article's reference implementation: `retryCount` (decimal) and `originalTopic`
/// headers. Both are honoured; a record with only one of them still counts.
pub(super) fn from_article_headers(headers: &[Header]) -> Result<RetryMetadata, MetadataError> {
    let retry_count = match text_header(headers, header::ARTICLE_RETRY_COUNT)? {
        None => 0,
        Some(s) => parse_retry_count(s)?,
    };
    Ok(RetryMetadata {
        retry_count,
        original_topic: non_empty(text_header(headers, header::ARTICLE_ORIGINAL_TOPIC)?),
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
fn be_int(headers: &[Header], name: &str) -> Result<Option<i64>, MetadataError> {
    match first_value(headers, name) {
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

pub(super) fn from_spring_headers(headers: &[Header]) -> Result<RetryMetadata, MetadataError> {
    let attempts = be_int(headers, header::SPRING_ATTEMPTS)?.unwrap_or(0);
    Ok(RetryMetadata {
        retry_count: u32::try_from(attempts.max(0)).unwrap_or(u32::MAX),
        original_topic: non_empty(text_header(headers, header::SPRING_ORIGINAL_TOPIC)?),
        original_partition: be_int(headers, header::SPRING_ORIGINAL_PARTITION)?.and_then(|p| i32::try_from(p).ok()),
        original_offset: be_int(headers, header::SPRING_ORIGINAL_OFFSET)?,
        first_failure_at: None,
        last_failure_at: None,
        error_kind: None,
        error_message: exception_text(
            text_header(headers, header::SPRING_EXCEPTION_CLASS)?,
            text_header(headers, header::SPRING_EXCEPTION_MESSAGE)?,
        ),
        not_before_ms: None,
        source: MetadataSource::SpringDeadLetter,
    })
}

pub(super) fn from_connect_headers(headers: &[Header]) -> Result<RetryMetadata, MetadataError> {
    Ok(RetryMetadata {
        retry_count: 0,
        original_topic: non_empty(text_header(headers, header::CONNECT_TOPIC)?),
        original_partition: parsed_header(headers, header::CONNECT_PARTITION)?,
        original_offset: parsed_header(headers, header::CONNECT_OFFSET)?,
        first_failure_at: None,
        last_failure_at: None,
        error_kind: None,
        error_message: exception_text(
            text_header(headers, header::CONNECT_EXCEPTION_CLASS)?,
            text_header(headers, header::CONNECT_EXCEPTION_MESSAGE)?,
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

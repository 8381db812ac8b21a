//! The headers format (the default): `x-retry-count`, `x-original-*`, `x-*-failure-at`,
//! `x-error-*`, `x-not-before`. Every hop replaces these; key, payload and all other headers
//! travel unchanged.

use super::header;
use super::metadata::{MetadataError, MetadataSource, RetryMetadata};
use super::text::{non_empty, rfc3339};
use super::values::{parse_retry_count, parsed_header, text_header, time_header};
use crate::message::header::Header;
use crate::message::FailureKind;

/// The headers that carry `m`, in the order they are written.
pub(super) fn header_values(m: &RetryMetadata) -> Vec<(&'static str, String)> {
    let mut values = vec![(header::RETRY_COUNT, m.retry_count.to_string())];
    let mut push = |name: &'static str, value: Option<String>| {
        if let Some(v) = value {
            values.push((name, v));
        }
    };
    push(header::ORIGINAL_TOPIC, m.original_topic.clone());
    push(header::ORIGINAL_PARTITION, m.original_partition.map(|p| p.to_string()));
    push(header::ORIGINAL_OFFSET, m.original_offset.map(|o| o.to_string()));
    push(header::FIRST_FAILURE_AT, m.first_failure_at.map(rfc3339));
    push(header::LAST_FAILURE_AT, m.last_failure_at.map(rfc3339));
    push(header::ERROR_KIND, m.error_kind.map(|k| k.as_str().to_owned()));
    push(header::ERROR_MESSAGE, m.error_message.clone());
    push(header::NOT_BEFORE, m.not_before_ms.map(|n| n.to_string()));
    values
}

/// Reads the headers format.
pub(super) fn from_our_headers(headers: &[Header]) -> Result<RetryMetadata, MetadataError> {
    let retry_count = match text_header(headers, header::RETRY_COUNT)? {
        None => 0,
        Some(s) => parse_retry_count(s)?,
    };
    let error_kind = match text_header(headers, header::ERROR_KIND)? {
        None => None,
        Some(s) => Some(
            FailureKind::parse(s)
                .ok_or_else(|| MetadataError(format!("header {} has unknown kind {s:?}", header::ERROR_KIND)))?,
        ),
    };
    Ok(RetryMetadata {
        retry_count,
        original_topic: non_empty(text_header(headers, header::ORIGINAL_TOPIC)?),
        original_partition: parsed_header(headers, header::ORIGINAL_PARTITION)?,
        original_offset: parsed_header(headers, header::ORIGINAL_OFFSET)?,
        first_failure_at: time_header(headers, header::FIRST_FAILURE_AT)?,
        last_failure_at: time_header(headers, header::LAST_FAILURE_AT)?,
        error_kind,
        error_message: text_header(headers, header::ERROR_MESSAGE)?.map(str::to_owned),
        not_before_ms: parsed_header(headers, header::NOT_BEFORE)?,
        source: MetadataSource::Headers,
    })
}

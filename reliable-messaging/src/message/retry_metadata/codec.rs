//! Writing and reading retry metadata on a record's headers and payload: [`encode`] in the
//! chosen format, [`decode`] whatever format a record carries, by precedence.

use super::foreign::{bound_foreign_error_headers, from_article_headers, from_connect_headers, from_spring_headers};
use super::header;
use super::metadata::{Decoded, MetadataError, MetadataFormat, RetryMetadata};
use super::our_headers::{from_our_headers, header_values};
use super::wrapper::{from_wrapper, wrap};
use crate::message::header::{first_value, Header};

/// The payload and headers to produce for a record with `headers` and `payload` (as consumed)
/// carrying `metadata`, in `format`.
///
/// Key and every foreign header are preserved; our own headers are replaced, never appended,
/// so a message that went around five times still carries one `x-retry-count`.
pub fn encode(
    headers: &[Header],
    payload: Option<&[u8]>,
    metadata: &RetryMetadata,
    format: MetadataFormat,
) -> (Option<Vec<u8>>, Vec<Header>) {
    let mut headers = bound_foreign_error_headers(
        headers.iter().filter(|h| !header::ALL.contains(&h.key.as_str())).cloned().collect(),
    );
    match format {
        MetadataFormat::Headers => {
            headers.extend(
                header_values(metadata)
                    .into_iter()
                    .map(|(k, v)| Header { key: k.to_owned(), value: Some(v.into_bytes()) }),
            );
            (payload.map(<[u8]>::to_vec), headers)
        }
        MetadataFormat::Wrapper => (Some(wrap(payload, metadata)), headers),
    }
}

/// The retry metadata a record with `headers` and `payload` carries, if any, first match
/// wins: our `x-` headers; the wrapper; the article's headers; Spring's; Connect's. `Err` when
/// it carries metadata that cannot be read (the record is poison).
pub(crate) fn decode(headers: &[Header], payload: Option<&[u8]>) -> Result<Option<Decoded>, MetadataError> {
    if headers.iter().any(|h| header::ALL.contains(&h.key.as_str())) {
        return from_our_headers(headers).map(|m| Some((m, None)));
    }
    if let Some(decoded) = from_wrapper(payload)? {
        return Ok(Some(decoded));
    }
    let has = |name: &str| first_value(headers, name).is_some();
    if has(header::ARTICLE_RETRY_COUNT) || has(header::ARTICLE_ORIGINAL_TOPIC) {
        return from_article_headers(headers).map(|m| Some((m, None)));
    }
    if has(header::SPRING_ORIGINAL_TOPIC) {
        return from_spring_headers(headers).map(|m| Some((m, None)));
    }
    if has(header::CONNECT_TOPIC) {
        return from_connect_headers(headers).map(|m| Some((m, None)));
    }
    Ok(None)
}

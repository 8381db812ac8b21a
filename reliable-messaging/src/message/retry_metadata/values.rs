//! Reading single header values (text, numbers, times, retry counts), with the error that
//! makes a record poison when one is unreadable. Shared by the header formats.

use chrono::{DateTime, Utc};

use super::metadata::MetadataError;
use super::text::parse_time;
use crate::message::header::{first_value, Header};

pub(super) fn text_header<'a>(headers: &'a [Header], name: &str) -> Result<Option<&'a str>, MetadataError> {
    match first_value(headers, name) {
        None => Ok(None),
        Some(bytes) => std::str::from_utf8(bytes)
            .map(|s| Some(s.trim()))
            .map_err(|_| MetadataError(format!("header {name} is not UTF-8"))),
    }
}

pub(super) fn parsed_header<T: std::str::FromStr>(headers: &[Header], name: &str) -> Result<Option<T>, MetadataError> {
    match text_header(headers, name)? {
        None => Ok(None),
        Some(s) => {
            s.parse::<T>().map(Some).map_err(|_| MetadataError(format!("header {name} has invalid value {s:?}")))
        }
    }
}

pub(super) fn time_header(headers: &[Header], name: &str) -> Result<Option<DateTime<Utc>>, MetadataError> {
    match text_header(headers, name)? {
        None => Ok(None),
        Some(s) => parse_time(s).map(Some).map_err(|_| MetadataError(format!("header {name} is not RFC 3339: {s:?}"))),
    }
}

pub(super) fn parse_retry_count(s: &str) -> Result<u32, MetadataError> {
    match s.parse::<i64>() {
        Ok(n) if n < 0 => Err(MetadataError(format!("negative retry count {n}"))),
        Ok(n) => u32::try_from(n).map_err(|_| MetadataError(format!("retry count {n} out of range"))),
        Err(_) => Err(MetadataError(format!("retry count {s:?} is not a number"))),
    }
}

//! Text and times as the formats write them: error text cut to a bound, RFC 3339 times.
//! Depends on nothing else here, so every other part can use it.

use chrono::{DateTime, SecondsFormat, Utc};

/// Error messages are cut to this many bytes so a stack trace cannot bloat every hop.
pub const MAX_ERROR_MESSAGE_BYTES: usize = 1024;

pub(super) fn non_empty(s: Option<&str>) -> Option<String> {
    s.filter(|s| !s.is_empty()).map(str::to_owned)
}

pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub(super) fn parse_time(s: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
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

//! Failure signatures: parked messages grouped by what failed them, so an operator sees "312
//! messages, one cause" instead of 312 rows.
//!
//! A signature is the source topic, the error kind and the error message with everything that
//! differs between messages of one cause folded into placeholders: UUIDs, timestamps, e-mail
//! addresses, long hex strings and numbers. Its id is a stable 64-bit FNV-1a hash of the three,
//! in hex, so the same cause has the same id in the API, the CLI and the console, across
//! restarts and builds.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::message::ParkedMessage;
use crate::dead_letter::FAILED_BY_HEADER;

/// One cause of parked messages, with how many it failed and when.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SignatureGroup {
    pub signature: String,
    pub source_topic: String,
    pub error_kind: String,
    /// The error message with ids, numbers and times folded (`<uuid>`, `<n>`, `<time>`, ...).
    pub pattern: String,
    /// One message as it was, for a reader who wants the unfolded text.
    pub example: Option<String>,
    pub count: u64,
    /// Earliest first failure (or parking time) and latest parking in the group.
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// The builds that dead-lettered them (`x-failed-by`), most frequent first; empty when the
    /// writers did not say.
    pub failed_by: Vec<String>,
    /// The park reasons seen (`retries_exhausted`, `permanent`, ...).
    pub reasons: Vec<String>,
    pub ids: Vec<u64>,
}

/// The signature id of a message: the same for every message of one cause.
pub fn signature_of(source_topic: &str, error_kind: &str, error_message: Option<&str>) -> String {
    let pattern = normalise(error_message.unwrap_or(""));
    format!("{:016x}", fnv1a(&[source_topic, error_kind, &pattern]))
}

impl ParkedMessage {
    pub fn signature(&self) -> String {
        signature_of(&self.source_topic, &self.error_kind, self.error_message.as_deref())
    }

    /// The build that dead-lettered this message, when its writer said.
    pub fn failed_by(&self) -> Option<String> {
        self.headers
            .iter()
            .rev()
            .find(|h| h.key == FAILED_BY_HEADER)
            .and_then(|h| h.value.as_deref())
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }
}

/// Groups `messages` by signature, largest group first (then most recent).
pub fn group(messages: &[ParkedMessage]) -> Vec<SignatureGroup> {
    let mut groups: BTreeMap<String, (SignatureGroup, BTreeMap<String, u64>)> = BTreeMap::new();
    for m in messages {
        let first = m.first_failure_at.unwrap_or(m.parked_at).min(m.parked_at);
        let (g, writers) = groups.entry(m.signature()).or_insert_with(|| {
            let group = SignatureGroup {
                signature: m.signature(),
                source_topic: m.source_topic.clone(),
                error_kind: m.error_kind.clone(),
                pattern: normalise(m.error_message.as_deref().unwrap_or("")),
                example: m.error_message.clone(),
                count: 0,
                first_seen: first,
                last_seen: m.parked_at,
                failed_by: Vec::new(),
                reasons: Vec::new(),
                ids: Vec::new(),
            };
            (group, BTreeMap::new())
        });
        g.count += 1;
        g.first_seen = g.first_seen.min(first);
        g.last_seen = g.last_seen.max(m.parked_at);
        if !g.reasons.contains(&m.reason) {
            g.reasons.push(m.reason.clone());
        }
        g.ids.push(m.id);
        if let Some(writer) = m.failed_by() {
            *writers.entry(writer).or_default() += 1;
        }
    }
    let mut out: Vec<SignatureGroup> = groups
        .into_values()
        .map(|(mut g, writers)| {
            let mut writers: Vec<(String, u64)> = writers.into_iter().collect();
            writers.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            g.failed_by = writers.into_iter().map(|(w, _)| w).collect();
            g
        })
        .collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| b.last_seen.cmp(&a.last_seen)));
    out
}

/// Folds what varies between messages of one cause: UUIDs to `<uuid>`, RFC 3339 / SQL times to
/// `<time>`, e-mail addresses to `<email>`, hex runs of 12 or more to `<hex>`, other digit runs
/// (with a decimal part) to `<n>`; runs of whitespace to one space.
pub fn normalise(message: &str) -> String {
    let chars: Vec<char> = message.chars().collect();
    let mut out = String::with_capacity(message.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if let Some(len) = uuid_at(&chars[i..]) {
            out.push_str("<uuid>");
            i += len;
        } else if let Some(len) = time_at(&chars[i..]) {
            out.push_str("<time>");
            i += len;
        } else if let Some(len) = email_at(&chars, i) {
            out.push_str("<email>");
            i += len;
        } else if let Some(len) = hex_at(&chars[i..]) {
            out.push_str("<hex>");
            i += len;
        } else if c.is_ascii_digit() && !chars.get(i.wrapping_sub(1)).is_some_and(|p| p.is_alphanumeric()) {
            let mut j = i;
            while j < chars.len()
                && (chars[j].is_ascii_digit()
                    || (chars[j] == '.' && chars.get(j + 1).is_some_and(char::is_ascii_digit)))
            {
                j += 1;
            }
            out.push_str("<n>");
            i = j;
        } else if c.is_whitespace() {
            if !out.ends_with(' ') {
                out.push(' ');
            }
            i += 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out.trim().to_owned()
}

fn uuid_at(s: &[char]) -> Option<usize> {
    const GROUPS: [usize; 5] = [8, 4, 4, 4, 12];
    let mut i = 0;
    for (n, len) in GROUPS.iter().enumerate() {
        if n > 0 {
            (s.get(i) == Some(&'-')).then_some(())?;
            i += 1;
        }
        for _ in 0..*len {
            s.get(i).filter(|c| c.is_ascii_hexdigit())?;
            i += 1;
        }
    }
    (!s.get(i).is_some_and(|c| c.is_ascii_alphanumeric())).then_some(i)
}

/// `2026-12-07T09:16:52.123Z`, `2026-12-07 09:16:52`, with an optional offset.
fn time_at(s: &[char]) -> Option<usize> {
    let shape = "dddd-dd-dd?dd:dd:dd";
    for (i, p) in shape.chars().enumerate() {
        let c = *s.get(i)?;
        let ok = match p {
            'd' => c.is_ascii_digit(),
            '?' => c == 'T' || c == ' ',
            other => c == other,
        };
        ok.then_some(())?;
    }
    let mut i = shape.len();
    if s.get(i) == Some(&'.') {
        i += 1;
        while s.get(i).is_some_and(char::is_ascii_digit) {
            i += 1;
        }
    }
    match s.get(i) {
        Some('Z') => i += 1,
        Some('+' | '-') if s.get(i + 1).is_some_and(char::is_ascii_digit) => {
            i += 1;
            while s.get(i).is_some_and(|c| c.is_ascii_digit() || *c == ':') {
                i += 1;
            }
        }
        _ => {}
    }
    Some(i)
}

fn is_email_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '.' | '_' | '%' | '+' | '-')
}

/// An e-mail address starting at `i` (at a word start): local part, `@`, a dotted domain.
fn email_at(chars: &[char], i: usize) -> Option<usize> {
    (i == 0 || !is_email_char(chars[i - 1])).then_some(())?;
    let len = chars[i..].iter().take_while(|c| is_email_char(**c) || **c == '@').count();
    let word: String = chars[i..i + len].iter().collect();
    let word = word.trim_end_matches('.');
    let (local, domain) = word.split_once('@')?;
    (!local.is_empty() && !domain.contains('@') && domain.contains('.')).then_some(word.chars().count())
}

fn hex_at(s: &[char]) -> Option<usize> {
    let len = s.iter().take_while(|c| c.is_ascii_hexdigit()).count();
    let has_digit = s[..len].iter().any(char::is_ascii_digit);
    (len >= 12 && has_digit && !s.get(len).is_some_and(|c| c.is_alphanumeric())).then_some(len)
}

fn fnv1a(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        // A separator no message contains, so ("ab", "c") and ("a", "bc") differ.
        for byte in part.bytes().chain(std::iter::once(0xff)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_numbers_times_and_addresses_fold() {
        assert_eq!(
            normalise("user 42 (a@example.com) request 0c3f2a1e-9b8d-4c7e-a6f5-1d2e3f4a5b6c failed at 2026-12-07T09:16:52.123Z"),
            "user <n> (<email>) request <uuid> failed at <time>"
        );
        assert_eq!(normalise("db down; retry budget of 5 exhausted"), "db down; retry budget of <n> exhausted");
        assert_eq!(normalise("timeout after 1.5 s  on\tpartition 3"), "timeout after <n> s on partition <n>");
        assert_eq!(normalise("trace 4bf92f3577b34da6a3ce929d0e0e4736"), "trace <hex>");
        // Digits inside a word are part of the word: a table or host name stays.
        assert_eq!(normalise("table users2 on db1"), "table users2 on db1");
    }

    #[test]
    fn one_cause_one_signature_different_causes_differ() {
        let a = signature_of("t", "transient", Some("pool timed out after 30 s for 3f1b@x.io"));
        let b = signature_of("t", "transient", Some("pool timed out after 5 s for q@y.org"));
        assert_eq!(a, b);
        assert_ne!(a, signature_of("t", "permanent", Some("pool timed out after 5 s for q@y.org")));
        assert_ne!(a, signature_of("u", "transient", Some("pool timed out after 5 s for q@y.org")));
        assert_ne!(a, signature_of("t", "transient", Some("connection refused")));
        assert_eq!(a.len(), 16);
    }
}

//! Email address equality, defined once for the whole system.
//!
//! Two sign-ups are for "the same address" exactly when their canonical forms are the same
//! bytes. The gateway stores only canonical forms, the registration-service refuses events
//! whose email is not canonical, and `users.email` compares with `utf8mb4_bin`, so the
//! database's unique key says "taken" exactly when this module says "equal", on MariaDB and
//! MySQL 8 alike. (An accent- or case-insensitive collation would make `u@` collide with
//! `ü@` and `strasse@` with `straße@`: a rejection the user could not understand.)
//!
//! The canonical form of an address:
//! 1. surrounding whitespace is trimmed;
//! 2. the local part (before the last `@`) is put in Unicode NFC, lower-cased with Unicode's
//!    default case mapping (`Ada` → `ada`, `JÖRG` → `jörg`), and put in NFC again; nothing
//!    else is folded: accents stay (`ü` ≠ `u`), `ß` stays `ß` (≠ `ss`);
//! 3. the domain is converted to its ASCII form with UTS #46 (IDNA 2008, non-transitional:
//!    `Bücher.DE` → `xn--bcher-kva.de`, and `ß` stays distinct from `ss` there too), so a
//!    domain typed in Unicode and the same domain typed as an A-label are equal.
//!
//! Lower-casing the local part is lossy in theory (RFC 5321 lets a server tell `Ada@` from
//! `ada@`), but no real provider does, and one spelling per person is what keeps a user from
//! registering twice. Quoted local parts and IP-literal domains are refused: legal, but never
//! what a person types into a sign-up form. Canonical forms never contain whitespace, so the
//! `PAD SPACE` behaviour of `utf8mb4_bin` cannot make two different canonical forms equal.

use unicode_normalization::UnicodeNormalization;

/// Longest canonical address, in bytes (RFC 5321's path limit minus the brackets).
pub const MAX_EMAIL_LEN: usize = 254;
const MAX_LOCAL_LEN: usize = 64;
const MAX_LABEL_LEN: usize = 63;

/// Why an input is not an address, in words a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidEmail(String);

impl InvalidEmail {
    fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// The canonical form of `input`, or why it is not an address.
pub fn canonical_email(input: &str) -> Result<String, InvalidEmail> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(InvalidEmail::new("must not be empty"));
    }
    let Some((local, domain)) = trimmed.rsplit_once('@') else {
        return Err(InvalidEmail::new("must contain an @"));
    };
    let local = canonical_local_part(local);
    check_local_part(&local)?;
    let domain = ascii_domain(domain)?;
    let email = format!("{local}@{domain}");
    if email.len() > MAX_EMAIL_LEN {
        return Err(InvalidEmail::new(format!("must be at most {MAX_EMAIL_LEN} bytes")));
    }
    Ok(email)
}

/// NFC, lower case, NFC again. ASCII text is its own NFC and its Unicode lower case is its
/// ASCII lower case, so the common case skips the normalizer: it was the consumer's largest
/// CPU cost per message, checking every event's address.
fn canonical_local_part(local: &str) -> String {
    if local.is_ascii() {
        return local.to_ascii_lowercase();
    }
    local.nfc().collect::<String>().to_lowercase().nfc().collect()
}

/// Whether `email` is already in canonical form (what the consumer demands of an event).
pub fn is_canonical_email(email: &str) -> bool {
    canonical_email(email).is_ok_and(|canonical| canonical == email)
}

fn check_local_part(local: &str) -> Result<(), InvalidEmail> {
    if local.is_empty() || local.len() > MAX_LOCAL_LEN {
        return Err(InvalidEmail::new(format!("the part before the @ must be 1 to {MAX_LOCAL_LEN} bytes")));
    }
    // RFC 5322 dot-atom: atext runs separated by single dots. Non-ASCII (RFC 6531) is limited
    // to letters, digits and the combining marks NFC leaves on them.
    let atext = |c: char| {
        c.is_ascii_alphanumeric()
            || "!#$%&'*+-/=?^_`{|}~".contains(c)
            || (!c.is_ascii() && (c.is_alphanumeric() || is_combining_mark(c)))
    };
    if local.split('.').any(|run| run.is_empty() || !run.chars().all(atext)) {
        return Err(InvalidEmail::new("the part before the @ contains a character or dot that is not allowed"));
    }
    Ok(())
}

/// Combining marks that survive NFC (e.g. the dot of `i̇`, lower-case of `İ`).
fn is_combining_mark(c: char) -> bool {
    matches!(c, '\u{0300}'..='\u{036F}' | '\u{1AB0}'..='\u{1AFF}' | '\u{1DC0}'..='\u{1DFF}' | '\u{20D0}'..='\u{20FF}' | '\u{FE20}'..='\u{FE2F}')
}

fn ascii_domain(domain: &str) -> Result<String, InvalidEmail> {
    let invalid = || InvalidEmail::new("the domain is not a valid host name");
    if domain.is_empty() || domain.starts_with('[') {
        return Err(invalid());
    }
    let ascii = idna::domain_to_ascii(domain).map_err(|_| invalid())?;
    let labels: Vec<&str> = ascii.split('.').collect();
    if labels.len() < 2 {
        return Err(InvalidEmail::new("the domain must have at least two labels, e.g. example.com"));
    }
    for label in &labels {
        let ok_chars = label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if label.is_empty()
            || label.len() > MAX_LABEL_LEN
            || !ok_chars
            || label.starts_with('-')
            || label.ends_with('-')
        {
            return Err(invalid());
        }
    }
    if labels.last().is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit())) {
        return Err(invalid());
    }
    Ok(ascii)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ascii_shortcut_agrees_with_the_full_normalization() {
        let slow = |s: &str| s.nfc().collect::<String>().to_lowercase().nfc().collect::<String>();
        // Every printable ASCII character, alone and in mixed-case runs.
        for c in ' '..='~' {
            let s = format!("A{c}z{c}Q");
            assert_eq!(canonical_local_part(&s), slow(&s), "{s:?}");
        }
        for s in ["Ada.Lovelace", "JOHN+tag", "o'Brien", "x_Y-z", "MiXeD123"] {
            assert_eq!(canonical_local_part(s), slow(s), "{s:?}");
        }
        // Non-ASCII still goes the whole way.
        assert_eq!(canonical_local_part("JÖRG"), "jörg");
        assert_eq!(canonical_local_part("Jo\u{308}rg"), "jörg");
    }

    fn canonical(input: &str) -> String {
        canonical_email(input).unwrap_or_else(|e| panic!("{input:?}: {e}"))
    }

    use super::equality_examples::{MUST_COLLIDE, MUST_NOT_COLLIDE};

    #[test]
    fn equal_addresses_have_one_canonical_form() {
        for (a, b) in MUST_COLLIDE {
            assert_eq!(canonical(a), canonical(b), "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn different_addresses_stay_different() {
        for (a, b) in MUST_NOT_COLLIDE {
            assert_ne!(canonical(a), canonical(b), "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn canonical_forms_are_fixed_points() {
        for (a, b) in MUST_COLLIDE.iter().chain(MUST_NOT_COLLIDE) {
            for input in [a, b] {
                let c = canonical(input);
                assert!(is_canonical_email(&c), "{c:?}");
                assert_eq!(canonical(&c), c);
            }
        }
        assert!(!is_canonical_email("Ada@example.com"));
        assert!(!is_canonical_email("ada@bücher.de"));
        assert!(!is_canonical_email(" ada@example.com"));
    }

    #[test]
    fn known_forms() {
        assert_eq!(canonical("  Ada.Lovelace@Example.COM "), "ada.lovelace@example.com");
        assert_eq!(canonical("Jörg@Bücher.de"), "jörg@xn--bcher-kva.de");
        assert_eq!(canonical("a+tag@sub.example.co.uk"), "a+tag@sub.example.co.uk");
        assert_eq!(canonical("o'brien@example.ie"), "o'brien@example.ie");
    }

    #[test]
    fn refuses_what_is_not_an_address() {
        for bad in [
            "",
            "   ",
            "ada",
            "@example.com",
            "ada@",
            "ada@localhost",
            "ada@@example.com",
            "ada..l@example.com",
            ".ada@example.com",
            "ada.@example.com",
            "a da@example.com",
            "ada@exa mple.com",
            "ada@-example.com",
            "ada@example..com",
            "ada@127.0.0.1",
            "ada@[127.0.0.1]",
            "\"ada\"@example.com",
            "ada\u{0}@example.com",
            "ada@exam_ple.com",
        ] {
            assert!(canonical_email(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn enforces_length_limits_in_bytes() {
        let local = "a".repeat(64);
        let label = "b".repeat(63);
        let too_long = format!("{local}@{label}.{label}.{label}.com");
        assert!(canonical_email(&too_long).is_err());
        assert!(canonical_email(&format!("{}@example.com", "a".repeat(65))).is_err());
        let fits = format!("{local}@{label}.{label}.ab.com");
        assert!(fits.len() <= MAX_EMAIL_LEN);
        assert!(canonical_email(&fits).is_ok());
    }
}

/// The pairs the unit tests check, for integration tests that hold the database to them.
pub mod equality_examples {
    /// Spellings of one address: after the first is stored, the second is "already registered".
    pub const MUST_COLLIDE: &[(&str, &str)] = &[
        ("Ada@Example.com", "ada@example.com"),
        ("  ada@example.com ", "ada@example.com"),
        ("JÖRG@example.com", "jörg@example.com"),
        // Composed ü vs u + combining diaeresis: one letter, two encodings.
        ("j\u{00FC}rg@example.com", "ju\u{0308}rg@example.com"),
        ("jörg@bücher.de", "jörg@xn--bcher-kva.de"),
        ("jörg@BÜCHER.DE", "jörg@bücher.de"),
    ];
    /// Different addresses that an accent-, ß- or case-folding collation would merge: both
    /// must be stored.
    pub const MUST_NOT_COLLIDE: &[(&str, &str)] = &[
        ("über@example.com", "uber@example.com"),
        ("straße@example.com", "strasse@example.com"),
        ("josé@example.com", "jose@example.com"),
        ("ada@bücher.de", "ada@bucher.de"),
        ("ada@straße.de", "ada@strasse.de"),
        ("åsa@example.com", "asa@example.com"),
        ("ada+1@example.com", "ada@example.com"),
    ];
}

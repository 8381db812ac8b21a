//! An email address in the normalised form the whole system keys on.

use registration_events::MAX_EMAIL_LEN;

/// A syntactically valid address, trimmed and lower-cased.
///
/// Lower-casing the local part is technically lossy (RFC 5321 lets a server tell `Ada@` from
/// `ada@`), but no real provider does, and one spelling per person is what keeps a user from
/// registering twice. Quoted local parts and IP-literal domains are refused: they are legal
/// but never what a person types into a sign-up form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EmailAddress(String);

const MAX_LOCAL_LEN: usize = 64;
const MAX_LABEL_LEN: usize = 63;

impl EmailAddress {
    pub fn parse(input: &str) -> Result<Self, String> {
        let email = input.trim().to_lowercase();
        if email.is_empty() {
            return Err("must not be empty".into());
        }
        if email.len() > MAX_EMAIL_LEN {
            return Err(format!("must be at most {MAX_EMAIL_LEN} bytes"));
        }
        let Some((local, domain)) = email.rsplit_once('@') else {
            return Err("must contain an @".into());
        };
        check_local_part(local)?;
        check_domain(domain)?;
        Ok(Self(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for EmailAddress {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

fn check_local_part(local: &str) -> Result<(), String> {
    if local.is_empty() || local.len() > MAX_LOCAL_LEN {
        return Err(format!(
            "the part before the @ must be 1 to {MAX_LOCAL_LEN} bytes"
        ));
    }
    // RFC 5322 dot-atom: atext runs separated by single dots; non-ASCII letters (RFC 6531).
    let atext = |c: char| {
        c.is_ascii_alphanumeric()
            || "!#$%&'*+-/=?^_`{|}~".contains(c)
            || (!c.is_ascii() && c.is_alphanumeric())
    };
    if local
        .split('.')
        .any(|run| run.is_empty() || !run.chars().all(atext))
    {
        return Err("the part before the @ contains a character or dot that is not allowed".into());
    }
    Ok(())
}

fn check_domain(domain: &str) -> Result<(), String> {
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return Err("the domain must have at least two labels, e.g. example.com".into());
    }
    for label in &labels {
        let ok_chars = label.chars().all(|c| c.is_alphanumeric() || c == '-');
        if label.is_empty()
            || label.len() > MAX_LABEL_LEN
            || !ok_chars
            || label.starts_with('-')
            || label.ends_with('-')
        {
            return Err("the domain is not a valid host name".into());
        }
    }
    if labels
        .last()
        .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()))
    {
        return Err("the domain is not a valid host name".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_valid_addresses() {
        assert_eq!(
            EmailAddress::parse("  Ada.Lovelace@Example.COM ")
                .unwrap()
                .as_str(),
            "ada.lovelace@example.com"
        );
        assert!(EmailAddress::parse("a+tag@sub.example.co.uk").is_ok());
        assert!(EmailAddress::parse("o'brien@example.ie").is_ok());
        assert!(EmailAddress::parse("jörg@bücher.de").is_ok());
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
            "\"ada\"@example.com",
        ] {
            assert!(
                EmailAddress::parse(bad).is_err(),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn enforces_length_limits_in_bytes() {
        let local = "a".repeat(64);
        let label = "b".repeat(63);
        // 64 + 1 + 63*3 + 3 dots + "com" = 260 > 254
        let too_long = format!("{local}@{label}.{label}.{label}.com");
        assert!(EmailAddress::parse(&too_long).is_err());
        assert!(EmailAddress::parse(&format!("{}@example.com", "a".repeat(65))).is_err());
        let fits = format!("{local}@{label}.{label}.ab.com");
        assert!(fits.len() <= 254);
        assert!(EmailAddress::parse(&fits).is_ok());
    }
}

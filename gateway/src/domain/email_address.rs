//! An email address in the canonical form the whole system keys on.

use registration_events::email::canonical_email;

/// A valid address in canonical form: what two sign-ups must share to be "the same address".
/// Equality is defined once, in [`registration_events::email`], so the gateway, the
/// registration-service and the database's unique key agree on it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn parse(input: &str) -> Result<Self, String> {
        canonical_email(input).map(Self).map_err(|e| e.to_string())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_the_canonical_form() {
        assert_eq!(EmailAddress::parse("  Ada.Lovelace@Example.COM ").unwrap().as_str(), "ada.lovelace@example.com");
        assert_eq!(EmailAddress::parse("Jörg@Bücher.de").unwrap().as_str(), "jörg@xn--bcher-kva.de");
        assert!(EmailAddress::parse("ada@localhost").is_err());
    }
}

//! The name a user wants to be called.

use registration_events::MAX_NAME_CHARS;

/// Trimmed, 1 to 100 characters, without control characters (no line breaks or escape
/// sequences that could forge log lines or break a UI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(input: &str) -> Result<Self, String> {
        let name = input.trim();
        let chars = name.chars().count();
        if chars == 0 {
            return Err("must not be empty".into());
        }
        if chars > MAX_NAME_CHARS {
            return Err(format!("must be at most {MAX_NAME_CHARS} characters"));
        }
        if name.chars().any(char::is_control) {
            return Err("must not contain control characters".into());
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for DisplayName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_and_accepts_up_to_100_characters() {
        assert_eq!(
            DisplayName::parse("  Ada Lovelace ").unwrap().as_str(),
            "Ada Lovelace"
        );
        assert!(
            DisplayName::parse(&"é".repeat(100)).is_ok(),
            "limit counts characters, not bytes"
        );
        assert!(DisplayName::parse("李小龍").is_ok());
    }

    #[test]
    fn refuses_empty_long_and_control_characters() {
        assert!(DisplayName::parse("").is_err());
        assert!(DisplayName::parse(" \t ").is_err());
        assert!(DisplayName::parse(&"a".repeat(101)).is_err());
        assert!(DisplayName::parse("Ada\nLovelace").is_err());
        assert!(DisplayName::parse("Ada\u{1b}[31m").is_err());
    }
}

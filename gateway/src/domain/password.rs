//! The plaintext password, which must never leave the process.

use std::fmt;

/// 8 to 128 characters, kept exactly as typed (no trimming: spaces are part of a password).
///
/// Neither `Debug` nor `Display` shows the value, so a stray `{:?}` or `tracing` field cannot
/// leak it; the only way to the text is the explicit [`Password::expose`].
#[derive(Clone)]
pub struct Password(String);

pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_CHARS: usize = 128;

impl Password {
    pub fn parse(input: String) -> Result<Self, String> {
        let chars = input.chars().count();
        if chars < MIN_PASSWORD_CHARS {
            return Err(format!("must be at least {MIN_PASSWORD_CHARS} characters"));
        }
        if chars > MAX_PASSWORD_CHARS {
            return Err(format!("must be at most {MAX_PASSWORD_CHARS} characters"));
        }
        Ok(Self(input))
    }

    /// The plaintext, for the hasher and the idempotency fingerprint only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl fmt::Display for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_8_to_128_characters_untrimmed() {
        assert_eq!(Password::parse(" 8 chars".into()).unwrap().expose(), " 8 chars");
        assert!(Password::parse("ü".repeat(128)).is_ok());
        assert!(Password::parse("short".into()).is_err());
        assert!(Password::parse("x".repeat(129)).is_err());
    }

    #[test]
    fn never_prints_the_value() {
        let p = Password::parse("correct horse battery".into()).unwrap();
        assert!(!format!("{p:?}").contains("horse"));
        assert!(!format!("{p}").contains("horse"));
    }
}

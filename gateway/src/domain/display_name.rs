//! The name a user wants to be called.

use registration_events::MAX_NAME_CHARS;

/// Trimmed, 1 to 100 characters, without control characters (no line breaks or escape
/// sequences that could forge log lines or break a UI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

/// What `str::trim` removes: `char::is_whitespace`, Unicode's White_Space property, as the
/// body of a regex character class.
const WHITE_SPACE: &str =
    "\\u0009-\\u000D\\u0020\\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000";
/// `char::is_control`: Unicode general category Cc.
const CONTROL: &str = "\\u0000-\\u001F\\u007F-\\u009F";

impl DisplayName {
    /// [`DisplayName::parse`]'s rule as a regular expression over the raw input, for the
    /// OpenAPI document: white space around 1 to 100 characters that include no control
    /// character and neither begin nor end with white space. `\uXXXX` escapes and `{m,n}`
    /// only, so JSON Schema (ECMA 262), Python's `re` (schemathesis) and the `regex` crate
    /// (the test below that holds it to `parse`) all read it alike.
    pub fn pattern() -> String {
        let edge = format!("[^{CONTROL}{WHITE_SPACE}]");
        let inner = MAX_NAME_CHARS - 2;
        format!("^[{WHITE_SPACE}]*{edge}(?:[^{CONTROL}]{{0,{inner}}}{edge})?[{WHITE_SPACE}]*$")
    }

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
        assert_eq!(DisplayName::parse("  Ada Lovelace ").unwrap().as_str(), "Ada Lovelace");
        assert!(DisplayName::parse(&"é".repeat(100)).is_ok(), "limit counts characters, not bytes");
        assert!(DisplayName::parse("李小龍").is_ok());
    }

    /// The OpenAPI pattern and `parse` agree on every character around the rule's edges, at
    /// the start, the end and the middle of a name, and on the length limits with padding.
    #[test]
    fn the_documented_pattern_is_exactly_the_rule() {
        let pattern = regex::Regex::new(&DisplayName::pattern()).unwrap();
        let agree = |input: &str| {
            assert_eq!(
                pattern.is_match(input),
                DisplayName::parse(input).is_ok(),
                "pattern and parse disagree on {input:?}"
            );
        };
        let interesting = (0..=0x3100u32).chain([0xFEFF, 0xFFFD, 0x1F600, 0x10FFFF]).filter_map(char::from_u32);
        for c in interesting {
            for input in [
                format!("{c}"),
                format!("{c}a"),
                format!("a{c}"),
                format!("a{c}b"),
                format!(" {c} "),
                format!("{c}{c}"),
            ] {
                agree(&input);
            }
        }
        for n in [0, 1, 2, 99, 100, 101, 150] {
            let body = "é".repeat(n);
            agree(&body);
            agree(&format!(" \t{body}\u{3000}\n"));
            agree(&format!("a{}b", " ".repeat(n)));
            agree(&format!("\u{85}{body}\u{2028}"));
        }
        agree("");
        agree("Ada\u{90}Lovelace");
        agree("Ada\u{c}");
        agree("\u{c}Ada");
        agree("Ada \u{7f}");
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

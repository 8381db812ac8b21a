//! Secrets in configuration: values that may be used but never shown.
//!
//! Settings structs derive `Debug` so they can be logged at start-up and appear in panic
//! messages; a password inside them must not come along. These newtypes print a placeholder
//! (or the URL with its password replaced) and hand the real value out only through
//! `expose`, so every place that uses the secret is visible in the code.

use std::convert::Infallible;
use std::fmt;
use std::str::FromStr;

/// A secret string (a password, a token). `Debug` and `Display` print `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that needs it (a client's configuration).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Infallible, so a parse error (which would quote the value) can never leak it.
impl FromStr for Secret {
    type Err = Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::new(s))
    }
}

/// A database URL whose password is replaced in `Debug` and `Display`: the rest (host, port,
/// database, TLS mode) is what an operator needs to see when a connection fails.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL with its password, for the connection options only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with the password replaced by `<redacted>`; an unparsable URL is not shown at
    /// all, since we cannot tell where its password is.
    pub fn redacted(&self) -> String {
        match url::Url::parse(&self.0) {
            Ok(mut url) if url.password().is_some() => {
                // `set_password` percent-encodes `<>`, so a plain marker goes in and is swapped
                // for the readable one. Cannot fail: a URL with a password has a host.
                let _ = url.set_password(Some("REDACTED"));
                url.to_string().replacen(":REDACTED@", ":<redacted>@", 1)
            }
            Ok(url) => url.to_string(),
            Err(_) => "<unparsable URL, redacted>".to_owned(),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DatabaseUrl").field(&self.redacted()).finish()
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Infallible for the same reason as [`Secret`]'s: the URL is checked when the pool is built,
/// by an error that names `DATABASE_URL` without quoting it.
impl FromStr for DatabaseUrl {
    type Err = Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::new(s))
    }
}

/// For tests and checks that compare a URL with a literal; nothing is shown.
impl PartialEq<&str> for DatabaseUrl {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl From<String> for DatabaseUrl {
    fn from(url: String) -> Self {
        Self(url)
    }
}

impl From<&str> for DatabaseUrl {
    fn from(url: &str) -> Self {
        Self(url.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_password() {
        let url = DatabaseUrl::new("mysql://app:hunter2@db.example.com:3307/registrations?ssl-mode=REQUIRED");
        for shown in [format!("{url:?}"), url.to_string()] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains("db.example.com:3307/registrations") && shown.contains("<redacted>"), "{shown}");
        }
        assert_eq!(url.expose(), "mysql://app:hunter2@db.example.com:3307/registrations?ssl-mode=REQUIRED");
        let secret = Secret::new("s3cret");
        assert_eq!(format!("{secret:?} {secret}"), "<redacted> <redacted>");
        assert!(!format!("{:?}", DatabaseUrl::new("not a url hunter2")).contains("hunter2"));
    }

    #[test]
    fn a_url_without_password_is_shown_whole() {
        let url = DatabaseUrl::new("mysql://registrations@127.0.0.1:3306/registrations");
        assert_eq!(url.to_string(), "mysql://registrations@127.0.0.1:3306/registrations");
    }
}

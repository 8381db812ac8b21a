//! The admin tokens: who may use the admin API and the console, and under which name their
//! actions are audited.
//!
//! Three sources, all optional and all valid at once: `ADMIN_TOKEN` (one token, named `admin`,
//! as before), `ADMIN_TOKENS` (`alice:<token>,bob:<token>`) and `ADMIN_TOKENS_FILE` (one
//! `name:token` per line, `#` comments). The file is read again whenever its modification time
//! changes, so a token is rotated without a restart: add the new one, switch the clients, remove
//! the old one. Tokens are never printed; a presented token is compared with every configured
//! one in constant time, without stopping at the first match.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use reliable_messaging::service::Secret;

/// The name `ADMIN_TOKEN`'s token acts under.
pub const LEGACY_NAME: &str = "admin";

/// A named token.
#[derive(Clone, Debug)]
pub struct NamedToken {
    pub name: String,
    pub token: Secret,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("admin token entry {0} is not name:token")]
    Malformed(usize),
    #[error("admin token entry {0} has an empty name or token")]
    Empty(usize),
    #[error("admin token name {0:?} is given twice")]
    DuplicateName(String),
    #[error("reading ADMIN_TOKENS_FILE {path}: {source}")]
    File { path: String, source: std::io::Error },
}

/// Parses `name:token` entries separated by commas or newlines; the error names the entry by
/// position, never by content.
pub fn parse_named(text: &str) -> Result<Vec<NamedToken>, TokenError> {
    let mut out: Vec<NamedToken> = Vec::new();
    let entries = text.split([',', '\n']).map(str::trim).filter(|e| !e.is_empty() && !e.starts_with('#'));
    for (n, entry) in entries.enumerate() {
        let (name, token) = entry.split_once(':').ok_or(TokenError::Malformed(n + 1))?;
        let (name, token) = (name.trim(), token.trim());
        if name.is_empty() || token.is_empty() {
            return Err(TokenError::Empty(n + 1));
        }
        if out.iter().any(|t| t.name == name) {
            return Err(TokenError::DuplicateName(name.to_owned()));
        }
        out.push(NamedToken { name: name.to_owned(), token: Secret::new(token) });
    }
    Ok(out)
}

/// Where the tokens come from, as configured.
#[derive(Clone, Debug, Default)]
pub struct TokenSources {
    pub legacy: Option<Secret>,
    pub named: Vec<NamedToken>,
    pub file: Option<PathBuf>,
}

impl TokenSources {
    pub fn is_empty(&self) -> bool {
        self.legacy.is_none() && self.named.is_empty() && self.file.is_none()
    }
}

/// The live set of tokens.
#[derive(Clone, Debug)]
pub struct AdminTokens {
    fixed: Arc<Vec<NamedToken>>,
    file: Option<PathBuf>,
    loaded: Arc<Mutex<(Option<SystemTime>, Vec<NamedToken>)>>,
}

impl AdminTokens {
    /// Fails when an entry is malformed or the file unreadable: a worker with a broken token
    /// list must not start with fewer admins than meant.
    pub fn new(sources: &TokenSources) -> Result<Self, TokenError> {
        let mut fixed = sources.named.clone();
        if let Some(legacy) = &sources.legacy {
            if fixed.iter().any(|t| t.name == LEGACY_NAME) {
                return Err(TokenError::DuplicateName(LEGACY_NAME.to_owned()));
            }
            fixed.push(NamedToken { name: LEGACY_NAME.to_owned(), token: legacy.clone() });
        }
        let tokens = AdminTokens { fixed: Arc::new(fixed), file: sources.file.clone(), loaded: Arc::default() };
        tokens.reload()?;
        Ok(tokens)
    }

    /// Re-reads the file when it changed. A broken file keeps the last good set (and says so).
    fn reload(&self) -> Result<(), TokenError> {
        let Some(path) = &self.file else { return Ok(()) };
        let display = path.display().to_string();
        let modified = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .map_err(|source| TokenError::File { path: display.clone(), source })?;
        let mut loaded = self.loaded.lock().expect("token lock");
        if loaded.0 == Some(modified) {
            return Ok(());
        }
        let text = std::fs::read_to_string(path).map_err(|source| TokenError::File { path: display, source })?;
        let named = parse_named(&text)?;
        tracing::info!(tokens = named.len(), "admin tokens file (re)loaded");
        *loaded = (Some(modified), named);
        Ok(())
    }

    /// The name of the token `presented` is, if any. Every token is compared, in constant time
    /// each, so the time taken reveals neither which token matched nor how much of one.
    pub fn authenticate(&self, presented: &str) -> Option<String> {
        if let Err(e) = self.reload() {
            tracing::error!(error = %e, "admin tokens file unreadable; keeping the tokens loaded before");
        }
        let loaded = self.loaded.lock().expect("token lock");
        let mut found = None;
        for t in self.fixed.iter().chain(loaded.1.iter()) {
            if constant_time_eq(presented.as_bytes(), t.token.expose().as_bytes()) && found.is_none() {
                found = Some(t.name.clone());
            }
        }
        found
    }
}

/// Compares without returning early, so response time does not reveal how much of a guessed
/// token is right.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret-longer"));
    }

    #[test]
    fn named_tokens_parse_and_errors_never_quote_a_token() {
        let t = parse_named("alice:tok-a, bob:tok-b\n# old\n").unwrap();
        assert_eq!(t.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["alice", "bob"]);
        let e = parse_named("alice:tok-a,bob-without-colon-s3cret").unwrap_err().to_string();
        assert!(!e.contains("s3cret") && e.contains('2'), "{e}");
        assert!(parse_named("alice:a,alice:b").is_err());
        assert!(parse_named(":a").is_err());
    }

    #[test]
    fn each_token_authenticates_as_its_name_and_the_legacy_one_as_admin() {
        let sources = TokenSources {
            legacy: Some(Secret::new("legacy")),
            named: parse_named("alice:tok-a,bob:tok-b").unwrap(),
            file: None,
        };
        let tokens = AdminTokens::new(&sources).unwrap();
        assert_eq!(tokens.authenticate("tok-a").as_deref(), Some("alice"));
        assert_eq!(tokens.authenticate("tok-b").as_deref(), Some("bob"));
        assert_eq!(tokens.authenticate("legacy").as_deref(), Some(LEGACY_NAME));
        assert_eq!(tokens.authenticate("tok-c"), None);
        assert_eq!(tokens.authenticate(""), None);
    }

    #[test]
    fn the_file_is_reread_when_it_changes_so_rotation_needs_no_restart() {
        let path = std::env::temp_dir().join(format!("admin-tokens-{}", std::process::id()));
        std::fs::write(&path, "carol:old\n").unwrap();
        let tokens = AdminTokens::new(&TokenSources { file: Some(path.clone()), ..Default::default() }).unwrap();
        assert_eq!(tokens.authenticate("old").as_deref(), Some("carol"));
        std::fs::write(&path, "carol:new\n").unwrap();
        // A later modification time, whatever the file system's resolution.
        let later = SystemTime::now() + std::time::Duration::from_secs(2);
        std::fs::File::options().write(true).open(&path).unwrap().set_modified(later).unwrap();
        assert_eq!(tokens.authenticate("new").as_deref(), Some("carol"));
        assert_eq!(tokens.authenticate("old"), None, "the removed token no longer works");
        std::fs::remove_file(&path).unwrap();
    }
}

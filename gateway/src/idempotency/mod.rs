//! `Idempotency-Key`: a client retrying a sign-up gets the same request id, and reusing a key
//! for a different sign-up is refused with 409, whichever gateway instance it reaches and
//! however often they restart, for the key's whole retention window (`IDEMPOTENCY_TTL_SECS`,
//! 24 h by default).
//!
//! Two defences, so that a reused key can never hide a sign-up behind a success:
//! 1. **The request id is bound to the body.** [`crate::request_id::RequestIds::for_idempotency_key`]
//!    derives the id from the key *and* the request's [`Fingerprint`]: the same key with the
//!    same body always gets the same id (a retry, one row downstream), while a different body
//!    gets a different id, so it can never collapse onto the first request's row. This needs
//!    no storage and holds even when everything below is unavailable.
//! 2. **Claims are shared.** The first fingerprint seen for a key is recorded in the
//!    `idempotency_keys` table ([`shared_claims`]); a later request with another fingerprint is
//!    refused. When the table cannot be reached within `IDEMPOTENCY_DB_TIMEOUT_MS`, the
//!    instance's own bounded map ([`local_claims`]) answers instead: it may then accept a
//!    conflicting body another instance saw, but by (1) that body gets its own request id and
//!    its own honest outcome (stored, or "email already registered" when it is).

mod local_claims;
pub mod shared_claims;

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use sqlx::MySqlPool;
use uuid::Uuid;

use crate::configuration::{IdempotencySettings, RequestIdSecret};
use crate::domain::NewRegistration;
pub use local_claims::LocalClaims;
pub use shared_claims::SharedClaims;

pub const HEADER: &str = "idempotency-key";
pub const MAX_KEY_LEN: usize = 255;

/// A syntactically valid `Idempotency-Key` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// 1 to 255 printable ASCII characters.
    pub fn parse(raw: &[u8]) -> Result<Self, String> {
        if raw.is_empty() || raw.len() > MAX_KEY_LEN {
            return Err(format!("must be 1 to {MAX_KEY_LEN} characters"));
        }
        if !raw.iter().all(|&b| b == b' ' || b.is_ascii_graphic()) {
            return Err("must contain printable ASCII characters only".into());
        }
        Ok(Self(String::from_utf8(raw.to_vec()).expect("ASCII is UTF-8")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What identifies "the same request" for a key: SHA-256 over the normalised email and name
/// and HMAC(secret, password). The password enters only through the keyed HMAC, so the
/// fingerprint, should it ever be seen, does not allow guessing the password offline;
/// the password hash cannot be used because its salt differs on every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint(pub(crate) [u8; 32]);

impl Fingerprint {
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn of(registration: &NewRegistration, secret: &RequestIdSecret) -> Self {
        let mut password_mac = <Hmac<Sha256>>::new_from_slice(secret.expose()).expect("HMAC takes any key length");
        password_mac.update(b"idempotency-password:");
        password_mac.update(registration.password.expose().as_bytes());
        let mut digest = Sha256::new();
        // Length prefixes keep ("ab", "c") and ("a", "bc") apart.
        for part in [registration.email.as_str().as_bytes(), registration.name.as_str().as_bytes()] {
            digest.update((part.len() as u64).to_be_bytes());
            digest.update(part);
        }
        digest.update(password_mac.finalize().into_bytes());
        Self(digest.finalize().into())
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// This request owns the key: its first use (or the previous claim expired), or a retry
    /// of the request that first used it.
    Owner,
    /// Another request (a different email, name or password) owns the key.
    Conflict,
}

/// Where a claim was decided: operators watch how often the fallback answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimSource {
    Shared,
    /// The shared table did not answer in time; this instance's map decided.
    LocalFallback,
}

/// Claims keys in the shared table, falling back to this instance's map.
pub struct IdempotencyClaims {
    shared: SharedClaims,
    local: LocalClaims,
    shared_timeout: Duration,
}

impl IdempotencyClaims {
    pub fn new(db: MySqlPool, secret: RequestIdSecret, settings: IdempotencySettings) -> Arc<Self> {
        Arc::new(Self {
            shared: SharedClaims::new(db, secret, settings.ttl),
            local: LocalClaims::new(settings),
            shared_timeout: settings.shared_timeout,
        })
    }

    /// The shared table, for the periodic sweep of expired claims.
    pub fn shared(&self) -> &SharedClaims {
        &self.shared
    }

    /// Binds `key` to `fingerprint` unless another request owns it, and says how this request
    /// relates to the key's owner. A key stays bound even when its request then fails to
    /// publish: a retry must send the same body, as it would for any other outcome.
    pub async fn claim(
        &self,
        key: &IdempotencyKey,
        fingerprint: Fingerprint,
        request_id: Uuid,
    ) -> (Claim, ClaimSource) {
        let shared = self.shared.claim(key, fingerprint, request_id);
        match tokio::time::timeout(self.shared_timeout, shared).await {
            Ok(Ok(owner)) => {
                self.local.remember(key, owner);
                let claim = if owner == fingerprint { Claim::Owner } else { Claim::Conflict };
                (claim, ClaimSource::Shared)
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, "shared Idempotency-Key claim failed; this instance's map decides");
                (self.local.claim(key, fingerprint), ClaimSource::LocalFallback)
            }
            Err(_elapsed) => {
                tracing::warn!(timeout = ?self.shared_timeout, "shared Idempotency-Key claim timed out; this instance's map decides");
                (self.local.claim(key, fingerprint), ClaimSource::LocalFallback)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{DisplayName, EmailAddress, Password};

    fn registration(email: &str, name: &str, password: &str) -> NewRegistration {
        NewRegistration {
            email: EmailAddress::parse(email).unwrap(),
            name: DisplayName::parse(name).unwrap(),
            password: Password::parse(password.to_owned()).unwrap(),
        }
    }

    #[test]
    fn key_syntax() {
        assert!(IdempotencyKey::parse(b"8e03978e-40d5-43e8-bc93-6894a57f9324").is_ok());
        assert!(IdempotencyKey::parse(b"with space").is_ok());
        assert!(IdempotencyKey::parse(&[b'k'; 255]).is_ok());
        assert!(IdempotencyKey::parse(&[b'k'; 256]).is_err());
        assert!(IdempotencyKey::parse(b"").is_err());
        assert!(IdempotencyKey::parse(b"tab\there").is_err());
        assert!(IdempotencyKey::parse("clé".as_bytes()).is_err());
    }

    #[test]
    fn fingerprint_covers_normalised_fields_and_password() {
        let secret = RequestIdSecret::random();
        let a = Fingerprint::of(&registration("Ada@Example.com", "Ada", "correct horse"), &secret);
        assert_eq!(a, Fingerprint::of(&registration("ada@example.com ", " Ada", "correct horse"), &secret));
        assert_ne!(a, Fingerprint::of(&registration("ada@example.com", "Ada", "correct horse!"), &secret));
        assert_ne!(a, Fingerprint::of(&registration("ada@example.com", "Adah", "correct horse"), &secret));
        assert_ne!(
            a,
            Fingerprint::of(&registration("ada@example.com", "Ada", "correct horse"), &RequestIdSecret::random())
        );
    }
}

//! `Idempotency-Key`: a client retrying a sign-up gets the same request id, and reusing a key
//! for a different sign-up is refused.
//!
//! The id itself needs no storage: [`crate::request_id::RequestIds::for_idempotency_key`]
//! derives it from the key. What needs memory is "was this key used with another body?":
//! a bounded in-process map from key to a fingerprint of the request. It is forgotten on
//! restart and is per instance; that is acceptable because the registration-service
//! upserts by request id, so a key reused across a restart (or across instances) still
//! cannot create a second user: at worst the second body is ignored downstream.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::configuration::{IdempotencySettings, RequestIdSecret};
use crate::domain::NewRegistration;

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
        Ok(Self(
            String::from_utf8(raw.to_vec()).expect("ASCII is UTF-8"),
        ))
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
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    pub fn of(registration: &NewRegistration, secret: &RequestIdSecret) -> Self {
        let mut password_mac =
            <Hmac<Sha256>>::new_from_slice(secret.expose()).expect("HMAC takes any key length");
        password_mac.update(b"idempotency-password:");
        password_mac.update(registration.password.expose().as_bytes());
        let mut digest = Sha256::new();
        // Length prefixes keep ("ab", "c") and ("a", "bc") apart.
        for part in [
            registration.email.as_str().as_bytes(),
            registration.name.as_str().as_bytes(),
        ] {
            digest.update((part.len() as u64).to_be_bytes());
            digest.update(part);
        }
        digest.update(password_mac.finalize().into_bytes());
        Self(digest.finalize().into())
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// First time this key is seen (or it was forgotten).
    New,
    /// Seen before with the same request: a retry.
    Repeat,
    /// Seen before with a different request.
    Conflict,
}

/// Remembers at most `capacity` keys for `ttl`, forgetting the oldest first.
pub struct IdempotencyStore {
    settings: IdempotencySettings,
    inner: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    by_key: HashMap<String, (Fingerprint, Instant)>,
    /// Insertion order, for eviction. A key appears once: entries are never refreshed.
    order: VecDeque<(String, Instant)>,
}

impl IdempotencyStore {
    pub fn new(settings: IdempotencySettings) -> Self {
        Self {
            settings,
            inner: Mutex::new(Entries::default()),
        }
    }

    /// Binds `key` to `fingerprint` if it is unknown, and says how this request relates to
    /// the one that first used the key. A key stays bound even when its request then fails
    /// to publish: a retry must send the same body, as it would for any other outcome.
    pub fn claim(&self, key: &IdempotencyKey, fingerprint: Fingerprint) -> Claim {
        self.claim_at(key, fingerprint, Instant::now())
    }

    fn claim_at(&self, key: &IdempotencyKey, fingerprint: Fingerprint, now: Instant) -> Claim {
        let mut entries = self.inner.lock().expect("idempotency map lock poisoned");
        entries.expire(now, self.settings.ttl);
        if let Some((known, _)) = entries.by_key.get(key.as_str()) {
            return if *known == fingerprint {
                Claim::Repeat
            } else {
                Claim::Conflict
            };
        }
        if self.settings.capacity == 0 {
            return Claim::New;
        }
        while entries.by_key.len() >= self.settings.capacity {
            let Some((oldest, _)) = entries.order.pop_front() else {
                break;
            };
            entries.by_key.remove(&oldest);
        }
        entries
            .by_key
            .insert(key.as_str().to_owned(), (fingerprint, now));
        entries.order.push_back((key.as_str().to_owned(), now));
        Claim::New
    }

    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .expect("idempotency map lock poisoned")
            .by_key
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Entries {
    fn expire(&mut self, now: Instant, ttl: Duration) {
        while let Some((key, at)) = self.order.front() {
            if now.saturating_duration_since(*at) < ttl {
                break;
            }
            self.by_key.remove(key);
            self.order.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{DisplayName, EmailAddress, Password};

    fn key(k: &str) -> IdempotencyKey {
        IdempotencyKey::parse(k.as_bytes()).unwrap()
    }

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
        let a = Fingerprint::of(
            &registration("Ada@Example.com", "Ada", "correct horse"),
            &secret,
        );
        assert_eq!(
            a,
            Fingerprint::of(
                &registration("ada@example.com ", " Ada", "correct horse"),
                &secret
            )
        );
        assert_ne!(
            a,
            Fingerprint::of(
                &registration("ada@example.com", "Ada", "correct horse!"),
                &secret
            )
        );
        assert_ne!(
            a,
            Fingerprint::of(
                &registration("ada@example.com", "Adah", "correct horse"),
                &secret
            )
        );
        assert_ne!(
            a,
            Fingerprint::of(
                &registration("ada@example.com", "Ada", "correct horse"),
                &RequestIdSecret::random()
            )
        );
    }

    #[test]
    fn same_key_same_request_repeats_different_request_conflicts() {
        let store = IdempotencyStore::new(IdempotencySettings::default());
        let (one, two) = (Fingerprint([1; 32]), Fingerprint([2; 32]));
        assert_eq!(store.claim(&key("k"), one), Claim::New);
        assert_eq!(store.claim(&key("k"), one), Claim::Repeat);
        assert_eq!(store.claim(&key("k"), two), Claim::Conflict);
        assert_eq!(store.claim(&key("other"), two), Claim::New);
    }

    #[test]
    fn bounded_by_capacity_and_ttl() {
        let store = IdempotencyStore::new(IdempotencySettings {
            capacity: 2,
            ttl: Duration::from_secs(60),
        });
        let t0 = Instant::now();
        let (one, two) = (Fingerprint([1; 32]), Fingerprint([2; 32]));
        store.claim_at(&key("a"), one, t0);
        store.claim_at(&key("b"), one, t0);
        store.claim_at(&key("c"), one, t0);
        assert_eq!(store.len(), 2);
        assert_eq!(
            store.claim_at(&key("a"), two, t0),
            Claim::New,
            "oldest key was forgotten"
        );
        assert_eq!(
            store.claim_at(&key("c"), two, t0 + Duration::from_secs(59)),
            Claim::Conflict
        );
        assert_eq!(
            store.claim_at(&key("c"), two, t0 + Duration::from_secs(60)),
            Claim::New,
            "expired"
        );
    }
}

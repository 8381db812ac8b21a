//! The in-process fallback for Idempotency-Key claims: used when the shared claim table
//! cannot be reached in time, and kept in step with it otherwise. Bounded in keys and time.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Claim, Fingerprint, IdempotencyKey};
use crate::configuration::IdempotencySettings;

/// Remembers at most `capacity` keys for `ttl`, forgetting the oldest first.
pub struct LocalClaims {
    settings: IdempotencySettings,
    inner: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    by_key: HashMap<String, (Fingerprint, Instant)>,
    /// Insertion order, for eviction. A key appears once: entries are never refreshed.
    order: VecDeque<(String, Instant)>,
}

impl LocalClaims {
    pub fn new(settings: IdempotencySettings) -> Self {
        Self { settings, inner: Mutex::new(Entries::default()) }
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
            return if *known == fingerprint { Claim::Owner } else { Claim::Conflict };
        }
        if self.settings.capacity == 0 {
            return Claim::Owner;
        }
        while entries.by_key.len() >= self.settings.capacity {
            let Some((oldest, _)) = entries.order.pop_front() else {
                break;
            };
            entries.by_key.remove(&oldest);
        }
        entries.by_key.insert(key.as_str().to_owned(), (fingerprint, now));
        entries.order.push_back((key.as_str().to_owned(), now));
        Claim::Owner
    }

    /// Records what the shared claim table answered: `fingerprint` owns `key`. Keeps this
    /// fallback from contradicting the shared truth (e.g. a conflict seen here first that the
    /// table resolved in favour of another instance's request).
    pub fn remember(&self, key: &IdempotencyKey, fingerprint: Fingerprint) {
        let now = Instant::now();
        let mut entries = self.inner.lock().expect("idempotency map lock poisoned");
        entries.expire(now, self.settings.ttl);
        if let Some(entry) = entries.by_key.get_mut(key.as_str()) {
            entry.0 = fingerprint;
            return;
        }
        drop(entries);
        self.claim_at(key, fingerprint, now);
    }

    pub fn len(&self) -> usize {
        self.inner.lock().expect("idempotency map lock poisoned").by_key.len()
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

    fn key(k: &str) -> IdempotencyKey {
        IdempotencyKey::parse(k.as_bytes()).unwrap()
    }

    #[test]
    fn same_key_same_request_repeats_different_request_conflicts() {
        let store = LocalClaims::new(IdempotencySettings::default());
        let (one, two) = (Fingerprint([1; 32]), Fingerprint([2; 32]));
        assert_eq!(store.claim(&key("k"), one), Claim::Owner);
        assert_eq!(store.claim(&key("k"), one), Claim::Owner);
        assert_eq!(store.claim(&key("k"), two), Claim::Conflict);
        assert_eq!(store.claim(&key("other"), two), Claim::Owner);
    }

    #[test]
    fn remembering_the_shared_answer_overrides_a_local_first_claim() {
        let store = LocalClaims::new(IdempotencySettings::default());
        let (one, two) = (Fingerprint([1; 32]), Fingerprint([2; 32]));
        assert_eq!(store.claim(&key("k"), two), Claim::Owner);
        store.remember(&key("k"), one);
        assert_eq!(store.claim(&key("k"), one), Claim::Owner);
        assert_eq!(store.claim(&key("k"), two), Claim::Conflict);
        store.remember(&key("fresh"), one);
        assert_eq!(store.claim(&key("fresh"), one), Claim::Owner);
    }

    #[test]
    fn bounded_by_capacity_and_ttl() {
        let store = LocalClaims::new(IdempotencySettings {
            capacity: 2,
            ttl: Duration::from_secs(60),
            ..IdempotencySettings::default()
        });
        let t0 = Instant::now();
        let (one, two) = (Fingerprint([1; 32]), Fingerprint([2; 32]));
        store.claim_at(&key("a"), one, t0);
        store.claim_at(&key("b"), one, t0);
        store.claim_at(&key("c"), one, t0);
        assert_eq!(store.len(), 2);
        assert_eq!(store.claim_at(&key("a"), two, t0), Claim::Owner, "oldest key was forgotten");
        assert_eq!(store.claim_at(&key("c"), two, t0 + Duration::from_secs(59)), Claim::Conflict);
        assert_eq!(store.claim_at(&key("c"), two, t0 + Duration::from_secs(60)), Claim::Owner, "expired");
    }
}

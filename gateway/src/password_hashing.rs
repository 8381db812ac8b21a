//! argon2id password hashing that cannot stall the async runtime.
//!
//! A hash costs tens of milliseconds of CPU and ~19 MiB of memory by design. Each one runs
//! on a blocking thread (`spawn_blocking`), at most `concurrency` at a time (a semaphore),
//! and at most `queue_limit` more may wait: a burst beyond that is answered 503 at once,
//! because a request queued for seconds is worse than one told to come back.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::SaltString;
use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, Version};
use tokio::sync::Semaphore;

use crate::configuration::HashingSettings;
use crate::domain::Password;

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("too many passwords are waiting to be hashed")]
    Overloaded,
    #[error("hashing failed: {0}")]
    Failed(String),
}

#[derive(Debug, thiserror::Error)]
#[error("invalid argon2 parameters: {0}")]
pub struct InvalidParams(String);

/// Hashes passwords with argon2id under a concurrency limit.
pub struct PasswordHasher {
    params: Params,
    slots: Arc<Semaphore>,
    /// Requests hashing or waiting for a slot.
    in_flight: AtomicUsize,
    max_in_flight: usize,
}

impl PasswordHasher {
    pub fn new(settings: &HashingSettings) -> Result<Self, InvalidParams> {
        let params = Params::new(
            settings.memory_kib,
            settings.iterations,
            settings.parallelism,
            None,
        )
        .map_err(|e| InvalidParams(e.to_string()))?;
        let concurrency = settings.concurrency.max(1);
        Ok(Self {
            params,
            slots: Arc::new(Semaphore::new(concurrency)),
            in_flight: AtomicUsize::new(0),
            max_in_flight: concurrency + settings.queue_limit,
        })
    }

    /// The PHC string (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`) of `password`, with a
    /// fresh random salt.
    pub async fn hash(&self, password: &Password) -> Result<String, HashError> {
        let _place = self.reserve()?;
        let permit = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| HashError::Failed(e.to_string()))?;
        let params = self.params.clone();
        let password = password.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let salt = SaltString::generate(&mut OsRng);
            Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
                .hash_password(password.expose().as_bytes(), &salt)
                .map(|hash| hash.to_string())
                .map_err(|e| HashError::Failed(e.to_string()))
        })
        .await
        .map_err(|e| HashError::Failed(e.to_string()))?
    }

    /// A place in the queue, or `Overloaded` when it is full; released on drop.
    fn reserve(&self) -> Result<Place<'_>, HashError> {
        let before = self.in_flight.fetch_add(1, Ordering::AcqRel);
        let place = Place(&self.in_flight);
        if before >= self.max_in_flight {
            return Err(HashError::Overloaded);
        }
        Ok(place)
    }
}

struct Place<'a>(&'a AtomicUsize);

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::{PasswordHash, PasswordVerifier};

    fn cheap(concurrency: usize, queue_limit: usize) -> HashingSettings {
        HashingSettings {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
            concurrency,
            queue_limit,
        }
    }

    fn password(text: &str) -> Password {
        Password::parse(text.to_owned()).unwrap()
    }

    #[tokio::test]
    async fn produces_a_verifiable_argon2id_phc_string_with_the_configured_cost() {
        let hasher = PasswordHasher::new(&cheap(1, 1)).unwrap();
        let phc = hasher.hash(&password("correct horse")).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{phc}");
        assert!(!phc.contains("correct horse"));
        let parsed = PasswordHash::new(&phc).unwrap();
        assert!(Argon2::default()
            .verify_password(b"correct horse", &parsed)
            .is_ok());
        assert!(Argon2::default()
            .verify_password(b"wrong horse", &parsed)
            .is_err());
        let again = hasher.hash(&password("correct horse")).await.unwrap();
        assert_ne!(phc, again, "every hash has its own salt");
    }

    #[tokio::test]
    async fn default_owasp_parameters_are_used() {
        let hasher = PasswordHasher::new(&HashingSettings::owasp()).unwrap();
        let phc = hasher.hash(&password("correct horse")).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
    }

    #[tokio::test]
    async fn answers_overloaded_instead_of_queueing_past_the_limit() {
        let hasher = PasswordHasher::new(&cheap(1, 1)).unwrap();
        // Two places taken (one slot + one queued): the next request is refused at once.
        let _a = hasher.reserve().unwrap();
        let _b = hasher.reserve().unwrap();
        assert!(matches!(
            hasher.hash(&password("correct horse")).await,
            Err(HashError::Overloaded)
        ));
        drop(_b);
        assert!(
            hasher.hash(&password("correct horse")).await.is_ok(),
            "a freed place is usable again"
        );
        assert_eq!(
            hasher.in_flight.load(Ordering::Acquire),
            1,
            "places are released"
        );
    }
}

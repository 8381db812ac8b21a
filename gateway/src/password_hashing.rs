//! argon2id password hashing that cannot stall the async runtime.
//!
//! A hash costs tens of milliseconds of CPU and ~19 MiB of memory by design. Each one runs
//! on a blocking thread (`spawn_blocking`), at most `concurrency` at a time (a semaphore),
//! and at most `queue_limit` more may wait: a burst beyond that is answered 503 at once,
//! because a request queued for seconds is worse than one told to come back.
//!
//! The 19 MiB working memory is allocated once per slot and reused. Allocating it per hash
//! made glibc keep every freed block in the arenas of the blocking threads that had hashed:
//! the benchmark measured 846 MiB resident under load for what needs `concurrency` × 19 MiB.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::time::Instant;

use reliable_messaging::consumer::StageTimings;
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
    /// Working memory of the slots not hashing right now; never more than `concurrency`.
    memory: Arc<std::sync::Mutex<Vec<Vec<Block>>>>,
    /// Requests hashing or waiting for a slot.
    in_flight: AtomicUsize,
    max_in_flight: usize,
    /// Where `hash_queue` (waiting for a slot) and `hash` (argon2id itself) are recorded.
    timings: Arc<StageTimings>,
}

impl PasswordHasher {
    pub fn new(settings: &HashingSettings) -> Result<Self, InvalidParams> {
        let params = Params::new(settings.memory_kib, settings.iterations, settings.parallelism, None)
            .map_err(|e| InvalidParams(e.to_string()))?;
        let concurrency = settings.concurrency.max(1);
        Ok(Self {
            params,
            slots: Arc::new(Semaphore::new(concurrency)),
            memory: Arc::default(),
            in_flight: AtomicUsize::new(0),
            max_in_flight: concurrency + settings.queue_limit,
            timings: Arc::default(),
        })
    }

    /// Records the queueing and hashing time of every hash in `timings`.
    pub fn with_timings(mut self, timings: Arc<StageTimings>) -> Self {
        self.timings = timings;
        self
    }

    /// The PHC string (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`) of `password`, with a
    /// fresh random salt.
    pub async fn hash(&self, password: &Password) -> Result<String, HashError> {
        let _place = self.reserve()?;
        let queued = Instant::now();
        let permit = self.slots.clone().acquire_owned().await.map_err(|e| HashError::Failed(e.to_string()))?;
        self.timings.record("hash_queue", queued.elapsed());
        let timings = self.timings.clone();
        let params = self.params.clone();
        let password = password.clone();
        let memory = self.memory.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            // The semaphore admits at most `concurrency` of us, so the pool never grows past it.
            let mut blocks = memory
                .lock()
                .expect("memory pool")
                .pop()
                .unwrap_or_else(|| vec![Block::default(); params.block_count()]);
            let hashing = Instant::now();
            let phc = phc_string(&params, password.expose().as_bytes(), &mut blocks);
            timings.record("hash", hashing.elapsed());
            memory.lock().expect("memory pool").push(blocks);
            phc
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

/// argon2id of `password` with a fresh random salt, as a PHC string
/// (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`), computed in `blocks`.
fn phc_string(params: &Params, password: &[u8], blocks: &mut [Block]) -> Result<String, HashError> {
    let failed = |e: &dyn std::fmt::Display| HashError::Failed(e.to_string());
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_bytes).map_err(|e| failed(&e))?;
    let output_len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let hash = Output::init_with(output_len, |out| {
        argon2
            .hash_password_into_with_memory(password, salt_bytes, out, &mut *blocks)
            .map_err(|_| argon2::password_hash::Error::Crypto)
    })
    .map_err(|e| failed(&e))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(|e| failed(&e))?,
        salt: Some(salt.as_salt()),
        hash: Some(hash),
    };
    Ok(phc.to_string())
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
    use argon2::PasswordVerifier;

    fn cheap(concurrency: usize, queue_limit: usize) -> HashingSettings {
        HashingSettings { memory_kib: 64, iterations: 1, parallelism: 1, concurrency, queue_limit }
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
        assert!(Argon2::default().verify_password(b"correct horse", &parsed).is_ok());
        assert!(Argon2::default().verify_password(b"wrong horse", &parsed).is_err());
        let again = hasher.hash(&password("correct horse")).await.unwrap();
        assert_ne!(phc, again, "every hash has its own salt");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn working_memory_is_reused_never_more_than_one_block_per_slot() {
        let hasher = Arc::new(PasswordHasher::new(&cheap(2, 100)).unwrap());
        let hashes = futures::future::join_all((0..20).map(|_| {
            let hasher = hasher.clone();
            async move { hasher.hash(&password("correct horse")).await.unwrap() }
        }))
        .await;
        assert_eq!(hashes.len(), 20);
        let pooled = hasher.memory.lock().unwrap().len();
        assert!((1..=2).contains(&pooled), "{pooled} blocks for 2 slots");
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
        assert!(matches!(hasher.hash(&password("correct horse")).await, Err(HashError::Overloaded)));
        drop(_b);
        assert!(hasher.hash(&password("correct horse")).await.is_ok(), "a freed place is usable again");
        assert_eq!(hasher.in_flight.load(Ordering::Acquire), 1, "places are released");
    }
}

//! argon2id with the gateway's parameters, straight on every core: the ceiling of sign-ups per
//! second, since every sign-up costs exactly one hash. The same crate and version as the
//! gateway, built with the same profile.

use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::SaltString;
use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, Version};
use gateway::configuration::HashingSettings;

#[derive(Debug, Clone, Copy)]
pub struct HashLimits {
    /// Hashes per second with `threads` threads hashing back to back.
    pub hashes_per_sec: f64,
    pub threads: usize,
    /// Median time of one hash on one otherwise idle thread.
    pub one_hash: Duration,
}

/// The gateway's default parameters (OWASP's argon2id recommendation).
pub fn gateway_params() -> Params {
    Params::new(
        HashingSettings::OWASP_MEMORY_KIB,
        HashingSettings::OWASP_ITERATIONS,
        HashingSettings::OWASP_PARALLELISM,
        None,
    )
    .expect("the gateway's parameters are valid")
}

fn hash_once(hasher: &Argon2<'_>, password: &[u8]) {
    let salt = SaltString::generate(&mut OsRng);
    let hash = hasher.hash_password(password, &salt).expect("hashing succeeds");
    std::hint::black_box(hash);
}

/// Median time of `samples` hashes on one thread (after one warm-up hash). Blocking.
pub fn one_hash(samples: usize) -> Duration {
    let hasher = Argon2::new(Algorithm::Argon2id, Version::V0x13, gateway_params());
    hash_once(&hasher, b"warm-up password");
    let mut times: Vec<Duration> = (0..samples.max(1))
        .map(|i| {
            let t = Instant::now();
            hash_once(&hasher, format!("single password {i}").as_bytes());
            t.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

/// Blocking: run it on a blocking thread.
pub fn measure(threads: usize, duration: Duration, single_samples: usize) -> HashLimits {
    let hasher = Argon2::new(Algorithm::Argon2id, Version::V0x13, gateway_params());
    // Warm-up: page in the 19 MiB working memory once per thread before timing.
    hash_once(&hasher, b"warm-up password");

    let one_hash = one_hash(single_samples);

    let started = Instant::now();
    let counts: Vec<u64> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads.max(1))
            .map(|t| {
                scope.spawn(move || {
                    let hasher = Argon2::new(Algorithm::Argon2id, Version::V0x13, gateway_params());
                    let mut n = 0u64;
                    while started.elapsed() < duration {
                        hash_once(&hasher, format!("password {t} {n}").as_bytes());
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("hashing thread")).collect()
    });
    let elapsed = started.elapsed().as_secs_f64();
    HashLimits { hashes_per_sec: counts.iter().sum::<u64>() as f64 / elapsed, threads: threads.max(1), one_hash }
}

//! argon2id with the gateway's parameters, straight on every core: the ceiling of sign-ups per
//! second, since every sign-up costs exactly one hash. The same crate and version as the
//! gateway, built with the same profile.

use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::SaltString;
use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, Version};
use gateway::configuration::HashingSettings;

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

/// Hashes per second with `threads` threads hashing back to back for `duration` (after one
/// warm-up hash per thread, which pages in its 19 MiB working memory). Blocking: run it on a
/// blocking thread.
pub fn rate(threads: usize, duration: Duration) -> f64 {
    let threads = threads.max(1);
    // Each thread's hashes ÷ its own time (its last hash ends after `duration`), summed.
    let barrier = std::sync::Barrier::new(threads);
    let started = std::sync::OnceLock::new();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (barrier, started) = (&barrier, &started);
                scope.spawn(move || {
                    let hasher = Argon2::new(Algorithm::Argon2id, Version::V0x13, gateway_params());
                    hash_once(&hasher, b"warm-up password");
                    barrier.wait();
                    let started: &Instant = started.get_or_init(Instant::now);
                    let mut n = 0u64;
                    while started.elapsed() < duration {
                        hash_once(&hasher, format!("password {t} {n}").as_bytes());
                        n += 1;
                    }
                    (n, started.elapsed())
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("hashing thread"))
            .map(|(n, elapsed)| n as f64 / elapsed.as_secs_f64())
            .sum()
    })
}

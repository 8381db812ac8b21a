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

/// The gateway's half-load test with nothing but the hashing: requests arrive at a constant
/// `rate` for `duration`, `threads` threads hash them in arrival order (the gateway's hashing
/// slots), and each latency runs from the request's intended arrival to its hash's end, as the
/// load generator measures the gateway. Blocking. What this reports is the latency a gateway
/// with free HTTP and a free broker would have on this machine at this rate.
pub fn open_loop(rate: f64, threads: usize, duration: Duration) -> hdrhistogram::Histogram<u64> {
    let threads = threads.max(1);
    let requests = (rate * duration.as_secs_f64()).ceil().max(1.0) as usize;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let next = std::sync::atomic::AtomicUsize::new(0);
    // Bounded: `saturating_record` clamps to the bounds, and an auto-resizing histogram starts
    // with an upper bound of 2 µs.
    let latencies = std::sync::Mutex::new(
        hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds: 1 µs to 60 s"),
    );
    let barrier = std::sync::Barrier::new(threads);
    let started = std::sync::OnceLock::new();
    std::thread::scope(|scope| {
        for t in 0..threads {
            let (next, latencies, barrier, started) = (&next, &latencies, &barrier, &started);
            scope.spawn(move || {
                let hasher = Argon2::new(Algorithm::Argon2id, Version::V0x13, gateway_params());
                hash_once(&hasher, b"warm-up password");
                barrier.wait();
                let started: &Instant = started.get_or_init(Instant::now);
                loop {
                    // The next request in arrival order; a free slot waits for its arrival.
                    let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if n >= requests {
                        break;
                    }
                    let arrival = *started + interval * n as u32;
                    if let Some(wait) = arrival.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    hash_once(&hasher, format!("password {t} {n}").as_bytes());
                    let latency = arrival.elapsed().as_micros() as u64;
                    latencies.lock().unwrap_or_else(|p| p.into_inner()).saturating_record(latency);
                }
            });
        }
    });
    latencies.into_inner().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_open_loop_hashes_every_arrival_and_times_it_from_its_arrival() {
        let latencies = open_loop(40.0, 2, Duration::from_millis(500));
        assert_eq!(latencies.len(), 20, "one latency per arrival");
        // Every latency holds at least one whole hash (a few milliseconds even in release).
        assert!(latencies.min() >= 1_000, "min {} µs", latencies.min());
    }
}

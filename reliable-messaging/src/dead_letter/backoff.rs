//! Retry delays: constant or exponential, with optional jitter.

use std::time::Duration;

use rand::Rng;

/// A delay schedule. `delay(0)` is the delay before the first retry.
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    pub shape: BackoffShape,
    /// Fraction of each delay to randomise, 0.0 (none) to 1.0; spreads retries of a burst so
    /// they do not hit a recovering database at the same instant.
    pub jitter: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum BackoffShape {
    Constant(Duration),
    Exponential { initial: Duration, multiplier: f64, max: Duration },
}

impl Default for Backoff {
    /// Exponential from 1 s, doubling, capped at 60 s, no jitter: the article's "smart delay".
    fn default() -> Self {
        Backoff {
            shape: BackoffShape::Exponential {
                initial: Duration::from_secs(1),
                multiplier: 2.0,
                max: Duration::from_secs(60),
            },
            jitter: 0.0,
        }
    }
}

impl Backoff {
    pub fn constant(delay: Duration) -> Self {
        Backoff { shape: BackoffShape::Constant(delay), jitter: 0.0 }
    }

    pub fn exponential(initial: Duration, multiplier: f64, max: Duration) -> Self {
        Backoff { shape: BackoffShape::Exponential { initial, multiplier, max }, jitter: 0.0 }
    }

    pub fn with_jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter.clamp(0.0, 1.0);
        self
    }

    /// The nominal delay before retry number `attempt + 1`, without jitter.
    pub fn nominal(&self, attempt: u32) -> Duration {
        match &self.shape {
            BackoffShape::Constant(d) => *d,
            BackoffShape::Exponential { initial, multiplier, max } => {
                let factor = multiplier.max(1.0).powi(attempt.min(1_000) as i32);
                let secs = (initial.as_secs_f64() * factor).min(max.as_secs_f64());
                Duration::from_secs_f64(secs)
            }
        }
    }

    /// The delay to actually wait: the nominal delay minus up to `jitter` of it, so the
    /// schedule never waits longer than configured.
    pub fn delay(&self, attempt: u32) -> Duration {
        let nominal = self.nominal(attempt);
        if self.jitter <= 0.0 {
            return nominal;
        }
        let cut = rand::thread_rng().gen_range(0.0..=self.jitter);
        nominal.mul_f64(1.0 - cut)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_doubles_then_caps() {
        let b = Backoff::default();
        let secs: Vec<u64> = (0..8).map(|a| b.nominal(a).as_secs()).collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 16, 32, 60, 60]);
    }

    #[test]
    fn constant_is_constant() {
        let b = Backoff::constant(Duration::from_millis(250));
        assert_eq!(b.delay(0), b.delay(7));
        assert_eq!(b.delay(3), Duration::from_millis(250));
    }

    #[test]
    fn jitter_never_exceeds_nominal_and_varies() {
        let b = Backoff::exponential(Duration::from_secs(10), 2.0, Duration::from_secs(60)).with_jitter(0.5);
        let samples: Vec<Duration> = (0..50).map(|_| b.delay(0)).collect();
        assert!(samples.iter().all(|d| *d <= Duration::from_secs(10) && *d >= Duration::from_secs(5)));
        assert!(samples.iter().any(|d| *d != samples[0]), "jitter should vary the delay");
    }
}

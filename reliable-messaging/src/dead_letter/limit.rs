//! The flood limit on dead letters: when too many messages in a row, or too large a share of
//! the recent ones, fail permanently, the consumer halts instead of dead-lettering the rest.
//!
//! A bad deploy (a handler that fails every message, a schema change the code does not know)
//! would otherwise park the whole topic at full speed, and an operator would have to redrive
//! every message by hand. Halting leaves the rest uncommitted on the topic: after the fix, a
//! restart resumes exactly where the consumer stopped. On by default, unlike arroyo's
//! `DlqLimit`; 0 disables a limit.

use std::collections::VecDeque;

/// How many permanent failures the consumer dead-letters before it halts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeadLetterLimit {
    /// Halt at the message that would make this many + 1 permanent failures in a row; at most
    /// this many reach the DLQ in a row. 0: no limit. Default 100.
    pub max_consecutive: u32,
    /// Halt when more than `max_share` of the last `window` messages failed permanently
    /// (judged once `window` messages were seen). 0: no window. Default 1,000.
    pub window: u32,
    /// Default 0.5.
    pub max_share: f64,
}

impl Default for DeadLetterLimit {
    fn default() -> Self {
        Self { max_consecutive: 100, window: 1_000, max_share: 0.5 }
    }
}

impl DeadLetterLimit {
    /// No limit at all (what tests of the dead-letter path itself use).
    pub fn disabled() -> Self {
        Self { max_consecutive: 0, window: 0, max_share: 1.0 }
    }
}

/// Why a consumer halted, for readiness and the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaltReason {
    pub summary: String,
    /// The reasons of the first permanent failures of the run that tripped the limit.
    pub first_failures: Vec<String>,
}

impl std::fmt::Display for HaltReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.summary)?;
        if let Some(first) = self.first_failures.first() {
            write!(f, "; first failure: {first}")?;
        }
        Ok(())
    }
}

/// How many first failure reasons are kept for the halt report.
const FIRST_FAILURES_KEPT: usize = 5;

/// Follows the outcomes in offset order and says when the limit trips.
#[derive(Debug)]
pub struct FloodGuard {
    limit: DeadLetterLimit,
    consecutive: u32,
    recent: VecDeque<bool>,
    permanent_in_window: u32,
    /// Reasons of the current run of permanent failures (its first few).
    run_reasons: Vec<String>,
}

impl FloodGuard {
    pub fn new(limit: DeadLetterLimit) -> Self {
        Self { limit, consecutive: 0, recent: VecDeque::new(), permanent_in_window: 0, run_reasons: Vec::new() }
    }

    /// Records the next message's outcome: `Some(reason)` when it failed permanently. Returns
    /// why to halt when this message must not be dead-lettered; it is then not recorded, so
    /// the guard says the same again for it after a restart.
    pub fn observe(&mut self, permanent_failure: Option<&str>) -> Option<HaltReason> {
        let failed = permanent_failure.is_some();
        if failed {
            if self.limit.max_consecutive > 0 && self.consecutive >= self.limit.max_consecutive {
                return Some(self.halt(format!(
                    "{} consecutive messages failed permanently (limit DLQ_MAX_CONSECUTIVE_PERMANENT={})",
                    self.consecutive, self.limit.max_consecutive
                )));
            }
            if self.window_would_overflow() {
                return Some(self.halt(format!(
                    "more than {:.0}% of the last {} messages failed permanently (limits DLQ_PERMANENT_WINDOW, DLQ_MAX_PERMANENT_SHARE)",
                    self.limit.max_share * 100.0,
                    self.limit.window
                )));
            }
        }
        self.record(permanent_failure);
        None
    }

    fn window_would_overflow(&self) -> bool {
        let window = self.limit.window as usize;
        if window == 0 || self.recent.len() + 1 < window {
            return false;
        }
        // The window after this failure is recorded (the oldest drops out if it is full).
        let dropped = self.recent.len() >= window && self.recent.front().copied().unwrap_or(false);
        let permanent = self.permanent_in_window + 1 - u32::from(dropped);
        f64::from(permanent) > self.limit.max_share * f64::from(self.limit.window)
    }

    fn record(&mut self, permanent_failure: Option<&str>) {
        match permanent_failure {
            Some(reason) => {
                self.consecutive += 1;
                if self.run_reasons.len() < FIRST_FAILURES_KEPT {
                    self.run_reasons.push(reason.to_owned());
                }
            }
            None => {
                self.consecutive = 0;
                self.run_reasons.clear();
            }
        }
        if self.limit.window > 0 {
            let failed = permanent_failure.is_some();
            self.recent.push_back(failed);
            self.permanent_in_window += u32::from(failed);
            if self.recent.len() > self.limit.window as usize && self.recent.pop_front() == Some(true) {
                self.permanent_in_window -= 1;
            }
        }
    }

    fn halt(&self, summary: String) -> HaltReason {
        HaltReason { summary, first_failures: self.run_reasons.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_of_permanent_failures_trips_after_the_limit() {
        let mut guard = FloodGuard::new(DeadLetterLimit { max_consecutive: 3, window: 0, max_share: 1.0 });
        for i in 0..3 {
            assert_eq!(guard.observe(Some(&format!("bad {i}"))), None, "the first three go to the DLQ");
        }
        let halt = guard.observe(Some("bad 3")).expect("the fourth halts");
        assert!(halt.summary.contains("3 consecutive"), "{halt}");
        assert_eq!(halt.first_failures, vec!["bad 0", "bad 1", "bad 2"]);
        assert!(guard.observe(Some("bad 3")).is_some(), "it keeps saying so for the same message");
    }

    #[test]
    fn a_success_resets_the_run() {
        let mut guard = FloodGuard::new(DeadLetterLimit { max_consecutive: 2, window: 0, max_share: 1.0 });
        for _ in 0..10 {
            assert_eq!(guard.observe(Some("bad")), None);
            assert_eq!(guard.observe(Some("bad")), None);
            assert_eq!(guard.observe(None), None);
        }
    }

    #[test]
    fn too_large_a_share_of_the_window_trips() {
        let mut guard = FloodGuard::new(DeadLetterLimit { max_consecutive: 0, window: 10, max_share: 0.5 });
        // Alternating: 50% exactly, never more.
        for _ in 0..20 {
            assert_eq!(guard.observe(Some("bad")), None);
            assert_eq!(guard.observe(None), None);
        }
        // Two in a row now make 6 of the last 10.
        assert_eq!(guard.observe(Some("bad")), None, "5 of 10");
        assert!(guard.observe(Some("bad")).is_some(), "6 of 10 > 50%");
    }

    #[test]
    fn zero_disables() {
        let mut guard = FloodGuard::new(DeadLetterLimit::disabled());
        for _ in 0..10_000 {
            assert_eq!(guard.observe(Some("bad")), None);
        }
    }
}

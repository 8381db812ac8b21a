//! Where a consumer's time goes: wall-clock seconds and calls per stage (the consumer's own
//! `poll`, `handle`, `dead_letter`, `commit`, and any stage a handler records, such as
//! `decode` or `insert`), served on `/metrics` as `<prefix>_stage_seconds_total{stage}` and
//! `<prefix>_stage_calls_total{stage}` (`crate::service::endpoints::metrics` reads them at scrape time).
//!
//! This is how the benchmark's drain profile is read: a drain that falls short of the raw
//! database limit shows which stage holds the time. Stages of the pipeline overlap (the next
//! batch is polled while this one is handled; partitions are handled concurrently), so their
//! sum is not the elapsed time; compare each stage with the drain's duration instead.

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Cumulative timings per stage; cheap enough to record once per batch or per statement.
#[derive(Debug, Default)]
pub struct StageTimings {
    // A handful of stages, recorded once per batch: a locked vector beats a map here.
    stages: Mutex<Vec<Stage>>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stage {
    pub name: &'static str,
    pub calls: u64,
    pub total: Duration,
}

impl StageTimings {
    /// Adds one call of `stage` that took `elapsed`.
    pub fn record(&self, stage: &'static str, elapsed: Duration) {
        let mut stages = self.stages.lock().unwrap_or_else(|p| p.into_inner());
        match stages.iter_mut().find(|s| s.name == stage) {
            Some(s) => {
                s.calls += 1;
                s.total += elapsed;
            }
            None => stages.push(Stage { name: stage, calls: 1, total: elapsed }),
        }
    }

    /// Runs `work` and records its wall-clock time under `stage`.
    pub async fn time<T>(&self, stage: &'static str, work: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let result = work.await;
        self.record(stage, started.elapsed());
        result
    }

    /// Every stage recorded so far, in the order first seen.
    pub fn snapshot(&self) -> Vec<Stage> {
        self.stages.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accumulates_per_stage_in_first_seen_order() {
        let t = StageTimings::default();
        assert!(t.snapshot().is_empty());
        t.record("poll", Duration::from_millis(3));
        t.record("insert", Duration::from_millis(10));
        t.record("poll", Duration::from_millis(2));
        let s = t.snapshot();
        assert_eq!(s.iter().map(|s| s.name).collect::<Vec<_>>(), ["poll", "insert"]);
        assert_eq!((s[0].calls, s[0].total), (2, Duration::from_millis(5)));
    }

    #[tokio::test]
    async fn time_records_the_wrapped_work() {
        let t = StageTimings::default();
        let v = t
            .time("sleep", async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                7
            })
            .await;
        assert_eq!(v, 7);
        assert!(t.snapshot()[0].total >= Duration::from_millis(20));
    }
}

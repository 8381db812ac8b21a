//! Where a consumer's time goes: wall-clock seconds and calls per stage (the consumer's own
//! `poll`, `handle`, `dead_letter`, `commit`, and any stage a handler records, such as
//! `decode` or `insert`), served on `/metrics` as `<prefix>_stage_seconds_total{stage}`.
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

    /// Two counter families, `<prefix>_stage_seconds_total` and `<prefix>_stage_calls_total`,
    /// one series per stage (nothing when no stage was recorded yet).
    pub fn render_prometheus(&self, prefix: &str) -> String {
        let stages = self.snapshot();
        if stages.is_empty() {
            return String::new();
        }
        let mut out = format!(
            "# HELP {prefix}_stage_seconds_total Wall-clock seconds spent per processing stage (stages overlap)\n# TYPE {prefix}_stage_seconds_total counter\n"
        );
        for s in &stages {
            out.push_str(&format!(
                "{prefix}_stage_seconds_total{{stage=\"{}\"}} {:.6}\n",
                s.name,
                s.total.as_secs_f64()
            ));
        }
        out.push_str(&format!(
            "# HELP {prefix}_stage_calls_total Times each processing stage ran\n# TYPE {prefix}_stage_calls_total counter\n"
        ));
        for s in &stages {
            out.push_str(&format!("{prefix}_stage_calls_total{{stage=\"{}\"}} {}\n", s.name, s.calls));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accumulates_per_stage_in_first_seen_order_and_renders_both_families() {
        let t = StageTimings::default();
        assert_eq!(t.render_prometheus("svc"), "");
        t.record("poll", Duration::from_millis(3));
        t.record("insert", Duration::from_millis(10));
        t.record("poll", Duration::from_millis(2));
        let s = t.snapshot();
        assert_eq!(s.iter().map(|s| s.name).collect::<Vec<_>>(), ["poll", "insert"]);
        assert_eq!((s[0].calls, s[0].total), (2, Duration::from_millis(5)));
        let text = t.render_prometheus("svc");
        assert!(text.contains("svc_stage_seconds_total{stage=\"poll\"} 0.005000\n"), "{text}");
        assert!(text.contains("svc_stage_calls_total{stage=\"insert\"} 1\n"), "{text}");
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

//! Where a service's time went during one measurement: the difference of its
//! `<prefix>_stage_seconds_total{stage}` and `_stage_calls_total{stage}` counters between two
//! scrapes. This is the profile BENCHMARKS.md cites for each cost it names; stages overlap
//! (polling runs beside handling), so they are compared with the measurement's length, not
//! summed.

use std::fmt;

use test_support::prometheus::Scrape;

/// Seconds and calls per stage between two scrapes, over `elapsed` seconds of measurement.
#[derive(Debug, Clone, Default)]
pub struct StageProfile {
    pub elapsed: f64,
    pub stages: Vec<(String, f64, f64)>,
    /// CPU seconds the whole process used meanwhile (`process_cpu_seconds_total`, 10 ms
    /// resolution), every thread included: what it took from the two cores the database and the
    /// broker share with it.
    pub cpu_seconds: Option<f64>,
}

impl StageProfile {
    pub fn between(prefix: &str, before: &Scrape, after: &Scrape, elapsed: f64) -> Self {
        let seconds = format!("{prefix}_stage_seconds_total");
        let calls = format!("{prefix}_stage_calls_total");
        let earlier =
            |name: &str, stage: &str| before.by_stage(name).iter().find(|(s, _)| s == stage).map_or(0.0, |(_, v)| *v);
        let stages = after
            .by_stage(&seconds)
            .iter()
            .map(|(stage, secs)| {
                let n = after.by_stage(&calls).iter().find(|(s, _)| s == stage).map_or(0.0, |(_, v)| *v);
                (stage.clone(), secs - earlier(&seconds, stage), n - earlier(&calls, stage))
            })
            .filter(|(_, _, n)| *n > 0.0)
            .collect();
        let cpu = "process_cpu_seconds_total";
        let cpu_seconds = after.get(cpu).zip(before.get(cpu)).map(|(a, b)| a - b);
        StageProfile { elapsed, stages, cpu_seconds }
    }
}

impl fmt::Display for StageProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.stages.is_empty() {
            return write!(f, "no stage timings exposed");
        }
        let parts: Vec<String> = self
            .stages
            .iter()
            .map(|(stage, secs, calls)| {
                format!(
                    "{stage} {secs:.3} s ({:.0} % of {:.2} s; {calls:.0} calls, {:.2} ms each)",
                    100.0 * secs / self.elapsed.max(f64::EPSILON),
                    self.elapsed,
                    1000.0 * secs / calls
                )
            })
            .collect();
        write!(f, "{}", parts.join("; "))?;
        if let Some(cpu) = self.cpu_seconds {
            write!(f, "; process CPU {cpu:.2} s ({:.0} % of one core)", 100.0 * cpu / self.elapsed.max(f64::EPSILON))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtracts_the_earlier_scrape_per_stage() {
        let before = Scrape::parse(
            "svc_stage_seconds_total{stage=\"insert\"} 1.0\nsvc_stage_calls_total{stage=\"insert\"} 10\n",
        );
        let after = Scrape::parse(
            "svc_stage_seconds_total{stage=\"insert\"} 3.0\nsvc_stage_seconds_total{stage=\"poll\"} 0.5\n\
             svc_stage_calls_total{stage=\"insert\"} 30\nsvc_stage_calls_total{stage=\"poll\"} 5\n\
             process_cpu_seconds_total 2.5\n",
        );
        let p = StageProfile::between("svc", &before, &after, 4.0);
        assert_eq!(p.stages, vec![("insert".to_owned(), 2.0, 20.0), ("poll".to_owned(), 0.5, 5.0)]);
        let text = p.to_string();
        assert!(text.starts_with("insert 2.000 s (50 % of 4.00 s; 20 calls, 100.00 ms each)"), "{text}");
        // Only the later scrape has the CPU counter: not a difference, so not shown.
        assert_eq!(p.cpu_seconds, None);
        let before = Scrape::parse("process_cpu_seconds_total 0.5\n");
        let p = StageProfile::between("svc", &before, &after, 4.0);
        assert!(p.to_string().ends_with("; process CPU 2.00 s (50 % of one core)"), "{p}");
    }
}

//! Kafka's own measuring tools, run through `scripts/local-services.sh kafka-tool` (the
//! broker's jars, `kafka-tools` 4.1): `ProducerPerformance` for what a producer with our
//! durability settings can push, `EndToEndLatency` for produce → consume → commit round trips.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::process::Command;

/// Runs Kafka CLI classes.
pub struct KafkaTools {
    pub script: PathBuf,
    pub bootstrap: String,
}

/// The summary line of ProducerPerformance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProducerPerf {
    pub records_per_sec: f64,
    pub avg_latency_ms: f64,
    pub p99_ms: f64,
}

/// The summary of EndToEndLatency.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EndToEnd {
    pub avg_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl KafkaTools {
    async fn run(&self, main_class: &str, args: &[String], timeout: Duration) -> anyhow::Result<String> {
        let mut command = Command::new(&self.script);
        command.arg("kafka-tool").arg(main_class).args(args).stdin(Stdio::null()).kill_on_drop(true);
        let output = tokio::time::timeout(timeout, command.output())
            .await
            .map_err(|_| anyhow::anyhow!("{main_class} did not finish within {timeout:?}"))?
            .with_context(|| format!("running {} kafka-tool {main_class}", self.script.display()))?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if !output.status.success() {
            bail!("{main_class} failed ({}): {}{}", output.status, stdout, String::from_utf8_lossy(&output.stderr));
        }
        Ok(stdout)
    }

    /// `records` records of `record_size` bytes, unthrottled, acks=all, idempotent.
    pub async fn producer_performance(
        &self,
        topic: &str,
        records: usize,
        record_size: usize,
    ) -> anyhow::Result<ProducerPerf> {
        let args: Vec<String> = [
            "--topic",
            topic,
            "--num-records",
            &records.to_string(),
            "--record-size",
            &record_size.to_string(),
            "--throughput",
            "-1",
            "--producer-props",
            &format!("bootstrap.servers={}", self.bootstrap),
            "acks=all",
            "enable.idempotence=true",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let out = self.run("org.apache.kafka.tools.ProducerPerformance", &args, Duration::from_secs(180)).await?;
        parse_producer_performance(&out)
            .with_context(|| format!("no summary line in ProducerPerformance output:\n{out}"))
    }

    /// `messages` round trips of `record_size` bytes with acks=all.
    pub async fn end_to_end_latency(
        &self,
        topic: &str,
        messages: usize,
        record_size: usize,
    ) -> anyhow::Result<EndToEnd> {
        let args: Vec<String> = vec![
            self.bootstrap.clone(),
            topic.to_owned(),
            messages.to_string(),
            "all".to_owned(),
            record_size.to_string(),
        ];
        let out = self.run("org.apache.kafka.tools.EndToEndLatency", &args, Duration::from_secs(180)).await?;
        parse_end_to_end(&out).with_context(|| format!("no latency summary in EndToEndLatency output:\n{out}"))
    }
}

/// `50000 records sent, 11778.6 records/sec (4.49 MB/sec), 340.81 ms avg latency, 738.00 ms max
/// latency, 382 ms 50th, 519 ms 95th, 533 ms 99th, 549 ms 99.9th.` (the last such line).
fn parse_producer_performance(output: &str) -> Option<ProducerPerf> {
    let line = output.lines().rev().find(|l| l.contains("records/sec") && l.contains("99th"))?;
    let number_before = |suffix: &str| -> Option<f64> {
        line.split(',').find(|part| part.trim().ends_with(suffix)).and_then(|part| {
            let part = part.trim();
            part.split_whitespace().rev().nth(suffix.split_whitespace().count()).and_then(|n| n.parse().ok())
        })
    };
    let records_per_sec = line.split(',').nth(1)?.split_whitespace().next()?.parse().ok()?;
    Some(ProducerPerf {
        records_per_sec,
        avg_latency_ms: number_before("ms avg latency")?,
        p99_ms: number_before("ms 99th")?,
    })
}

/// `Avg latency: 6.6520 ms` and `Percentiles: 50th = 4, 99th = 24, 99.9th = 131`.
fn parse_end_to_end(output: &str) -> Option<EndToEnd> {
    let avg_ms = output
        .lines()
        .find_map(|l| l.trim().strip_prefix("Avg latency:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())?;
    let percentiles = output.lines().find_map(|l| l.trim().strip_prefix("Percentiles:"))?;
    let percentile = |name: &str| -> Option<f64> {
        percentiles.split(',').find_map(|p| {
            let (k, v) = p.split_once('=')?;
            (k.trim() == name).then(|| v.trim().parse().ok()).flatten()
        })
    };
    Some(EndToEnd { avg_ms, p50_ms: percentile("50th")?, p99_ms: percentile("99th")? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_producer_performance() {
        let out = "1000 records sent, 200.0 records/sec (0.08 MB/sec), 9.0 ms avg latency, 50.0 ms max latency.\n\
                   20000 records sent, 11778.6 records/sec (4.49 MB/sec), 340.81 ms avg latency, 738.00 ms max latency, \
                   382 ms 50th, 519 ms 95th, 533 ms 99th, 549 ms 99.9th.\n";
        let p = parse_producer_performance(out).unwrap();
        assert_eq!(p, ProducerPerf { records_per_sec: 11778.6, avg_latency_ms: 340.81, p99_ms: 533.0 });
    }

    #[test]
    fn parses_end_to_end_latency() {
        let out = "0\t131.589848\nAvg latency: 6.6520 ms\nPercentiles: 50th = 4, 99th = 24, 99.9th = 131\n";
        assert_eq!(parse_end_to_end(out), Some(EndToEnd { avg_ms: 6.652, p50_ms: 4.0, p99_ms: 24.0 }));
        assert_eq!(parse_end_to_end("garbage"), None);
    }
}

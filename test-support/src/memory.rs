//! A process's resident memory, read from `/proc/<pid>/status`: once, or sampled for its peak.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Resident memory (VmRSS) of `pid` now, in MiB.
pub fn rss_mib(pid: u32) -> std::io::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_vm_rss_kib(&status)
        .map(|kib| kib as f64 / 1024.0)
        .ok_or_else(|| std::io::Error::other(format!("no VmRSS line in /proc/{pid}/status")))
}

fn parse_vm_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The highest resident memory seen while it runs (every 100 ms on a task of its own, until
/// dropped).
pub struct RssSampler {
    max_kib: Arc<AtomicU64>,
    running: Arc<AtomicBool>,
}

impl RssSampler {
    pub fn start(pid: u32) -> Self {
        let max_kib = Arc::new(AtomicU64::new(0));
        let running = Arc::new(AtomicBool::new(true));
        let (max, run) = (max_kib.clone(), running.clone());
        tokio::spawn(async move {
            while run.load(Ordering::Relaxed) {
                if let Ok(mib) = rss_mib(pid) {
                    max.fetch_max((mib * 1024.0) as u64, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        RssSampler { max_kib, running }
    }

    /// Peak so far, in MiB.
    pub fn peak_mib(&self) -> f64 {
        self.max_kib.load(Ordering::Relaxed) as f64 / 1024.0
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.running.store(false, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vm_rss() {
        let status = "Name:\tgateway\nVmPeak:\t  200000 kB\nVmRSS:\t   12345 kB\nThreads:\t9\n";
        assert_eq!(parse_vm_rss_kib(status), Some(12345));
        assert_eq!(parse_vm_rss_kib("Name:\tx\n"), None);
        assert!(rss_mib(std::process::id()).unwrap() > 0.0);
    }
}

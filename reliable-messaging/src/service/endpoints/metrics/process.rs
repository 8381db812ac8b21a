//! The standard process metrics (`process_cpu_seconds_total`, `process_resident_memory_bytes`,
//! `process_virtual_memory_bytes`, `process_open_fds`, `process_max_fds`,
//! `process_start_time_seconds`, `process_threads`), under the names every Prometheus client
//! uses, so existing dashboards work. Read from `/proc/self` at each scrape on Linux; on other
//! systems there is no `/proc` and the collector writes nothing rather than zeros.

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use super::family::{counter, gauge};

/// Clock ticks per second of the times in `/proc/<pid>/stat`: the kernel reports them in
/// USER_HZ, which is 100 on every architecture Linux runs Rust on (asking `sysconf` would
/// need unsafe code, which this workspace forbids).
const USER_HZ: f64 = 100.0;

/// Registered once per [`MetricsRegistry`](super::MetricsRegistry), at its root (no prefix).
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessCollector;

/// What one scrape read; a field is `None` when its source could not be read or parsed.
#[derive(Debug, Default, PartialEq)]
struct ProcessSample {
    cpu_seconds: Option<f64>,
    resident_bytes: Option<u64>,
    virtual_bytes: Option<u64>,
    open_fds: Option<u64>,
    max_fds: Option<u64>,
    start_time_seconds: Option<f64>,
    threads: Option<u64>,
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let Some(s) = sample() else { return Ok(()) };
        let e = &mut encoder;
        if let Some(v) = s.cpu_seconds {
            counter(e, "process_cpu_seconds", "Total user and system CPU time spent in seconds", v)?;
        }
        if let Some(v) = s.resident_bytes {
            gauge(e, "process_resident_memory_bytes", "Resident memory size in bytes", v)?;
        }
        if let Some(v) = s.virtual_bytes {
            gauge(e, "process_virtual_memory_bytes", "Virtual memory size in bytes", v)?;
        }
        if let Some(v) = s.open_fds {
            gauge(e, "process_open_fds", "Number of open file descriptors", v)?;
        }
        if let Some(v) = s.max_fds {
            gauge(e, "process_max_fds", "Maximum number of open file descriptors", v)?;
        }
        if let Some(v) = s.start_time_seconds {
            gauge(e, "process_start_time_seconds", "Start time of the process since the Unix epoch in seconds", v)?;
        }
        if let Some(v) = s.threads {
            gauge(e, "process_threads", "Number of OS threads in the process", v)?;
        }
        Ok(())
    }
}

#[cfg(target_os = "linux")]
fn sample() -> Option<ProcessSample> {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let stat = read("/proc/self/stat")?;
    let mut sample = parse_stat(&stat, read("/proc/stat").as_deref().and_then(boot_time));
    let status = read("/proc/self/status").unwrap_or_default();
    sample.resident_bytes = status_kib(&status, "VmRSS:").map(|kib| kib * 1024);
    sample.open_fds = std::fs::read_dir("/proc/self/fd").ok().map(|entries| entries.count() as u64);
    sample.max_fds = read("/proc/self/limits").as_deref().and_then(max_open_files);
    Some(sample)
}

#[cfg(not(target_os = "linux"))]
fn sample() -> Option<ProcessSample> {
    None
}

/// CPU time, threads, start time and virtual size from `/proc/self/stat`; `boot_time` is the
/// `btime` of `/proc/stat`, which the start time (ticks since boot) is relative to.
fn parse_stat(stat: &str, boot_time: Option<u64>) -> ProcessSample {
    // The command name (field 2) is in parentheses and may itself hold spaces or ')'.
    let fields: Vec<&str> = stat.rsplit_once(')').map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    // `fields[0]` is field 3 (state), so field n of proc(5) is `fields[n - 3]`.
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    ProcessSample {
        cpu_seconds: field(14).zip(field(15)).map(|(user, system)| (user + system) as f64 / USER_HZ),
        threads: field(20),
        start_time_seconds: field(22).zip(boot_time).map(|(ticks, boot)| boot as f64 + ticks as f64 / USER_HZ),
        virtual_bytes: field(23),
        ..ProcessSample::default()
    }
}

fn boot_time(proc_stat: &str) -> Option<u64> {
    proc_stat.lines().find_map(|l| l.strip_prefix("btime ")).and_then(|v| v.trim().parse().ok())
}

/// A `kB` line of `/proc/self/status`, such as `VmRSS:  10240 kB` (kB there means KiB).
fn status_kib(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|l| l.strip_prefix(key)).and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// The soft limit on open files; `None` when unlimited.
fn max_open_files(limits: &str) -> Option<u64> {
    limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_past_a_command_name_with_spaces_and_parentheses() {
        let stat = "4242 (my (odd) svc) S 1 4242 4242 0 -1 4194560 500 0 0 0 250 50 0 0 20 0 7 0 1500 \
                    123456789 2500 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0";
        let s = parse_stat(stat, Some(1_700_000_000));
        assert_eq!(s.cpu_seconds, Some(3.0));
        assert_eq!(s.threads, Some(7));
        assert_eq!(s.start_time_seconds, Some(1_700_000_015.0));
        assert_eq!(s.virtual_bytes, Some(123_456_789));
    }

    #[test]
    fn parses_status_limits_and_boot_time() {
        assert_eq!(status_kib("Name:\tsvc\nVmRSS:\t   10240 kB\nThreads:\t7\n", "VmRSS:"), Some(10_240));
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 1048576              files\n";
        assert_eq!(max_open_files(limits), Some(1024));
        assert_eq!(max_open_files("Max open files            unlimited            unlimited            files\n"), None);
        assert_eq!(boot_time("cpu  1 2 3\nbtime 1700000000\nprocesses 5\n"), Some(1_700_000_000));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_this_process_from_proc() {
        let s = sample().expect("/proc/self is readable on Linux");
        assert!(s.resident_bytes.is_some_and(|b| b > 0), "{s:?}");
        assert!(s.threads.is_some_and(|t| t >= 1), "{s:?}");
        assert!(s.open_fds.is_some_and(|n| n >= 3), "{s:?}");
        assert!(s.start_time_seconds.is_some_and(|t| t > 1_600_000_000.0), "{s:?}");
        assert!(s.cpu_seconds.is_some() && s.virtual_bytes.is_some() && s.max_fds.is_some(), "{s:?}");
    }
}

//! The real service binaries (release builds) as OS processes: started with the environment
//! variables they read, on ports of their own, timed until `/readyz` answers 200, sampled for
//! resident memory, scraped for their Prometheus counters, and always stopped again (SIGTERM,
//! then SIGKILL; `kill_on_drop` covers errors and panics).
//!
//! Why this is not the test harness (`integration_tests::harness`): the benchmark measures what
//! the harness only waits for. Start → ready is timed from the spawn with a 5 ms poll (the
//! harness polls every 100 ms, too coarse for that figure), and the processes are release builds
//! beside the `bench` binary, sampled for memory and scraped, with failures reported as errors
//! with the end of the log instead of test panics. Depending on `integration-tests` would also
//! compile the services' libraries and the test containers into the benchmark for a free port.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::process::{Child, Command};

use crate::prometheus::Scrape;

/// Where the binaries and their logs are.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub dir: PathBuf,
    pub log_dir: PathBuf,
}

impl Binaries {
    /// The directory of the running harness: `cargo build --release` puts the services next to it.
    pub fn beside_current_exe() -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("locating the harness binary")?;
        let dir = exe.parent().context("harness binary has no directory")?.to_path_buf();
        Ok(Binaries { log_dir: dir.join("bench-logs"), dir })
    }

    pub fn path(&self, name: &str) -> anyhow::Result<PathBuf> {
        let path = self.dir.join(name);
        if !path.exists() {
            bail!(
                "{} is missing: build it with `cargo build --release -p {name}` (scripts/bench.sh does)",
                path.display()
            );
        }
        Ok(path)
    }
}

pub struct Service {
    pub name: String,
    child: Child,
    pid: u32,
    /// `http://127.0.0.1:<port>` of its probes and `/metrics`.
    pub base_url: String,
    pub log_path: PathBuf,
    spawned_at: Instant,
    http: reqwest::Client,
}

/// A free loopback port (bound, read, released: a tiny race, acceptable on a test machine).
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

impl Service {
    /// Starts binary `name`; `addr_var` is the variable naming its HTTP address.
    pub fn spawn(binaries: &Binaries, name: &str, addr_var: &str, env: &[(&str, String)]) -> anyhow::Result<Service> {
        Self::spawn_under(&[], binaries, name, addr_var, env)
    }

    /// [`spawn`](Self::spawn) with the binary run by `wrapper` (e.g. `valgrind --tool=callgrind`);
    /// the pid is the wrapper's, which passes signals on to the binary.
    pub fn spawn_under(
        wrapper: &[String],
        binaries: &Binaries,
        name: &str,
        addr_var: &str,
        env: &[(&str, String)],
    ) -> anyhow::Result<Service> {
        let path = binaries.path(name)?;
        std::fs::create_dir_all(&binaries.log_dir)?;
        let port = free_port()?;
        let log_path = binaries.log_dir.join(format!("{name}-{}.log", uuid::Uuid::new_v4().simple()));
        let log = std::fs::File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(&path);
                command
            }
            None => Command::new(&path),
        };
        command
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env(addr_var, format!("127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        let spawned_at = Instant::now();
        let child = command.spawn().with_context(|| format!("starting {}", path.display()))?;
        let pid = child.id().context("the service exited at once")?;
        let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?;
        Ok(Service {
            name: name.to_owned(),
            child,
            pid,
            base_url: format!("http://127.0.0.1:{port}"),
            log_path,
            spawned_at,
            http,
        })
    }

    /// Polls `/readyz` every 5 ms; returns the time from spawning to the first 200.
    pub async fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<Duration> {
        let url = format!("{}/readyz", self.base_url);
        let deadline = self.spawned_at + timeout;
        loop {
            if let Ok(r) = self.http.get(&url).timeout(Duration::from_secs(4)).send().await {
                if r.status().is_success() {
                    return Ok(self.spawned_at.elapsed());
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                bail!("{} exited ({status}) before it was ready; last log lines:\n{}", self.name, self.log_tail(20));
            }
            if Instant::now() > deadline {
                bail!("{} not ready after {timeout:?}; last log lines:\n{}", self.name, self.log_tail(20));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Resident memory now, from `/proc/<pid>/status` (VmRSS).
    pub fn rss_mib(&self) -> anyhow::Result<f64> {
        rss_mib(self.pid)
    }

    /// Samples resident memory every 100 ms until the returned sampler is stopped.
    pub fn sample_rss(&self) -> RssSampler {
        RssSampler::start(self.pid)
    }

    pub async fn scrape(&self) -> anyhow::Result<Scrape> {
        let url = format!("{}/metrics", self.base_url);
        let mut response = self.http.get(&url).send().await;
        // A pooled keep-alive connection the service closed as idle just as it was reused
        // fails without the request having been read (seen once in a full run); a second
        // attempt opens a fresh connection. Any other error, and a second failure, count.
        if response.as_ref().is_err_and(|e| e.is_request()) {
            response = self.http.get(&url).send().await;
        }
        let text = response
            .and_then(|r| r.error_for_status())
            .with_context(|| format!("scraping {} /metrics", self.name))?
            .text()
            .await?;
        Ok(Scrape::parse(&text))
    }

    /// Fails if the process died (with the end of its log).
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        if let Ok(Some(status)) = self.child.try_wait() {
            bail!("{} exited ({status}); last log lines:\n{}", self.name, self.log_tail(20));
        }
        Ok(())
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// SIGTERM, up to 15 s for a clean exit, then SIGKILL.
    pub async fn stop(self) {
        self.stop_within(Duration::from_secs(15)).await;
    }

    /// SIGTERM, up to `patience` for a clean exit, then SIGKILL; whether it exited by itself.
    pub async fn stop_within(mut self, patience: Duration) -> bool {
        let _ = std::process::Command::new("kill").args(["-TERM", &self.pid.to_string()]).status();
        let clean = tokio::time::timeout(patience, self.child.wait()).await.is_ok();
        if !clean {
            eprintln!("[bench] {} did not stop within {patience:?} of SIGTERM: killing it", self.name);
            let _ = self.child.start_kill();
            let _ = self.child.wait().await;
        }
        clean
    }
}

pub fn rss_mib(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    parse_vm_rss_kib(&status).map(|kib| kib as f64 / 1024.0).context("no VmRSS line in /proc/<pid>/status")
}

fn parse_vm_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The highest resident memory seen while it ran.
pub struct RssSampler {
    max_kib: Arc<AtomicU64>,
    running: Arc<AtomicBool>,
}

impl RssSampler {
    fn start(pid: u32) -> Self {
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
        assert!(rss_mib(std::process::id()).unwrap() > 0.0);
    }
}

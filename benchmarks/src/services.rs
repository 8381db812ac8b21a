//! The real service binaries (release builds) as OS processes: started with the environment
//! variables they read, on ports of their own, timed until `/readyz` answers 200, sampled for
//! resident memory and scraped for their Prometheus counters.
//!
//! Why this wraps `test_support::process` rather than the test harness: the benchmark measures
//! what the harness only waits for. Start → ready is timed from the spawn with a 5 ms poll (the
//! harness polls every 100 ms, too coarse for that figure), and failures are errors with the end
//! of the log instead of test panics.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use test_support::memory::{rss_mib, RssSampler};
use test_support::process::ChildProcess;
use test_support::prometheus::{self, Scrape};

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
    process: ChildProcess,
    /// `http://127.0.0.1:<port>` of its probes and `/metrics`.
    pub base_url: String,
    http: reqwest::Client,
}

/// A free loopback port.
pub fn free_port() -> anyhow::Result<u16> {
    test_support::free_port().context("finding a free port")
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
        let port = free_port()?;
        let mut env = env.to_vec();
        env.push((addr_var, format!("127.0.0.1:{port}")));
        let process = ChildProcess::spawn(name, &path, wrapper, &env, &binaries.log_dir)
            .with_context(|| format!("starting {}", path.display()))?;
        let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?;
        Ok(Service { name: name.to_owned(), process, base_url: format!("http://127.0.0.1:{port}"), http })
    }

    /// Polls `/readyz` every 5 ms; returns the time from spawning to the first 200.
    pub async fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<Duration> {
        let url = format!("{}/readyz", self.base_url);
        let spawned_at = self.process.spawned_at();
        let deadline = spawned_at + timeout;
        loop {
            if let Ok(r) = self.http.get(&url).timeout(Duration::from_secs(4)).send().await {
                if r.status().is_success() {
                    return Ok(spawned_at.elapsed());
                }
            }
            self.ensure_running().context("before it was ready")?;
            if Instant::now() > deadline {
                bail!("{} not ready after {timeout:?}; last log lines:\n{}", self.name, self.log_tail(20));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Resident memory now, from `/proc/<pid>/status` (VmRSS).
    pub fn rss_mib(&self) -> anyhow::Result<f64> {
        Ok(rss_mib(self.process.pid())?)
    }

    /// Samples resident memory every 100 ms until the returned sampler is dropped.
    pub fn sample_rss(&self) -> RssSampler {
        RssSampler::start(self.process.pid())
    }

    pub async fn scrape(&self) -> anyhow::Result<Scrape> {
        let text = prometheus::fetch(&self.http, &self.base_url)
            .await
            .with_context(|| format!("scraping {} /metrics", self.name))?;
        Ok(Scrape::parse(&text))
    }

    /// Fails if the process died (with the end of its log).
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.process.exited() {
            bail!("{} exited ({status}); last log lines:\n{}", self.name, self.log_tail(20));
        }
        Ok(())
    }

    pub fn log_tail(&self, lines: usize) -> String {
        self.process.log_tail(lines)
    }

    /// SIGTERM, up to 15 s for a clean exit, then SIGKILL.
    pub async fn stop(self) {
        self.stop_within(Duration::from_secs(15)).await;
    }

    /// SIGTERM, up to `patience` for a clean exit, then SIGKILL; whether it exited by itself.
    pub async fn stop_within(mut self, patience: Duration) -> bool {
        let clean = self.process.terminate(patience).await.is_some();
        if !clean {
            eprintln!("[bench] {} did not stop within {patience:?} of SIGTERM: it was killed", self.name);
        }
        clean
    }
}

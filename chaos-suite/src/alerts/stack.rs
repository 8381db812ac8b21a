//! Prometheus and Alertmanager (Debian's binaries) as processes of the alert test: Prometheus
//! scrapes the services (targets from files the test rewrites when an instance moves) and
//! evaluates the time-compressed rules every second; Alertmanager sends every firing and
//! resolved alert at once to the test's webhook.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use integration_tests::harness::free_port;
use integration_tests::wait;

use super::compress::compress;

/// How much shorter than the shipped rules the test's rules are: `for: 2m` becomes 6 s.
pub const TIME_SCALE: u32 = 20;

/// The shipped rule files.
const RULES_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../observability/prometheus/rules");

pub struct Stack {
    pub prometheus_url: String,
    dir: PathBuf,
    prometheus: Child,
    alertmanager: Child,
}

impl Stack {
    /// Starts both, scraping `targets` (job name, port), with the compressed shipped rules and
    /// `extra_rules` (the negative control's rule file, YAML) beside them, and waits until
    /// Prometheus has scraped every target once.
    pub async fn start(targets: &[(&str, u16)], webhook_url: &str, extra_rules: &str) -> Result<Stack, String> {
        let dir = std::env::temp_dir().join(format!("alerts-{}", uuid::Uuid::new_v4().simple()));
        for sub in ["rules", "targets", "prometheus-data", "alertmanager-data"] {
            std::fs::create_dir_all(dir.join(sub)).map_err(|e| e.to_string())?;
        }
        write_compressed_rules(&dir.join("rules"))?;
        write(&dir.join("rules").join("negative-control.yml"), extra_rules);
        for (job, port) in targets {
            set_target(&dir, job, &[*port]);
        }
        let (prom_port, am_port) = (free_port(), free_port());
        write(&dir.join("alertmanager.yml"), &alertmanager_config(webhook_url));
        write(&dir.join("prometheus.yml"), &prometheus_config(&dir, targets, am_port));
        let alertmanager = spawn(
            &bin("ALERTMANAGER_BIN", "prometheus-alertmanager"),
            &[
                format!("--config.file={}", dir.join("alertmanager.yml").display()),
                format!("--storage.path={}", dir.join("alertmanager-data").display()),
                format!("--web.listen-address=127.0.0.1:{am_port}"),
                // No gossip: a single Alertmanager, and no port 9094 taken.
                "--cluster.listen-address=".into(),
            ],
            &dir.join("alertmanager.log"),
        )?;
        let prometheus = spawn(
            &bin("PROMETHEUS_BIN", "prometheus"),
            &[
                format!("--config.file={}", dir.join("prometheus.yml").display()),
                format!("--storage.tsdb.path={}", dir.join("prometheus-data").display()),
                format!("--web.listen-address=127.0.0.1:{prom_port}"),
            ],
            &dir.join("prometheus.log"),
        )?;
        let stack = Stack { prometheus_url: format!("http://127.0.0.1:{prom_port}"), dir, prometheus, alertmanager };
        let am_ready = format!("http://127.0.0.1:{am_port}/-/ready");
        if !integration_tests::harness::ready_within(&am_ready, Duration::from_secs(30)).await {
            return Err(format!("Alertmanager not ready: {}", stack.logs()));
        }
        let url = stack.prometheus_url.clone();
        let expected = targets.len();
        let scraped = wait::within(Duration::from_secs(30), || {
            let url = url.clone();
            async move { query_count(&url, "up == 1").await == Some(expected) }
        })
        .await;
        if !scraped {
            return Err(format!("Prometheus did not scrape all {expected} targets: {}", stack.logs()));
        }
        Ok(stack)
    }

    /// Points `job` at `ports` (an instance restarted on another port); Prometheus picks the
    /// file change up within a second.
    pub fn retarget(&self, job: &str, ports: &[u16]) {
        set_target(&self.dir, job, ports);
    }

    /// Waits (up to 15 s) until Prometheus scrapes exactly `count` targets of `job`: it reads
    /// a changed targets file a moment later, and an instance stopped before that would be
    /// scraped as down.
    pub async fn wait_targets(&self, job: &str, count: usize) -> bool {
        let url = format!("{}/api/v1/targets?state=active", self.prometheus_url);
        wait::within(Duration::from_secs(15), || {
            let url = url.clone();
            async move {
                let body: Option<serde_json::Value> = match reqwest::get(&url).await {
                    Ok(r) => r.json().await.ok(),
                    Err(_) => None,
                };
                let targets = body.as_ref().and_then(|b| b.pointer("/data/activeTargets")).and_then(|t| t.as_array());
                targets.is_some_and(|t| t.iter().filter(|t| t["labels"]["job"] == job).count() == count)
            }
        })
        .await
    }

    pub fn logs(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.join(f)).unwrap_or_default();
        let tail =
            |s: String| s.lines().rev().take(15).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
        format!("prometheus:\n{}\nalertmanager:\n{}", tail(read("prometheus.log")), tail(read("alertmanager.log")))
    }

    pub fn stop(mut self) {
        for child in [&mut self.prometheus, &mut self.alertmanager] {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// How many series the instant query `promql` returns; `None` while Prometheus does not answer.
pub async fn query_count(prometheus_url: &str, promql: &str) -> Option<usize> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(3)).build().ok()?;
    let response =
        client.get(format!("{prometheus_url}/api/v1/query")).query(&[("query", promql)]).send().await.ok()?;
    let body: serde_json::Value = response.json().await.ok()?;
    body.pointer("/data/result").and_then(|r| r.as_array()).map(Vec::len)
}

fn bin(variable: &str, default: &str) -> String {
    std::env::var(variable).unwrap_or_else(|_| default.to_owned())
}

fn spawn(program: &str, args: &[String], log: &Path) -> Result<Child, String> {
    let log = std::fs::File::create(log).map_err(|e| e.to_string())?;
    let err = log.try_clone().map_err(|e| e.to_string())?;
    Command::new(program).args(args).stdin(Stdio::null()).stdout(log).stderr(err).spawn().map_err(|e| {
        format!("cannot run {program} (scripts/observability/prometheus-tools.sh ensure installs it): {e}")
    })
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// The compressed copy of the shipped rule file `name` (for the negative control to copy from).
pub fn compressed_rules(name: &str) -> Result<String, String> {
    let path = Path::new(RULES_DIR).join(name);
    let source = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    compress(&source, TIME_SCALE).map_err(|e| format!("{}: {e}", path.display()))
}

fn write_compressed_rules(out: &Path) -> Result<(), String> {
    let entries = std::fs::read_dir(RULES_DIR).map_err(|e| format!("{RULES_DIR}: {e}"))?;
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.extension().is_some_and(|e| e == "yml") {
            let name = path.file_name().expect("file name");
            write(&out.join(name), &compressed_rules(&name.to_string_lossy())?);
        }
    }
    Ok(())
}

/// Replaces the file-SD targets of `job` atomically (a rename), so Prometheus never reads half a file.
fn set_target(dir: &Path, job: &str, ports: &[u16]) {
    let targets: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let json = serde_json::json!([{ "targets": targets }]).to_string();
    let tmp = dir.join("targets").join(format!(".{job}.json.tmp"));
    write(&tmp, &json);
    std::fs::rename(&tmp, dir.join("targets").join(format!("{job}.json"))).expect("rename the targets file");
}

fn prometheus_config(dir: &Path, targets: &[(&str, u16)], am_port: u16) -> String {
    let jobs: String = targets
        .iter()
        .map(|(job, _)| {
            format!(
                "  - job_name: {job}\n    file_sd_configs:\n      - files: ['{}']\n",
                dir.join("targets").join(format!("{job}.json")).display()
            )
        })
        .collect();
    format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         rule_files: ['{}/rules/*.yml']\n\
         alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{am_port}']\n\
         scrape_configs:\n{jobs}",
        dir.display()
    )
}

/// One group per alert and instance, sent as soon as it changes, resolved ones included.
fn alertmanager_config(webhook_url: &str) -> String {
    format!(
        "route:\n  receiver: test\n  group_by: ['alertname', 'job', 'instance']\n  group_wait: 0s\n  \
         group_interval: 1s\n  repeat_interval: 1h\n\
         receivers:\n  - name: test\n    webhook_configs:\n      - url: '{webhook_url}'\n        send_resolved: true\n"
    )
}

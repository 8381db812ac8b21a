//! The workspace's service binaries run as real OS processes, so tests can `kill -9` them
//! mid-message exactly as a crash would.
//!
//! The binaries must be built first (`cargo build --workspace --bins`; `scripts/test.sh`
//! does it). A workspace build has the registration-service's `negative-control` feature
//! (this crate asks for it), which the crash tests' auto-commit control needs. Each process logs to `target/test-logs/<name>-<id>.log`.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// A running service binary.
pub struct ServiceProcess {
    pub name: String,
    child: Child,
    pub log_path: PathBuf,
}

/// `target/<profile>/` of the running binary: test binaries live in `target/<profile>/deps/`,
/// the chaos and benchmark binaries in `target/<profile>/` itself.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().expect("binary directory");
    if dir.file_name().is_some_and(|n| n == "deps") { dir.parent().expect("target dir") } else { dir }.to_path_buf()
}

/// Path of a workspace binary; panics with the command to build it when missing.
pub fn binary_path(name: &str) -> PathBuf {
    let path = target_dir().join(name);
    assert!(
        path.exists(),
        "{} is not built. Run `cargo build --workspace --bins` first (scripts/test.sh does).",
        path.display()
    );
    path
}

impl ServiceProcess {
    /// Starts binary `name` with `env` on top of the test's environment.
    pub fn spawn(name: &str, env: &[(&str, String)]) -> ServiceProcess {
        Self::spawn_with_args(name, env, &[])
    }

    /// Like [`ServiceProcess::spawn`], with command-line `args` (a subcommand, or a hidden
    /// test-only flag such as the registration-service's `--max-schema-version`).
    pub fn spawn_with_args(name: &str, env: &[(&str, String)], args: &[&str]) -> ServiceProcess {
        let logs = target_dir().join("test-logs");
        std::fs::create_dir_all(&logs).expect("create test log dir");
        let log_path = logs.join(format!("{name}-{}.log", uuid::Uuid::new_v4().simple()));
        let log = std::fs::File::create(&log_path).expect("create log file");
        let mut command = Command::new(binary_path(name));
        command
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("LOG_FORMAT", "json")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .kill_on_drop(true);
        let child = command.spawn().unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        ServiceProcess { name: name.to_owned(), child, log_path }
    }

    pub fn pid(&self) -> i32 {
        self.child.id().expect("process still running") as i32
    }

    /// SIGKILL: no chance to commit, flush or say goodbye, like an out-of-memory kill.
    pub async fn kill_9(&mut self) {
        self.child.start_kill().ok();
        let _ = self.child.wait().await;
    }

    /// SIGTERM, then waits up to `grace` for a clean exit. Returns whether it exited cleanly.
    pub async fn terminate(&mut self, grace: Duration) -> bool {
        // SAFETY-free: kill(2) via the `kill` command keeps this crate free of libc bindings.
        let _ = std::process::Command::new("kill").args(["-TERM", &self.pid().to_string()]).status();
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(Ok(status)) => status.success(),
            _ => {
                self.kill_9().await;
                false
            }
        }
    }

    /// Waits up to `within` for the process to exit on its own; its exit status, or `None`
    /// if it is still running (it is left running).
    pub async fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        tokio::time::timeout(within, self.child.wait()).await.ok().and_then(Result::ok)
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The process's log so far, for assertion messages and log scans.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

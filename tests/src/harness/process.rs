//! The workspace's service binaries run as real OS processes, so tests can `kill -9` them
//! mid-message exactly as a crash would.
//!
//! The binaries must be built first (`cargo build --workspace --bins`; `scripts/test.sh`
//! does it). A workspace build has the registration-service's `negative-control` feature
//! (this crate asks for it), which the crash tests' auto-commit control needs. Each process
//! logs to `target/test-logs/<name>-<id>.log`.

use std::path::PathBuf;
use std::time::Duration;

use test_support::process::ChildProcess;

/// A running service binary.
pub struct ServiceProcess {
    pub name: String,
    pub log_path: PathBuf,
    process: ChildProcess,
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
    /// Starts binary `name` with `env` on top of the test's environment, logging JSON.
    pub fn spawn(name: &str, env: &[(&str, String)]) -> ServiceProcess {
        Self::spawn_with_args(name, env, &[])
    }

    /// Like [`ServiceProcess::spawn`], with command-line `args` (a subcommand, or a hidden
    /// test-only flag such as the registration-service's `--max-schema-version`).
    pub fn spawn_with_args(name: &str, env: &[(&str, String)], args: &[&str]) -> ServiceProcess {
        let mut env = env.to_vec();
        env.push(("LOG_FORMAT", "json".to_owned()));
        let logs = target_dir().join("test-logs");
        let process = ChildProcess::spawn_with_args(name, &binary_path(name), &[], args, &env, &logs)
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        ServiceProcess { name: name.to_owned(), log_path: process.log_path.clone(), process }
    }

    pub fn pid(&self) -> i32 {
        self.process.pid() as i32
    }

    /// SIGKILL: no chance to commit, flush or say goodbye, like an out-of-memory kill.
    pub async fn kill_9(&mut self) {
        self.process.kill_9().await;
    }

    /// SIGTERM, then waits up to `grace` for a clean exit. Returns whether it exited cleanly.
    pub async fn terminate(&mut self, grace: Duration) -> bool {
        self.process.terminate(grace).await.is_some_and(|status| status.success())
    }

    /// Waits up to `within` for the process to exit on its own; its exit status, or `None`
    /// if it is still running (it is left running).
    pub async fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        self.process.wait_exit(within).await
    }

    pub fn is_running(&mut self) -> bool {
        self.process.exited().is_none()
    }

    /// The process's log so far, for assertion messages and log scans.
    pub fn log(&self) -> String {
        self.process.log()
    }
}

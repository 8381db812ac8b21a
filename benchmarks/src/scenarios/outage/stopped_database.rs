//! The guard that brings the machine's shared MariaDB back after an outage round stopped it
//! (`local-services.sh db-stop`): [`StoppedDatabase::start`] is the normal way back, and
//! dropping the guard (an error, a phase timeout, Ctrl-C) runs `db-start` too. Also when the
//! restarted server was back for its clients ([`StoppedDatabase::start_watching`]).

use std::net::SocketAddr;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use test_support::local_services::LocalServices;

/// The shared MariaDB server, stopped by this run: dropping it (error, timeout, Ctrl-C) runs
/// `db-start` until the server answers again, so an interrupted run never leaves the database
/// of everyone on the machine down. [`StoppedDatabase::start`] is the normal way back.
pub struct StoppedDatabase {
    script: PathBuf,
    down: bool,
}

/// When a restarted server was back.
#[derive(Debug, Clone, Copy)]
pub struct Restart {
    /// When `db-start` was run.
    pub started_at: Instant,
    /// The first TCP connection the server accepted (polled every [`REACHABLE_POLL`] while
    /// `db-start` ran; MariaDB listens once it is ready for connections): from here its clients
    /// could use it again, and the outage figures count from here. `db-start` returns later, after
    /// its own checks; counted from that return, rounds whose service had drained most of the
    /// backlog meanwhile measured only the tail of the drain.
    pub reachable_at: Instant,
    /// When `db-start` returned.
    pub returned_at: Instant,
}

/// How often [`reachable`] tries to connect.
pub const REACHABLE_POLL: Duration = Duration::from_millis(5);

/// The first moment `addr` accepts a TCP connection.
pub async fn reachable(addr: SocketAddr) -> Instant {
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Instant::now();
        }
        tokio::time::sleep(REACHABLE_POLL).await;
    }
}

/// Attempts of `db-start` before giving up (each waits up to the script's DB_START_TIMEOUT).
const START_ATTEMPTS: usize = 3;
/// The pause between two attempts.
const RETRY_PAUSE: Duration = if cfg!(test) { Duration::from_millis(10) } else { Duration::from_secs(2) };

impl StoppedDatabase {
    /// Runs `db-stop`. The guard exists before the script runs: a `db-stop` that fails half-way
    /// (or is interrupted) is followed by a `db-start` too.
    pub async fn stop(script: &Path) -> anyhow::Result<StoppedDatabase> {
        let guard = StoppedDatabase { script: script.to_owned(), down: true };
        local_services(script, "db-stop").await?;
        Ok(guard)
    }

    /// [`StoppedDatabase::start`], watching `addr` meanwhile for the first connection the
    /// server accepts.
    pub async fn start_watching(self, addr: SocketAddr) -> anyhow::Result<Restart> {
        let started_at = Instant::now();
        let started = std::pin::pin!(self.start());
        let back = std::pin::pin!(reachable(addr));
        let (reachable_at, returned_at) = match futures::future::select(started, back).await {
            futures::future::Either::Left((started, _)) => {
                started?;
                let now = Instant::now();
                (now, now)
            }
            futures::future::Either::Right((reachable_at, started)) => {
                started.await?;
                (reachable_at, Instant::now())
            }
        };
        Ok(Restart { started_at, reachable_at, returned_at })
    }

    /// Runs `db-start` (up to [`START_ATTEMPTS`] times) until it succeeds.
    pub async fn start(mut self) -> anyhow::Result<()> {
        let mut last = None;
        for attempt in 1..=START_ATTEMPTS {
            match local_services(&self.script, "db-start").await {
                Ok(()) => {
                    self.down = false;
                    return Ok(());
                }
                Err(e) => {
                    eprintln!("[bench] db-start attempt {attempt} of {START_ATTEMPTS} failed: {e:#}");
                    last = Some(e);
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
            }
        }
        // Dropping `self` tries once more, synchronously, and says what to do if that fails too.
        Err(last.expect("at least one attempt").context("the database could not be started again after the outage"))
    }
}

impl Drop for StoppedDatabase {
    fn drop(&mut self) {
        if !self.down {
            return;
        }
        eprintln!(
            "[bench] the outage was interrupted: starting the database again ({} db-start)",
            self.script.display()
        );
        for attempt in 1..=START_ATTEMPTS {
            let status = std::process::Command::new(&self.script)
                .arg("db-start")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .process_group(0)
                .status();
            match status {
                Ok(s) if s.success() => {
                    eprintln!("[bench] the database is running again");
                    return;
                }
                other => eprintln!("[bench] db-start attempt {attempt} of {START_ATTEMPTS}: {other:?}"),
            }
            std::thread::sleep(RETRY_PAUSE);
        }
        eprintln!(
            "[bench] ERROR: the shared database is still DOWN; start it with `{} db-start`",
            self.script.display()
        );
    }
}

/// Runs `script command` (the `local-services.sh` of the checkout), in a process group of its
/// own: a Ctrl-C at the terminal interrupts the harness (whose guard then restarts the
/// database), not the script half-way through stopping or starting the server.
async fn local_services(script: &Path, command: &str) -> anyhow::Result<()> {
    LocalServices::at(script).run(&[command]).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in for `local-services.sh`: logs each command; `db-stop` fails when
    /// `fail-stop` exists, `db-start` fails as many times as `fail-start` has lines.
    fn fake_script(dir: &Path) -> PathBuf {
        let script = dir.join("local-services.sh");
        std::fs::write(
            &script,
            r#"#!/usr/bin/env bash
dir=$(dirname "$0")
echo "$1" >>"$dir/log"
case $1 in
  db-stop) [[ -e $dir/fail-stop ]] && { echo "stop failed" >&2; exit 5; } ;;
  db-start)
    if [[ -s $dir/fail-start ]]; then sed -i 1d "$dir/fail-start"; echo "start failed" >&2; exit 5; fi ;;
esac
exit 0
"#,
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        script
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("bench-outage-{name}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// The commands the stand-in ran; the directory is removed.
    fn log(dir: &Path) -> Vec<String> {
        let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default().lines().map(str::to_owned).collect();
        std::fs::remove_dir_all(dir).ok();
        log
    }

    #[tokio::test]
    async fn a_normal_outage_stops_and_starts_once() {
        let dir = temp_dir("normal");
        let stopped = StoppedDatabase::stop(&fake_script(&dir)).await.unwrap();
        stopped.start().await.unwrap();
        assert_eq!(log(&dir), ["db-stop", "db-start"]);
    }

    #[tokio::test]
    async fn an_interrupted_outage_still_starts_the_database() {
        // Ctrl-C, a phase timeout or an error drop the outage's future, and with it the guard.
        let dir = temp_dir("dropped");
        let stopped = StoppedDatabase::stop(&fake_script(&dir)).await.unwrap();
        drop(stopped);
        assert_eq!(log(&dir), ["db-stop", "db-start"]);
    }

    #[tokio::test]
    async fn a_failing_stop_is_followed_by_a_start() {
        let dir = temp_dir("failing-stop");
        std::fs::write(dir.join("fail-stop"), "").unwrap();
        let error = StoppedDatabase::stop(&fake_script(&dir)).await.err().expect("db-stop failed");
        assert!(format!("{error:#}").contains("stop failed"), "{error:#}");
        assert_eq!(log(&dir), ["db-stop", "db-start"]);
    }

    #[tokio::test]
    async fn a_failing_start_is_retried() {
        let dir = temp_dir("failing-start");
        std::fs::write(dir.join("fail-start"), "1\n2\n").unwrap();
        let stopped = StoppedDatabase::stop(&fake_script(&dir)).await.unwrap();
        stopped.start().await.unwrap();
        assert_eq!(log(&dir), ["db-stop", "db-start", "db-start", "db-start"]);
    }

    #[tokio::test]
    async fn a_start_that_keeps_failing_is_an_error_and_is_tried_again_on_drop() {
        let dir = temp_dir("broken-start");
        std::fs::write(dir.join("fail-start"), "1\n2\n3\n4\n").unwrap();
        let stopped = StoppedDatabase::stop(&fake_script(&dir)).await.unwrap();
        let error = stopped.start().await.expect_err("db-start kept failing");
        assert!(format!("{error:#}").contains("could not be started again"), "{error:#}");
        // Three attempts in `start`, then the guard's own until one succeeds (the fourth fails).
        assert_eq!(log(&dir), ["db-stop", "db-start", "db-start", "db-start", "db-start", "db-start"]);
    }
}

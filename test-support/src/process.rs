//! A service binary as a real OS process: its output in a log file of its own, stopped the way
//! the test asks (SIGTERM with a grace period, or SIGKILL as an out-of-memory kill would), and
//! never left behind (`kill_on_drop` covers errors and panics).

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

pub struct ChildProcess {
    pub name: String,
    pub log_path: PathBuf,
    child: Child,
    pid: u32,
    spawned_at: Instant,
}

impl ChildProcess {
    /// Starts `program` with `env` on top of the caller's environment, run by `wrapper` when
    /// it is not empty (e.g. `valgrind --tool=callgrind`: the pid is then the wrapper's, which
    /// passes signals on). Its output goes to `<log_dir>/<name>-<random>.log`.
    pub fn spawn(
        name: &str,
        program: &Path,
        wrapper: &[String],
        env: &[(&str, String)],
        log_dir: &Path,
    ) -> std::io::Result<ChildProcess> {
        Self::spawn_with_args(name, program, wrapper, &[], env, log_dir)
    }

    /// [`ChildProcess::spawn`] with command-line `args` for the program.
    pub fn spawn_with_args(
        name: &str,
        program: &Path,
        wrapper: &[String],
        args: &[&str],
        env: &[(&str, String)],
        log_dir: &Path,
    ) -> std::io::Result<ChildProcess> {
        std::fs::create_dir_all(log_dir)?;
        let log_path = log_dir.join(format!("{name}-{}.log", uuid::Uuid::new_v4().simple()));
        let log = std::fs::File::create(&log_path)?;
        let mut command = match wrapper.split_first() {
            Some((wrapper, args)) => {
                let mut command = Command::new(wrapper);
                command.args(args).arg(program);
                command
            }
            None => Command::new(program),
        };
        command
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        let spawned_at = Instant::now();
        let child = command.spawn()?;
        let pid = child.id().ok_or_else(|| std::io::Error::other(format!("{name} exited at once")))?;
        Ok(ChildProcess { name: name.to_owned(), log_path, child, pid, spawned_at })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn spawned_at(&self) -> Instant {
        self.spawned_at
    }

    /// Its exit status if it has exited; `None` while it runs.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGKILL: no chance to commit, flush or say goodbye.
    pub async fn kill_9(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// SIGTERM, then up to `grace` for it to exit by itself; SIGKILL after that. Its exit
    /// status when it exited by itself, `None` when it had to be killed.
    pub async fn terminate(&mut self, grace: Duration) -> Option<ExitStatus> {
        // kill(1) rather than libc keeps the workspace free of unsafe code.
        let _ = std::process::Command::new("kill").args(["-TERM", &self.pid.to_string()]).status();
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(Ok(status)) => Some(status),
            _ => {
                self.kill_9().await;
                None
            }
        }
    }

    /// Waits up to `within` for it to exit on its own (it is left running otherwise).
    pub async fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        tokio::time::timeout(within, self.child.wait()).await.ok().and_then(Result::ok)
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The last `lines` lines of its log, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `sh -c SCRIPT` as the wrapper of a program that never runs (`$0` names it).
    fn shell(script: &str, log_dir: &Path) -> ChildProcess {
        let wrapper = ["/bin/sh".to_owned(), "-c".to_owned(), script.to_owned()];
        ChildProcess::spawn("sh", Path::new("/bin/true"), &wrapper, &[("GREETING", "hello".into())], log_dir).unwrap()
    }

    #[tokio::test]
    async fn logs_its_output_and_says_how_it_ended() {
        let dir = std::env::temp_dir().join(format!("test-support-{}", uuid::Uuid::new_v4().simple()));

        let mut obedient = shell("echo $GREETING $0; exec sleep 30", &dir);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(obedient.exited().is_none());
        let status = obedient.terminate(Duration::from_secs(10)).await.expect("exits on SIGTERM");
        assert!(!status.success(), "ended by the signal");
        assert_eq!(obedient.log_tail(1), "hello /bin/true");

        let mut stubborn = shell("trap '' TERM; echo up; while :; do sleep 0.05; done", &dir);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(stubborn.terminate(Duration::from_millis(500)).await.is_none(), "needed SIGKILL");
        assert!(stubborn.exited().is_some());
        std::fs::remove_dir_all(&dir).ok();
    }
}

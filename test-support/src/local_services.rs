//! `scripts/local-services.sh`, the one way the harnesses start, stop and break the machine's
//! Kafka and MariaDB (`db-stop`, `kafka-start`, `broker-kill 2`, …) and learn their addresses
//! (`env`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// How long one verb may take: a start downloads nothing after the first `up`, but a broker
/// restart waits for the cluster.
const PATIENCE: Duration = Duration::from_secs(300);

#[derive(Debug, Clone)]
pub struct LocalServices {
    script: PathBuf,
    env: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum LocalServicesError {
    #[error("could not run {script} {verb}: {source}")]
    Spawn { script: String, verb: String, source: std::io::Error },
    #[error("{script} {verb} did not finish within {PATIENCE:?}")]
    TimedOut { script: String, verb: String },
    #[error("{script} {verb} failed ({status}):\n{output}")]
    Failed { script: String, verb: String, status: std::process::ExitStatus, output: String },
}

impl LocalServices {
    /// The script of this checkout.
    pub fn of_checkout() -> Self {
        Self::at(Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/local-services.sh"))
    }

    pub fn at(script: impl Into<PathBuf>) -> Self {
        LocalServices { script: script.into(), env: Vec::new() }
    }

    /// Runs every verb with `name=value` (e.g. `LOCAL_KAFKA_BROKERS=3`).
    pub fn with_env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Runs one verb with its arguments; its standard output. The script runs in a process
    /// group of its own, so a Ctrl-C at the terminal stops the harness (whose guards then
    /// restore what it broke) and not the script half-way through starting a server.
    pub async fn run(&self, args: &[&str]) -> Result<String, LocalServicesError> {
        let (script, verb) = (self.script.display().to_string(), args.join(" "));
        let mut command = tokio::process::Command::new("bash");
        command
            .arg(&self.script)
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .process_group(0);
        let output = match tokio::time::timeout(PATIENCE, command.output()).await {
            Err(_) => return Err(LocalServicesError::TimedOut { script, verb }),
            Ok(Err(source)) => return Err(LocalServicesError::Spawn { script, verb, source }),
            Ok(Ok(output)) => output,
        };
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if output.status.success() {
            Ok(stdout)
        } else {
            let status = output.status;
            let output = format!("{stdout}{}", String::from_utf8_lossy(&output.stderr)).trim().to_owned();
            Err(LocalServicesError::Failed { script, verb, status, output })
        }
    }

    /// One variable of `env` (`export NAME=value` lines); `None` when it prints none.
    pub async fn env_var(&self, name: &str) -> Result<Option<String>, LocalServicesError> {
        Ok(export_value(&self.run(&["env"]).await?, name))
    }
}

fn export_value(env: &str, name: &str) -> Option<String> {
    let prefix = format!("export {name}=");
    env.lines().find_map(|l| l.strip_prefix(&prefix)).map(|v| v.trim_matches(['\'', '"']).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_an_exported_value() {
        let env = "export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092\nexport DATABASE_URL='mysql://a@b/c'\n";
        assert_eq!(export_value(env, "KAFKA_BOOTSTRAP_SERVERS").as_deref(), Some("127.0.0.1:9092"));
        assert_eq!(export_value(env, "DATABASE_URL").as_deref(), Some("mysql://a@b/c"));
        assert_eq!(export_value(env, "DATABASE"), None);
    }

    #[tokio::test]
    async fn a_failing_verb_says_what_it_printed() {
        let dir = std::env::temp_dir().join(format!("local-services-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("local-services.sh");
        std::fs::write(&script, "echo \"$1 with $EXTRA\"; [[ $1 == ok ]] || { echo nope >&2; exit 3; }\n").unwrap();
        let services = LocalServices::at(&script).with_env("EXTRA", "x");
        assert_eq!(services.run(&["ok"]).await.unwrap(), "ok with x\n");
        let error = services.run(&["db-stop"]).await.unwrap_err().to_string();
        assert!(error.contains("db-stop failed") && error.contains("nope"), "{error}");
        std::fs::remove_dir_all(&dir).ok();
    }
}

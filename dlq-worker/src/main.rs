//! `dlq-worker` runs the worker; `dlq-worker parked ...` operates the parking lot.
//! `dlq-worker --help` lists every variable.

use std::process::ExitCode;

use anyhow::Context as _;
use dlq_worker::cli::{self, Cli, Command};
use dlq_worker::{Application, Settings};
use reliable_messaging::service::runtime::{shutdown, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    // `--help` and a bad variable (named in the message) exit here, before anything else.
    let args = Cli::parse_args(std::env::args_os()).unwrap_or_else(|e| e.exit());
    let settings = Settings::from_args(&args.worker, std::env::vars());
    match args.command {
        None => {
            telemetry::init("dlq-worker", &args.worker.telemetry);
            // A wrong password or an untrusted certificate is a clear error now, not a hang later.
            reliable_messaging::service::runtime::preflight::check_with_identities(
                &settings.kafka,
                settings.database.url.expose(),
                settings.database.migration_url.as_ref().map(|u| u.expose()),
                dlq_worker::database_grants::GRANTS,
            )
            .await
            .context("connecting to Kafka and the database")?;
            let application = Application::build(settings).await?;
            let result = application.run_until_stopped(shutdown::on_termination_signal()).await;
            telemetry::shutdown();
            result?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Parked(command)) => {
            // Results go to stdout; logs (warnings only, unless RUST_LOG says otherwise) to stderr.
            telemetry::init_stderr(&args.worker.telemetry, "warn");
            cli::run(command, settings).await
        }
        Some(Command::Erase { email, reason, who }) => {
            telemetry::init_stderr(&args.worker.telemetry, "warn");
            cli::erase(&email, &reason, &who.actor, settings).await
        }
    }
}

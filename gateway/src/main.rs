//! The gateway binary: configuration from the arguments and environment (`gateway --help`
//! lists every variable), then serve until SIGTERM.

use anyhow::Context;
use gateway::configuration::{SecretSource, Settings};
use gateway::startup::Application;
use reliable_messaging::service::runtime::{shutdown, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `--help` and a bad variable (named in the message) exit here, before anything else.
    let (settings, secret_source) =
        Settings::parse_from(std::env::args_os(), std::env::vars()).unwrap_or_else(|e| e.exit());
    telemetry::init("gateway", &settings.telemetry);
    if secret_source == SecretSource::Generated {
        tracing::warn!(
            "REQUEST_ID_SECRET is not set: using a random secret; request ids issued before a restart \
             (or by other instances) can no longer be verified and will be answered 404"
        );
    }
    // A wrong password or an untrusted certificate is a clear error now, not a hang later.
    reliable_messaging::service::runtime::preflight::check_with_identities(
        &settings.kafka,
        settings.database.url.expose(),
        settings.database.migration_url.as_ref().map(|u| u.expose()),
        gateway::database_grants::GRANTS,
    )
    .await
    .context("connecting to Kafka and the database")?;
    let application = Application::build(settings).await.context("starting the gateway")?;
    application.run_until_stopped(shutdown::on_termination_signal()).await.context("serving HTTP")?;
    telemetry::shutdown();
    Ok(())
}

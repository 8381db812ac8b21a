//! The gateway binary: configuration from the environment, then serve until SIGTERM.

use anyhow::Context;
use gateway::configuration::{SecretSource, Settings};
use gateway::startup::Application;
use reliable_messaging::{shutdown, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init("gateway");
    let (settings, secret_source) = Settings::from_env().context("reading the gateway configuration")?;
    if secret_source == SecretSource::Generated {
        tracing::warn!(
            "REQUEST_ID_SECRET is not set: using a random secret; request ids issued before a restart \
             (or by other instances) can no longer be verified and will be answered 404"
        );
    }
    // A wrong password or an untrusted certificate is a clear error now, not a hang later.
    reliable_messaging::preflight::check(&settings.kafka, &settings.database_url)
        .await
        .context("connecting to Kafka and the database")?;
    let application = Application::build(settings).await.context("starting the gateway")?;
    application.run_until_stopped(shutdown::on_termination_signal()).await.context("serving HTTP")?;
    telemetry::shutdown();
    Ok(())
}

//! `registration-service`: see the crate docs in `lib.rs`; `registration-service --help` lists
//! every setting.

use anyhow::Context;
use registration_service::configuration::Settings;
use registration_service::startup::Application;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `--help` and a bad variable (named in the message) exit here, before anything else.
    let settings = Settings::parse_from(std::env::args_os(), std::env::vars()).unwrap_or_else(|e| e.exit());
    reliable_messaging::service::runtime::telemetry::init("registration-service", &settings.service.telemetry);
    // A wrong password or an untrusted certificate is a clear error now, not a hang later.
    reliable_messaging::service::runtime::preflight::check_with_identities(
        &settings.service.kafka,
        settings.database.url.expose(),
        settings.database.migration_url.as_ref().map(|u| u.expose()),
        registration_service::database_grants::GRANTS,
    )
    .await
    .context("connecting to Kafka and the database")?;
    let shutdown = reliable_messaging::service::runtime::shutdown::on_termination_signal();
    let app = Application::build(settings).await?;
    tracing::info!(http_port = app.http_port(), "registration-service starting");
    let result = app.run_until_stopped(shutdown).await;
    reliable_messaging::service::runtime::telemetry::shutdown();
    result
}

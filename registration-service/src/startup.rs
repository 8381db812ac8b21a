//! The registration-service as a use of the service kit: its handler over its topic, its
//! database with the workspace's migrations, everything else from
//! [`reliable_messaging::service`].

use std::sync::Arc;

use anyhow::Context;
use reliable_messaging::consumer::ConsumerStats;
use reliable_messaging::service::{ConsumerService, ServiceBuilder};
use tokio_util::sync::CancellationToken;

use crate::configuration::{Settings, NAME};
use crate::registration_handler::RegistrationHandler;
use crate::user_store::UserStore;

pub struct Application {
    service: ConsumerService<RegistrationHandler>,
}

impl Application {
    /// Binds the HTTP port and prepares clients. Connects to nothing yet, so it succeeds
    /// while the database or broker is down; `run_until_stopped` waits for them.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let pool = settings.database.connect_lazy()?;
        let migrator = settings.database.connect_migrator_lazy()?;
        // Shared with the handler, which records its statements' time among the stages.
        let stats = Arc::<ConsumerStats>::default();
        let handler = RegistrationHandler::new(UserStore::new(pool.clone(), stats.stages.clone()))
            .reading(settings.max_schema_version, settings.newer_events);
        let service = ServiceBuilder::from_settings(NAME, settings.service, handler)
            .stats(stats)
            .version(env!("CARGO_PKG_VERSION"))
            .database(pool)
            .migrations(signup_schema::migrator())
            .migration_database(migrator, crate::database_grants::GRANTS)
            .build()
            .await
            .context("build the registration-service")?;
        Ok(Self { service })
    }

    /// The port of `/healthz`, `/readyz` and `/metrics`.
    pub fn http_port(&self) -> u16 {
        self.service.http_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Runs until `shutdown` is cancelled; the batch in progress is finished and committed first.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        Ok(self.service.run(shutdown).await?)
    }
}

//! The service's MySQL database: its settings, its connection pool, and creating the database
//! itself when a service owns one (`mysql` feature).
//!
//! The pool is built lazily, so a service starts (and answers its probes) while the database
//! is down; every connection gets a short `innodb_lock_wait_timeout`, because a row held by
//! another transaction should fail that one message quickly as a transient failure instead of
//! stalling the whole partition for MySQL's default 50 s.

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::{ConnectOptions, Connection, MySqlPool};
use tokio_util::sync::CancellationToken;

use crate::dead_letter::Backoff;
use crate::service::configuration::DatabaseUrl;
use crate::service::runtime::identities::{grant_runtime_identity, TableGrant};
use crate::service::runtime::migrations::{apply_migrations, SchemaStatus};
use crate::service::runtime::ServiceError;

/// Database arguments, to flatten into a service's arguments.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Database")]
pub struct DatabaseArgs {
    /// mysql://user:password@host:port/database[?ssl-mode=…&ssl-ca=…] (the password is never printed).
    #[arg(
        long,
        env = "DATABASE_URL",
        hide_env_values = true,
        default_value = "mysql://registrations@127.0.0.1:3306/registrations"
    )]
    pub database_url: DatabaseUrl,
    /// The migration identity (mysql://…, same database): when set, the start-up migration phase
    /// applies the migrations as this identity and grants the runtime identity of DATABASE_URL
    /// exactly the tables this service needs; unset, DATABASE_URL's identity migrates and is
    /// only checked for those grants. The password is never printed.
    #[arg(long, env = "DATABASE_MIGRATION_URL", hide_env_values = true)]
    pub database_migration_url: Option<DatabaseUrl>,
    /// Most connections the service holds.
    #[arg(long, env = "DATABASE_POOL_SIZE", default_value_t = 5)]
    pub database_pool_size: u32,
    /// How long a handler waits for a connection before the attempt counts as a transient failure (ms).
    /// While the database refuses connections, sqlx retries within this time at most a fifth of
    /// it apart, so it also bounds how late a recovered database is noticed. Too short for a slow
    /// network costs little: the consumer pauses and probes, nothing is dead-lettered.
    #[arg(long, env = "DATABASE_ACQUIRE_TIMEOUT_MS", default_value_t = 250)]
    pub database_acquire_timeout_ms: u64,
    /// `innodb_lock_wait_timeout` of the service's sessions (s).
    #[arg(long, env = "DATABASE_LOCK_WAIT_TIMEOUT_SECS", default_value_t = 5)]
    pub database_lock_wait_timeout_secs: u32,
}

impl DatabaseArgs {
    pub fn settings(&self) -> DatabaseSettings {
        DatabaseSettings {
            url: self.database_url.clone(),
            migration_url: self.database_migration_url.clone(),
            pool_size: self.database_pool_size.max(1),
            acquire_timeout: Duration::from_millis(self.database_acquire_timeout_ms.max(1)),
            lock_wait_timeout_secs: self.database_lock_wait_timeout_secs.max(1),
        }
    }

    /// The settings of a service that migrates as its runtime identity (it declares no table
    /// grants): refuses `DATABASE_MIGRATION_URL` instead of ignoring it.
    pub fn single_identity(&self) -> Result<DatabaseSettings, ServiceError> {
        match self.database_migration_url {
            Some(_) => Err(ServiceError::MigrationIdentityUnsupported),
            None => Ok(self.settings()),
        }
    }
}

/// Where the database is and how the pool behaves; `Debug` hides the password.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    pub url: DatabaseUrl,
    /// The migration identity's URL; see [`DatabaseArgs::database_migration_url`].
    pub migration_url: Option<DatabaseUrl>,
    pub pool_size: u32,
    /// How long a handler waits for a connection before the attempt counts as a transient failure.
    pub acquire_timeout: Duration,
    /// `innodb_lock_wait_timeout` of every session; see the module docs.
    pub lock_wait_timeout_secs: u32,
}

impl DatabaseSettings {
    /// `url` with the defaults of [`DatabaseArgs`] (5 connections, 250 ms to acquire one, 5 s lock
    /// wait): for tests and tools that build settings in code.
    pub fn new(url: impl Into<DatabaseUrl>) -> Self {
        Self {
            url: url.into(),
            migration_url: None,
            pool_size: 5,
            acquire_timeout: Duration::from_millis(250),
            lock_wait_timeout_secs: 5,
        }
    }

    /// The pool, connected now: for a command that has nothing to do without the database.
    pub async fn connect(&self) -> Result<MySqlPool, ServiceError> {
        let pool = self.connect_lazy()?;
        pool.acquire().await.map_err(ServiceError::DatabaseUnreachable)?;
        Ok(pool)
    }

    /// The pool; connects on first use, so this succeeds while the database is down.
    pub fn connect_lazy(&self) -> Result<MySqlPool, ServiceError> {
        let options = MySqlConnectOptions::from_str(self.url.expose()).map_err(ServiceError::DatabaseUrl)?;
        let lock_wait = self.lock_wait_timeout_secs;
        Ok(MySqlPoolOptions::new()
            .max_connections(self.pool_size)
            // Short, so an unreachable database surfaces as a transient failure quickly
            // instead of stalling the partition.
            .acquire_timeout(self.acquire_timeout)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    sqlx::query(&format!("SET SESSION innodb_lock_wait_timeout = {lock_wait}")).execute(conn).await?;
                    Ok(())
                })
            })
            .connect_lazy_with(options))
    }
}

impl DatabaseSettings {
    /// The migration identity's pool (one connection, lazy), when a migration URL is set.
    pub fn connect_migrator_lazy(&self) -> Result<Option<MySqlPool>, ServiceError> {
        let Some(url) = &self.migration_url else { return Ok(None) };
        let options = MySqlConnectOptions::from_str(url.expose()).map_err(ServiceError::DatabaseUrl)?;
        Ok(Some(
            MySqlPoolOptions::new()
                .max_connections(1)
                .acquire_timeout(Duration::from_secs(5))
                .connect_lazy_with(options),
        ))
    }
}

/// How [`prepare_database`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseStart {
    /// The database exists and every migration is applied.
    Ready,
    /// Shutdown was requested first: nothing was started, nothing is left to do.
    ShutDown,
}

/// A service's database at start, the one way every service prepares it: the database created
/// when `create` says so (for a service that owns one), then `migrator` applied under the
/// migration lock ([`apply_migrations`]), both retried with backoff while the database is
/// unreachable or another instance migrates. `schema`, registered as a readiness check, keeps
/// `/readyz` at 503 until the migrations are applied.
///
/// A service awaits it before consuming (nothing may be handled on an old schema), or spawns
/// it when it serves without the database (the gateway).
pub async fn prepare_database(
    pool: &MySqlPool,
    migrator: Option<Migrator>,
    create: bool,
    schema: &SchemaStatus,
    shutdown: &CancellationToken,
) -> Result<DatabaseStart, ServiceError> {
    if create {
        let name = own_database_name(pool)?;
        if create_database(pool, &name, shutdown).await.is_err() {
            return Ok(DatabaseStart::ShutDown);
        }
    }
    if let Some(migrator) = migrator {
        if apply_migrations(pool, migrator, schema, shutdown).await.is_err() {
            return Ok(DatabaseStart::ShutDown);
        }
    }
    Ok(DatabaseStart::Ready)
}

/// [`prepare_database`] with the schema owned by another identity: the migrations applied as
/// `owner` when given (`DATABASE_MIGRATION_URL`), which then grants `pool`'s runtime identity
/// `grants` ([`grant_runtime_identity`]) and is closed; without `owner`, `pool`'s identity
/// migrates and nothing is granted (the preflight checks the grants instead).
#[allow(clippy::too_many_arguments)]
pub async fn prepare_database_as(
    pool: &MySqlPool,
    owner: Option<MySqlPool>,
    grants: &[TableGrant],
    migrator: Option<Migrator>,
    create: bool,
    schema: &SchemaStatus,
    shutdown: &CancellationToken,
) -> Result<DatabaseStart, ServiceError> {
    let Some(owner) = owner else {
        return prepare_database(pool, migrator, create, schema, shutdown).await;
    };
    let mut start = prepare_database(&owner, migrator, create, schema, shutdown).await?;
    if start == DatabaseStart::Ready && grant_runtime_identity(&owner, pool, grants, shutdown).await.is_err() {
        start = DatabaseStart::ShutDown;
    }
    // Its one connection is not needed again: the service never does DDL after start-up.
    owner.close().await;
    Ok(start)
}

/// The name of `pool`'s database when it is safe to use unquoted in DDL.
pub(crate) fn own_database_name(pool: &MySqlPool) -> Result<String, ServiceError> {
    let name = pool.connect_options().get_database().map(str::to_owned);
    match name {
        Some(n) if !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => Ok(n),
        other => Err(ServiceError::DatabaseName(other)),
    }
}

/// Creates `name` (when missing) on `pool`'s server, retrying with backoff while the server
/// is unreachable, as migrations do. `Err(())` when `shutdown` came first.
async fn create_database(pool: &MySqlPool, name: &str, shutdown: &CancellationToken) -> Result<(), ()> {
    // `information_schema` always exists, so the connection does not need the database we
    // are about to create.
    let server = pool.connect_options().as_ref().clone().database("information_schema");
    let backoff = Backoff::exponential(Duration::from_millis(250), 2.0, Duration::from_secs(10)).with_jitter(0.3);
    let mut attempt = 0;
    loop {
        let created = async {
            let mut conn = server.connect().await?;
            let sql =
                format!("CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci");
            sqlx::query(&sql).execute(&mut conn).await?;
            conn.close().await
        };
        let result = tokio::select! {
            _ = shutdown.cancelled() => return Err(()),
            result = created => result,
        };
        match result {
            Ok(()) => return Ok(()),
            Err(error) => {
                tracing::warn!(%error, attempt, database = name, "could not create the database yet; retrying")
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Err(()),
            _ = tokio::time::sleep(backoff.delay(attempt)) => {}
        }
        attempt = attempt.saturating_add(1);
    }
}

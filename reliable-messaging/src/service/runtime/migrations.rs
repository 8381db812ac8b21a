//! Applying the shared database migrations at start-up, safely when several services (or
//! several instances of one) start at once on an empty database.
//!
//! Every service embeds the workspace's migrations and applies them when it starts, so on a
//! fresh database the gateway, the registration-service and the dlq-worker race to create the
//! same tables. sqlx-mysql 0.8 guards [`Migrator::run`] with `SELECT GET_LOCK(?, -1)` and never
//! looks at the answer: MySQL 8 reads -1 as "wait forever", but MariaDB 10.11 rejects it
//! (warning 1411, result NULL) and nothing is locked. Two services then apply the same migration
//! and one of them fails with `Duplicate entry '…' for key 'PRIMARY'`, or finds the migration
//! "partially applied" (the other one's `success = FALSE` row) and refuses to go on.
//!
//! [`apply_migrations`] is the one way the services apply them. Why it is built the way it is:
//!
//! * **Its own lock, with a positive timeout and a checked result.** `GET_LOCK(name, 30)` means
//!   the same on MySQL 8 and MariaDB: 1 = held, 0 = someone else still holds it, NULL = error.
//!   Only 1 lets the migrations run. The name is the one sqlx derives for the database
//!   (`hex(0x3d32ad9e * crc32(database))`), computed by the server, so instances still running
//!   an older build, which take sqlx's lock (and really get it on MySQL 8), are excluded too.
//! * **One dedicated connection.** A MySQL user lock belongs to the session that took it, so the
//!   migrations must run on that very session, with sqlx's own locking off
//!   ([`Migrator::set_locking`]`(false)`; it would only repeat a lock this session already
//!   holds). DDL's implicit commits do not release a user lock. The connection is taken out of
//!   the pool ([`PoolConnection::detach`]) and closed afterwards: if the process dies holding
//!   the lock, the server releases it when the connection drops, and nobody waits forever.
//! * **Retry, never die.** An unreachable database, a lock held too long or a failed
//!   migration is logged and retried with backoff until it works or shutdown is requested. The
//!   service stays up (its probes answer) and [`SchemaStatus`], registered as a readiness
//!   check, keeps `/readyz` at 503 until every migration is applied: nothing is served on a
//!   half-migrated schema.
//! * **Shutdown interrupts waiting, not applying.** Cancelling between the lock and the end of
//!   the migrations would drop the connection in the middle of DDL that cannot be rolled back,
//!   which is the half-applied state this module exists to avoid.
//!
//! [`PoolConnection::detach`]: sqlx::pool::PoolConnection::detach

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::{Connection, MySqlConnection, MySqlPool};
use tokio_util::sync::CancellationToken;

use crate::dead_letter::Backoff;
use crate::service::endpoints::health::ReadinessCheck;

/// How long one `GET_LOCK` waits for another instance to finish migrating before the attempt
/// counts as failed and is retried (the migrations take well under a second when they run).
pub const LOCK_WAIT: Duration = Duration::from_secs(30);

/// Why one attempt failed. Every one of them is retried by [`apply_migrations`].
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error("could not get a database connection: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("DATABASE_URL names no database to migrate")]
    NoDatabase,
    #[error("could not take the migration lock: {0}")]
    Lock(#[source] sqlx::Error),
    #[error("another instance still holds the migration lock {name} after {waited:?}")]
    LockBusy { name: String, waited: Duration },
    #[error("the server refused the migration lock {name} (GET_LOCK answered NULL)")]
    LockRefused { name: String },
    #[error("applying the migrations failed: {0}")]
    Migrate(#[source] MigrateError),
}

/// Shutdown was requested before the migrations were applied.
#[derive(Debug, thiserror::Error)]
#[error("shutdown was requested before the database migrations were applied")]
pub struct ShutdownBeforeMigrated;

/// Whether this process has applied the migrations; a [`ReadinessCheck`] that fails until it
/// has. Clones share the state.
#[derive(Debug, Clone, Default)]
pub struct SchemaStatus(Arc<SchemaStatusInner>);

#[derive(Debug, Default)]
struct SchemaStatusInner {
    applied: AtomicBool,
    failed_attempts: AtomicU64,
}

impl SchemaStatus {
    pub fn is_applied(&self) -> bool {
        self.0.applied.load(Ordering::Acquire)
    }

    /// Attempts that failed and were retried (database away, lock busy, migration error).
    pub fn failed_attempts(&self) -> u64 {
        self.0.failed_attempts.load(Ordering::Relaxed)
    }
}

impl ReadinessCheck for SchemaStatus {
    fn name(&self) -> &'static str {
        "schema"
    }

    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        let applied = self.is_applied();
        Box::pin(async move {
            if applied {
                Ok(())
            } else {
                Err("database migrations not applied yet".to_owned())
            }
        })
    }
}

/// Applies every pending migration of `migrator` to `pool`'s database under a lock that works
/// on MySQL 8 and MariaDB, retrying with backoff until it succeeds; see the module docs. Marks
/// `status` applied on success. Returns early only when `shutdown` is cancelled while it waits
/// (for the database, the lock or the next attempt); never while migrations run.
pub async fn apply_migrations(
    pool: &MySqlPool,
    mut migrator: Migrator,
    status: &SchemaStatus,
    shutdown: &CancellationToken,
) -> Result<(), ShutdownBeforeMigrated> {
    // Our lock replaces sqlx's; see the module docs.
    migrator.set_locking(false);
    let backoff = Backoff::exponential(Duration::from_millis(250), 2.0, Duration::from_secs(10)).with_jitter(0.3);
    let mut attempt = 0;
    loop {
        match attempt_once(pool, &migrator, shutdown).await {
            Some(Ok(())) => {
                status.0.applied.store(true, Ordering::Release);
                tracing::info!(migrations = migrator.iter().count(), "database migrations applied");
                return Ok(());
            }
            Some(Err(error)) => {
                status.0.failed_attempts.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, attempt, "database migrations not applied yet; retrying");
            }
            None => return Err(ShutdownBeforeMigrated),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Err(ShutdownBeforeMigrated),
            _ = tokio::time::sleep(backoff.delay(attempt)) => {}
        }
        attempt = attempt.saturating_add(1);
    }
}

/// One attempt; `None` when shutdown came while it waited for the connection or the lock.
async fn attempt_once(
    pool: &MySqlPool,
    migrator: &Migrator,
    shutdown: &CancellationToken,
) -> Option<Result<(), MigrationError>> {
    let locked = tokio::select! {
        _ = shutdown.cancelled() => return None,
        locked = lock(pool) => locked,
    };
    let (mut conn, name) = match locked {
        Ok(locked) => locked,
        Err(e) => return Some(Err(e)),
    };
    // Nothing to do is decided without DDL, so an identity that owns none (a runtime identity
    // on a schema the migration step already applied) gets through.
    if all_applied(&mut conn, migrator).await {
        let _ = sqlx::query("SELECT RELEASE_LOCK(?)").bind(&name).execute(&mut conn).await;
        let _ = conn.close().await;
        return Some(Ok(()));
    }
    // `run_direct` is `run` on a connection we hold; `run(&mut conn)` trips rustc's "`Acquire` is
    // not general enough" once the future is spawned (sqlx names `run_direct` for exactly that).
    let applied = migrator.run_direct(&mut conn).await.map_err(MigrationError::Migrate);
    // Closing the session releases the lock as well; releasing first just says so explicitly.
    if let Err(e) = sqlx::query("SELECT RELEASE_LOCK(?)").bind(&name).execute(&mut conn).await {
        tracing::debug!(error = %e, "could not release the migration lock; closing the connection releases it");
    }
    let _ = conn.close().await;
    Some(applied)
}

/// Whether `_sqlx_migrations` records exactly `migrator`'s migrations, each applied with its
/// checksum. Anything else (no table yet, one pending, one changed, one this build does not
/// know) is left to [`Migrator::run_direct`], which applies or refuses as it always did.
async fn all_applied(conn: &mut MySqlConnection, migrator: &Migrator) -> bool {
    let recorded: Result<Vec<(i64, Vec<u8>)>, _> =
        sqlx::query_as("SELECT version, checksum FROM _sqlx_migrations WHERE success = TRUE")
            .fetch_all(&mut *conn)
            .await;
    let Ok(recorded) = recorded else { return false };
    let ours: Vec<_> = migrator.iter().filter(|m| !m.migration_type.is_down_migration()).collect();
    recorded.len() == ours.len()
        && ours.iter().all(|m| recorded.iter().any(|(v, c)| *v == m.version && c.as_slice() == &*m.checksum))
}

/// A connection of its own holding the migration lock, and the lock's name.
async fn lock(pool: &MySqlPool) -> Result<(MySqlConnection, String), MigrationError> {
    let mut conn = pool.acquire().await.map_err(MigrationError::Connect)?.detach();
    // sqlx's name for this database's migration lock (`generate_lock_id` in sqlx-mysql).
    let name: Option<String> = sqlx::query_scalar("SELECT LOWER(HEX(1026731422 * CRC32(DATABASE())))")
        .fetch_one(&mut conn)
        .await
        .map_err(MigrationError::Lock)?;
    let name = name.ok_or(MigrationError::NoDatabase)?;
    let held: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK(?, ?)")
        .bind(&name)
        .bind(LOCK_WAIT.as_secs())
        .fetch_one(&mut conn)
        .await
        .map_err(MigrationError::Lock)?;
    match held {
        Some(1) => Ok((conn, name)),
        Some(_) => Err(MigrationError::LockBusy { name, waited: LOCK_WAIT }),
        None => Err(MigrationError::LockRefused { name }),
    }
}

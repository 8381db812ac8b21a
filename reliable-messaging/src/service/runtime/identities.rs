//! Least-privilege database identities: the tables a service's runtime identity may touch, how
//! the migration identity grants exactly that, and how a start-up check proves it is there.
//!
//! A service serves as its runtime identity (`DATABASE_URL`), which owns no DDL. The schema
//! belongs to a migration identity (`DATABASE_MIGRATION_URL`): when a service is given one, its
//! start-up migration phase applies the migrations on that identity's connection, then grants
//! the runtime identity the service's [`TableGrant`]s, nothing more. Table-level grants can
//! only be given once the tables exist, which is why the migrator gives them and not the
//! script that creates the accounts.
//!
//! Without a migration identity, [`missing_grant`] prepares (never runs) each statement the
//! service needs as the runtime identity: the server checks privileges when it prepares, on
//! MySQL 8 and MariaDB alike, so a missing grant is found at start-up, with the server's own
//! words, instead of on the first sign-up.

use std::time::Duration;

use sqlx::{ConnectOptions, Connection, Executor, MySqlPool};
use tokio_util::sync::CancellationToken;

use crate::dead_letter::Backoff;
use crate::service::runtime::migrations::ShutdownBeforeMigrated;

/// Privileges on one table of the service's database, and statements that need them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableGrant {
    pub table: &'static str,
    /// As written in `GRANT`: `SELECT, INSERT` or column-level `SELECT (request_id, created_at)`.
    pub privileges: &'static str,
    /// Statements of the service's kind that need these privileges, prepared at start-up.
    pub probes: &'static [&'static str],
}

/// The table grants of the status writers (the registration-service and the dlq-worker):
/// the upsert reads the recorded row, so it needs SELECT and UPDATE as well as INSERT.
pub const REQUEST_STATUS_WRITER: TableGrant = TableGrant {
    table: "request_status",
    privileges: "SELECT, INSERT, UPDATE",
    probes: &[
        "INSERT INTO request_status (request_id, status, retry_count, reason, updated_at) VALUES (?, ?, ?, ?, ?) \
         ON DUPLICATE KEY UPDATE status = IF(status = 'rejected', status, VALUES(status))",
        "SELECT status, retry_count, reason, updated_at FROM request_status WHERE request_id = ?",
    ],
};

/// Every runtime identity reads which migrations are applied: a service then starts on a schema
/// the migration step applied without issuing any DDL (see `migrations`).
pub const MIGRATIONS_READER: TableGrant = TableGrant {
    table: "_sqlx_migrations",
    privileges: "SELECT",
    probes: &["SELECT version, checksum FROM _sqlx_migrations WHERE success = TRUE"],
};

/// A privilege the runtime identity lacks, as the server reported it when a probe was prepared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingGrant {
    /// `user@host` as the server knows the identity (`CURRENT_USER()`).
    pub account: String,
    pub grant: TableGrant,
    /// The server's message, e.g. `INSERT command denied to user … for table …`.
    pub reason: String,
}

/// Server errors that mean "this identity may not": table, column and database access denied.
const DENIED_CODES: &[u16] = &[1142, 1143, 1044];

/// Prepares every probe of `grants` as `pool`'s identity; the first one the server refuses for
/// lack of a privilege. A table that does not exist yet (an unmigrated database) is not a
/// refusal: the migrations create it.
pub async fn missing_grant(pool: &MySqlPool, grants: &[TableGrant]) -> Result<Option<MissingGrant>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let account: String = sqlx::query_scalar("SELECT CURRENT_USER()").fetch_one(&mut *conn).await?;
    for grant in grants {
        for probe in grant.probes {
            match conn.prepare(probe).await {
                Ok(_) => {}
                Err(sqlx::Error::Database(e))
                    if e.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                        .is_some_and(|m| DENIED_CODES.contains(&m.number())) =>
                {
                    return Ok(Some(MissingGrant { account, grant: *grant, reason: e.message().to_owned() }));
                }
                Err(sqlx::Error::Database(e))
                    if e.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>().is_some_and(|m| m.number() == 1146) =>
                {
                    tracing::debug!(table = grant.table, "table not created yet; its grant is checked once migrated");
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(None)
}

/// `GRANT` of each of `grants` on `database` to `account` (`user@host`, as `CURRENT_USER()`
/// answers), quoted for both MySQL 8 and MariaDB.
pub fn grant_statements(database: &str, account: &str, grants: &[TableGrant]) -> Vec<String> {
    let (user, host) = account.rsplit_once('@').unwrap_or((account, "%"));
    let quote = |s: &str| format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"));
    grants
        .iter()
        .map(|g| {
            let database = database.replace('`', "``");
            format!("GRANT {} ON `{database}`.`{}` TO {}@{}", g.privileges, g.table, quote(user), quote(host))
        })
        .collect()
}

/// Grants `runtime`'s identity `grants` on its database, as `migrator`'s identity (which owns
/// the schema and holds GRANT OPTION on it), retrying with backoff while the database is away.
/// Run after the migrations: table grants need the tables. Idempotent.
pub async fn grant_runtime_identity(
    migrator: &MySqlPool,
    runtime: &MySqlPool,
    grants: &[TableGrant],
    shutdown: &CancellationToken,
) -> Result<(), ShutdownBeforeMigrated> {
    let backoff = Backoff::exponential(Duration::from_millis(250), 2.0, Duration::from_secs(10)).with_jitter(0.3);
    let mut attempt = 0;
    loop {
        let granted = async {
            // Not through `runtime`'s pool: before its first grant the account may not open
            // its database at all, but every account may open `information_schema`.
            let options = runtime.connect_options();
            let database = options.get_database().unwrap_or_default().to_owned();
            let mut login = options.as_ref().clone().database("information_schema").connect().await?;
            let account: String = sqlx::query_scalar("SELECT CURRENT_USER()").fetch_one(&mut login).await?;
            let _ = login.close().await;
            for statement in grant_statements(&database, &account, grants) {
                sqlx::query(&statement).execute(migrator).await?;
            }
            Ok::<_, sqlx::Error>(account)
        };
        let result = tokio::select! {
            _ = shutdown.cancelled() => return Err(ShutdownBeforeMigrated),
            result = granted => result,
        };
        match result {
            Ok(account) => {
                tracing::info!(%account, grants = grants.len(), "runtime database identity granted what it needs");
                return Ok(());
            }
            Err(error) => {
                tracing::warn!(%error, attempt, "could not grant the runtime database identity yet; retrying")
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Err(ShutdownBeforeMigrated),
            _ = tokio::time::sleep(backoff.delay(attempt)) => {}
        }
        attempt = attempt.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_name_the_database_table_and_quoted_account() {
        let grants = [TableGrant { table: "users", privileges: "SELECT (request_id, created_at)", probes: &[] }];
        assert_eq!(
            grant_statements("registrations", "gate'way@%", &grants),
            ["GRANT SELECT (request_id, created_at) ON `registrations`.`users` TO 'gate''way'@'%'"]
        );
    }
}

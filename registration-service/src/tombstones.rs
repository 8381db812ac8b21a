//! Withdrawals and erasures applied, and the check that keeps them applied: a sign-up with a
//! tombstone is refused, however late it arrives (redelivered, retried from the DLQ, redriven
//! from the parking lot).
//!
//! Race-free without any order between the records: the check reads the tombstones with a
//! shared lock in the transaction that inserts the users, so a withdrawal or erasure committing
//! meanwhile either waits for that insert (and then deletes the row) or is seen by it (and the
//! sign-up is refused). InnoDB's gap locks make this hold for tombstones not written yet, at
//! its default REPEATABLE READ.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use registration_events::{email_digest, AccountErased, RegistrationRequested, RegistrationWithdrawn};
use sqlx::{MySql, MySqlConnection, MySqlPool, QueryBuilder};
use uuid::Uuid;

pub const WITHDRAWN: &str = "withdrawn";
pub const ERASED: &str = "erased";
const WITHDRAWN_REASON: &str = "withdrawn by the user";

/// Why a sign-up may not be stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Withdrawn,
    Erased,
}

/// The sign-ups of `events` that have a tombstone (by request id) or whose address was erased
/// after they were requested, read with shared locks inside `conn`'s transaction.
pub async fn refused(
    conn: &mut MySqlConnection,
    events: &[&RegistrationRequested],
) -> Result<HashMap<Uuid, Refusal>, sqlx::Error> {
    let mut refused = HashMap::new();
    if events.is_empty() {
        return Ok(refused);
    }
    let mut by_id: QueryBuilder<'_, MySql> =
        QueryBuilder::new("SELECT request_id, kind FROM registration_tombstones WHERE request_id IN (");
    let mut ids = by_id.separated(", ");
    for e in events {
        ids.push_bind(e.request_id.as_bytes().to_vec());
    }
    by_id.push(") LOCK IN SHARE MODE");
    for (id, kind) in by_id.build_query_as::<(Vec<u8>, String)>().fetch_all(&mut *conn).await? {
        if let Ok(id) = Uuid::from_slice(&id) {
            refused.insert(id, if kind == ERASED { Refusal::Erased } else { Refusal::Withdrawn });
        }
    }
    let digests: Vec<[u8; 32]> = events.iter().map(|e| email_digest(&e.email)).collect();
    let mut by_address: QueryBuilder<'_, MySql> =
        QueryBuilder::new("SELECT email_digest, erased_at FROM erased_addresses WHERE email_digest IN (");
    let mut list = by_address.separated(", ");
    for digest in &digests {
        list.push_bind(digest.to_vec());
    }
    by_address.push(") LOCK IN SHARE MODE");
    let erased: HashMap<Vec<u8>, NaiveDateTime> =
        by_address.build_query_as::<(Vec<u8>, NaiveDateTime)>().fetch_all(&mut *conn).await?.into_iter().collect();
    if !erased.is_empty() {
        for (event, digest) in events.iter().zip(&digests) {
            if erased.get(digest.as_slice()).is_some_and(|at| event.requested_at.naive_utc() <= *at) {
                refused.entry(event.request_id).or_insert(Refusal::Erased);
            }
        }
    }
    Ok(refused)
}

/// Tombstones for sign-ups refused as erased that have none yet, so their status reads
/// `erased` (inside the transaction that records their rejection).
pub async fn record_erased(conn: &mut MySqlConnection, ids: &[Uuid], at: DateTime<Utc>) -> Result<(), sqlx::Error> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut insert: QueryBuilder<'_, MySql> =
        QueryBuilder::new("INSERT IGNORE INTO registration_tombstones (request_id, kind, reason, recorded_at) ");
    insert.push_values(ids, |mut row, id| {
        row.push_bind(id.as_bytes().to_vec())
            .push_bind(ERASED)
            .push_bind("the address was erased")
            .push_bind(at.naive_utc());
    });
    insert.build().execute(&mut *conn).await?;
    Ok(())
}

/// Applies a withdrawal: the tombstone first (it takes the lock a concurrent insert of the
/// sign-up would need), then the user row, if it was stored. Idempotent.
pub async fn withdraw(pool: &MySqlPool, event: &RegistrationWithdrawn) -> Result<(), sqlx::Error> {
    let id = event.request_id.as_bytes().to_vec();
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT IGNORE INTO registration_tombstones (request_id, kind, reason, recorded_at) VALUES (?, ?, ?, ?)",
    )
    .bind(&id)
    .bind(WITHDRAWN)
    .bind(WITHDRAWN_REASON)
    .bind(event.withdrawn_at.naive_utc())
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM users WHERE request_id = ?").bind(&id).execute(&mut *tx).await?;
    tx.commit().await
}

/// Applies an erasure: the address is marked erased as of `erased_at`, every account of it
/// requested until then is deleted and tombstoned. Idempotent; returns the accounts deleted now.
pub async fn erase(pool: &MySqlPool, event: &AccountErased) -> Result<u64, sqlx::Error> {
    let digest = email_digest(&event.email).to_vec();
    let at = event.erased_at.naive_utc();
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO erased_addresses (email_digest, erased_at, erasure_id) VALUES (?, ?, ?) \
         ON DUPLICATE KEY UPDATE erasure_id = IF(VALUES(erased_at) > erased_at, VALUES(erasure_id), erasure_id), \
         erased_at = GREATEST(erased_at, VALUES(erased_at))",
    )
    .bind(&digest)
    .bind(at)
    .bind(event.erasure_id.as_bytes().to_vec())
    .execute(&mut *tx)
    .await?;
    let ids: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT request_id FROM users WHERE email = ? AND requested_at <= ? FOR UPDATE")
            .bind(&event.email)
            .bind(at)
            .fetch_all(&mut *tx)
            .await?;
    let ids: Vec<Uuid> = ids.iter().filter_map(|id| Uuid::from_slice(id).ok()).collect();
    // The operator's reason stays in the audit row: free text may name the person.
    let reason = format!("erased by an operator (erasure {})", event.erasure_id);
    if !ids.is_empty() {
        let mut insert: QueryBuilder<'_, MySql> =
            QueryBuilder::new("INSERT IGNORE INTO registration_tombstones (request_id, kind, reason, recorded_at) ");
        insert.push_values(&ids, |mut row, id| {
            row.push_bind(id.as_bytes().to_vec()).push_bind(ERASED).push_bind(reason.clone()).push_bind(at);
        });
        insert.build().execute(&mut *tx).await?;
    }
    let deleted = sqlx::query("DELETE FROM users WHERE email = ? AND requested_at <= ?")
        .bind(&event.email)
        .bind(at)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(deleted)
}

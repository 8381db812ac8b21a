//! What happened to a request, as its caller may ask later: the `request_status` table.
//!
//! Messages that carry an `x-request-id` header get their non-success transitions recorded
//! here by whoever causes them: the handler (`rejected`), the DLQ worker (`retrying`,
//! `parked`). Success is recorded by the service's own row (a user in `users`), in the same
//! transaction as the work, so it costs no extra write. Writes are idempotent upserts, and a
//! terminal `rejected` is never overwritten by a late or duplicated transition.

use chrono::{DateTime, Utc};
use sqlx::{MySql, QueryBuilder};
use uuid::Uuid;

/// Longest reason stored; longer ones are cut.
pub const MAX_REASON_BYTES: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Rejected,
    Retrying,
    Parked,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Rejected => "rejected",
            Status::Retrying => "retrying",
            Status::Parked => "parked",
        }
    }
}

/// One transition to record.
#[derive(Debug, Clone)]
pub struct Transition {
    pub request_id: Uuid,
    pub status: Status,
    pub retry_count: u32,
    pub reason: Option<String>,
    pub at: DateTime<Utc>,
}

/// Records `transitions` in one statement, on any executor (a pool, or the transaction that
/// does the work so both commit together).
pub async fn record<'e, E>(executor: E, transitions: &[Transition]) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'e, Database = MySql>,
{
    if transitions.is_empty() {
        return Ok(());
    }
    let mut qb: QueryBuilder<'_, MySql> =
        QueryBuilder::new("INSERT INTO request_status (request_id, status, retry_count, reason, updated_at) ");
    qb.push_values(transitions, |mut row, t| {
        row.push_bind(t.request_id.as_bytes().to_vec())
            .push_bind(t.status.as_str())
            .push_bind(t.retry_count)
            .push_bind(t.reason.as_deref().map(|r| crate::message::retry_metadata::truncate(r, MAX_REASON_BYTES)))
            .push_bind(t.at.naive_utc());
    });
    // VALUES() rather than the `AS new` alias: the alias does not exist on MariaDB.
    qb.push(
        " ON DUPLICATE KEY UPDATE \
           retry_count = IF(status = 'rejected', retry_count, VALUES(retry_count)), \
           reason      = IF(status = 'rejected', reason, VALUES(reason)), \
           updated_at  = IF(status = 'rejected', updated_at, VALUES(updated_at)), \
           status      = IF(status = 'rejected', status, VALUES(status))",
    );
    qb.build().execute(executor).await?;
    Ok(())
}

/// The recorded transition of a request, if any.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RecordedStatus {
    pub status: String,
    pub retry_count: u32,
    pub reason: Option<String>,
    pub updated_at: chrono::NaiveDateTime,
}

pub async fn fetch<'e, E>(executor: E, request_id: Uuid) -> Result<Option<RecordedStatus>, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = MySql>,
{
    sqlx::query_as::<_, RecordedStatus>(
        "SELECT status, retry_count, reason, updated_at FROM request_status WHERE request_id = ?",
    )
    .bind(request_id.as_bytes().to_vec())
    .fetch_optional(executor)
    .await
}

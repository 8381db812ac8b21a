//! `ParkingLot`: the `parked_messages` and `parked_message_audit` tables.

use chrono::{DateTime, NaiveDateTime, Utc};
use sqlx::{MySql, MySqlPool, QueryBuilder};
use uuid::Uuid;

use super::headers_json::{headers_from_json, headers_to_json};
use super::message::{AuditEntry, NewParkedMessage, ParkedFilter, ParkedMessage, ParkedState, ParkedSummary};
use super::signature::SignatureGroup;
use crate::producer::PublishError;
use crate::request_status::{self, Status, Transition};

/// The `tracing` target of the parking log line, for routing it to an alerting pipeline.
/// Defined here, where the lot logs, and re-exported as `parking::LOG_TARGET`, so the files of
/// this module never import their parent.
pub const LOG_TARGET: &str = "parking_lot";

/// Rows a listing returns when the filter sets no limit.
pub const DEFAULT_LIST_LIMIT: u32 = 100;
/// Rows a listing returns at most, whatever the filter asks.
pub const MAX_LIST_LIMIT: u32 = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum ParkingError {
    #[error("parking lot database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("parked message {0} does not exist")]
    NotFound(u64),
    #[error("parked message {id} is corrupt: {detail}")]
    Corrupt { id: u64, detail: String },
    #[error("could not re-publish parked message {id}: {source}")]
    Publish { id: u64, source: Box<PublishError> },
}

/// The result of parking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parked {
    pub id: u64,
    /// `false` when the DLQ record was parked before (it was redelivered after a crash).
    pub newly_parked: bool,
}

/// The result of a discard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscardOutcome {
    Discarded,
    /// Not parked any more (redriven or discarded before): nothing changed.
    NotParked(ParkedState),
}

/// Parked messages, stored in MySQL/MariaDB.
#[derive(Clone, Debug)]
pub struct ParkingLot {
    pool: MySqlPool,
}

const COLUMNS: &str = "id, source_topic, dlq_topic, dlq_partition, dlq_offset, original_partition, original_offset, \
     message_key, headers, payload, park_reason, error_kind, error_message, retry_count, first_failure_at, \
     last_failure_at, parked_at, state, request_id";

impl ParkingLot {
    pub fn new(pool: MySqlPool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &MySqlPool {
        &self.pool
    }

    /// Parks `message`: stores it, records `parked` for its request in the same transaction,
    /// and writes the structured `message_parked` log line. Idempotent per DLQ record.
    pub async fn park(&self, message: &NewParkedMessage) -> Result<Parked, ParkingError> {
        let now = Utc::now();
        let mut tx = self.pool.begin().await?;
        let existing: Option<u64> = sqlx::query_scalar(
            "SELECT id FROM parked_messages WHERE dlq_topic = ? AND dlq_partition = ? AND dlq_offset = ?",
        )
        .bind(&message.dlq_topic)
        .bind(message.dlq_partition)
        .bind(message.dlq_offset)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(id) = existing {
            tx.commit().await?;
            tracing::info!(parked_id = id, dlq_topic = %message.dlq_topic, dlq_partition = message.dlq_partition,
                dlq_offset = message.dlq_offset, "DLQ record was parked before; not parking it twice");
            return Ok(Parked { id, newly_parked: false });
        }
        // LAST_INSERT_ID(id) on a duplicate (a concurrent park of the same record) returns the
        // existing row's id instead of 0, on MySQL and MariaDB alike.
        let inserted = sqlx::query(
            "INSERT INTO parked_messages (source_topic, dlq_topic, dlq_partition, dlq_offset, original_partition, \
               original_offset, message_key, headers, payload, park_reason, error_kind, error_message, retry_count, \
               first_failure_at, last_failure_at, parked_at, state, request_id) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'parked', ?) \
             ON DUPLICATE KEY UPDATE id = LAST_INSERT_ID(id)",
        )
        .bind(&message.source_topic)
        .bind(&message.dlq_topic)
        .bind(message.dlq_partition)
        .bind(message.dlq_offset)
        .bind(message.original_partition)
        .bind(message.original_offset)
        .bind(message.key.as_deref())
        .bind(headers_to_json(&message.headers))
        .bind(message.payload.as_deref())
        .bind(message.reason.as_str())
        .bind(&message.error_kind)
        .bind(message.error_message.as_deref())
        .bind(message.retry_count)
        .bind(message.first_failure_at.map(|t| t.naive_utc()))
        .bind(message.last_failure_at.map(|t| t.naive_utc()))
        .bind(now.naive_utc())
        .bind(message.request_id.map(|id| id.as_bytes().to_vec()))
        .execute(&mut *tx)
        .await?;
        let id = inserted.last_insert_id();
        if let Some(request_id) = message.request_id {
            let transition = Transition {
                request_id,
                status: Status::Parked,
                retry_count: message.retry_count,
                reason: message.error_message.clone(),
                at: now,
            };
            request_status::record(&mut *tx, &[transition]).await?;
        }
        tx.commit().await?;
        log_parked(id, message);
        Ok(Parked { id, newly_parked: true })
    }

    /// Parked messages matching `filter`, oldest first.
    pub async fn list(&self, filter: &ParkedFilter) -> Result<Vec<ParkedSummary>, ParkingError> {
        Ok(self.list_messages(filter).await?.iter().map(ParkedMessage::summary).collect())
    }

    /// The parked messages matching `filter` grouped by failure signature, largest group first.
    /// Looks at up to [`MAX_LIST_LIMIT`] messages (or the filter's limit), oldest first.
    pub async fn signature_groups(&self, filter: &ParkedFilter) -> Result<Vec<SignatureGroup>, ParkingError> {
        let filter = ParkedFilter { limit: Some(filter.limit.unwrap_or(MAX_LIST_LIMIT)), ..filter.clone() };
        Ok(super::signature::group(&self.list_messages(&filter).await?))
    }

    /// Parked messages matching `filter`, whole, oldest first.
    pub async fn list_messages(&self, filter: &ParkedFilter) -> Result<Vec<ParkedMessage>, ParkingError> {
        let mut qb: QueryBuilder<'_, MySql> =
            QueryBuilder::new(format!("SELECT {COLUMNS} FROM parked_messages WHERE 1 = 1"));
        if let Some(topic) = &filter.source_topic {
            qb.push(" AND source_topic = ").push_bind(topic.clone());
        }
        if let Some(kind) = &filter.error_kind {
            qb.push(" AND error_kind = ").push_bind(kind.clone());
        }
        if let Some(reason) = &filter.reason {
            qb.push(" AND park_reason = ").push_bind(reason.clone());
        }
        if let Some(since) = filter.since {
            qb.push(" AND parked_at >= ").push_bind(since.naive_utc());
        }
        if let Some(until) = filter.until {
            qb.push(" AND parked_at < ").push_bind(until.naive_utc());
        }
        if let Some(state) = filter.state {
            qb.push(" AND state = ").push_bind(state.as_str());
        }
        if let Some(request_id) = filter.request_id {
            qb.push(" AND request_id = ").push_bind(request_id.as_bytes().to_vec());
        }
        if let Some(key) = &filter.key {
            qb.push(" AND message_key = ").push_bind(key.as_bytes().to_vec());
        }
        let limit = filter.limit.unwrap_or(DEFAULT_LIST_LIMIT).min(MAX_LIST_LIMIT);
        // A signature is computed from the row, so the limit applies after matching it.
        let sql_limit = if filter.signature.is_some() { MAX_LIST_LIMIT } else { limit };
        qb.push(" ORDER BY id LIMIT ").push_bind(sql_limit);
        let rows: Vec<Row> = qb.build_query_as().fetch_all(&self.pool).await?;
        let mut messages = Vec::new();
        for row in rows {
            let message = row.into_message()?;
            if filter.signature.as_ref().is_none_or(|s| *s == message.signature()) {
                messages.push(message);
            }
            if messages.len() >= limit as usize {
                break;
            }
        }
        Ok(messages)
    }

    pub async fn get(&self, id: u64) -> Result<Option<ParkedMessage>, ParkingError> {
        let row: Option<Row> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM parked_messages WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(Row::into_message).transpose()
    }

    /// The operator actions on a parked message, oldest first.
    pub async fn audit_trail(&self, id: u64) -> Result<Vec<AuditEntry>, ParkingError> {
        let rows: Vec<AuditRow> = sqlx::query_as(
            "SELECT id, parked_message_id, action, actor, reason, at FROM parked_message_audit \
             WHERE parked_message_id = ? ORDER BY id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(audit_entry).collect())
    }

    /// An audit row that changes no state (a canary that stopped, say).
    pub async fn audit(&self, id: u64, action: &str, actor: &str, reason: Option<&str>) -> Result<(), ParkingError> {
        insert_audit(&self.pool, id, action, actor, reason).await
    }

    /// The latest operator actions on any message, newest first (the console's audit page).
    pub async fn recent_audit(&self, limit: u32) -> Result<Vec<AuditEntry>, ParkingError> {
        let rows: Vec<AuditRow> = sqlx::query_as(
            "SELECT id, parked_message_id, action, actor, reason, at FROM parked_message_audit ORDER BY id DESC LIMIT ?",
        )
        .bind(limit.min(MAX_LIST_LIMIT))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(audit_entry).collect())
    }

    /// Parked messages by state, and by clock hour parked from `first_hour` on, `hours`
    /// buckets (the console's chart).
    pub async fn counts(&self, first_hour: DateTime<Utc>, hours: u32) -> Result<ParkingCounts, ParkingError> {
        let by_state: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, COUNT(*) FROM parked_messages GROUP BY state").fetch_all(&self.pool).await?;
        let by_hour: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT TIMESTAMPDIFF(HOUR, ?, parked_at) AS h, COUNT(*) FROM parked_messages WHERE parked_at >= ? \
             GROUP BY h ORDER BY h",
        )
        .bind(first_hour.naive_utc())
        .bind(first_hour.naive_utc())
        .fetch_all(&self.pool)
        .await?;
        Ok(ParkingCounts {
            by_state: by_state.into_iter().map(|(s, n)| (s, u64::try_from(n).unwrap_or(0))).collect(),
            parked_per_hour: hourly_buckets(by_hour, hours),
        })
    }

    /// Marks a parked message discarded, with an audit row saying who and why. The row stays.
    pub async fn discard(&self, id: u64, actor: &str, reason: &str) -> Result<DiscardOutcome, ParkingError> {
        let mut tx = self.pool.begin().await?;
        let state = lock_state(&mut tx, id).await?;
        if state != ParkedState::Parked {
            return Ok(DiscardOutcome::NotParked(state));
        }
        set_state(&mut tx, id, ParkedState::Discarded, "discard", actor, Some(reason)).await?;
        tx.commit().await?;
        tracing::info!(target: LOG_TARGET, event = "message_discarded", parked_id = id, actor, reason,
            "parked message discarded");
        Ok(DiscardOutcome::Discarded)
    }
}

/// Reads the state of a parked message and locks its row until the transaction ends, so two
/// operators acting on the same message act one after the other.
pub(super) async fn lock_state(tx: &mut sqlx::Transaction<'_, MySql>, id: u64) -> Result<ParkedState, ParkingError> {
    let state: Option<String> = sqlx::query_scalar("SELECT state FROM parked_messages WHERE id = ? FOR UPDATE")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    let state = state.ok_or(ParkingError::NotFound(id))?;
    state.parse().map_err(|detail| ParkingError::Corrupt { id, detail })
}

/// Reads a whole parked message and locks its row until the transaction ends.
pub(super) async fn lock_message(
    tx: &mut sqlx::Transaction<'_, MySql>,
    id: u64,
) -> Result<ParkedMessage, ParkingError> {
    let row: Option<Row> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM parked_messages WHERE id = ? FOR UPDATE"))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    row.ok_or(ParkingError::NotFound(id))?.into_message()
}

/// Changes the state and writes the audit row, in the caller's transaction.
pub(super) async fn set_state(
    tx: &mut sqlx::Transaction<'_, MySql>,
    id: u64,
    state: ParkedState,
    action: &str,
    actor: &str,
    reason: Option<&str>,
) -> Result<(), ParkingError> {
    sqlx::query("UPDATE parked_messages SET state = ? WHERE id = ?")
        .bind(state.as_str())
        .bind(id)
        .execute(&mut **tx)
        .await?;
    insert_audit(&mut **tx, id, action, actor, reason).await
}

async fn insert_audit<'e, E>(
    executor: E,
    id: u64,
    action: &str,
    actor: &str,
    reason: Option<&str>,
) -> Result<(), ParkingError>
where
    E: sqlx::Executor<'e, Database = MySql>,
{
    sqlx::query(
        "INSERT INTO parked_message_audit (parked_message_id, action, actor, reason, at) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(id)
    .bind(action)
    .bind(crate::message::retry_metadata::truncate(actor, 128))
    .bind(reason.map(|r| crate::message::retry_metadata::truncate(r, 1024)))
    .bind(Utc::now().naive_utc())
    .execute(executor)
    .await?;
    Ok(())
}

/// An audit row as selected: id, parked_message_id, action, actor, reason, at.
type AuditRow = (u64, u64, String, String, Option<String>, NaiveDateTime);

fn audit_entry((id, parked_message_id, action, actor, reason, at): AuditRow) -> AuditEntry {
    AuditEntry { id, parked_message_id, action, actor, reason, at: at.and_utc() }
}

/// `(hour index, count)` rows into `hours` buckets, oldest first; rows outside them (a clock
/// ahead or behind) are left out.
pub fn hourly_buckets(rows: Vec<(i64, i64)>, hours: u32) -> Vec<u64> {
    let mut out = vec![0u64; hours as usize];
    for (h, n) in rows {
        if let Some(slot) = usize::try_from(h).ok().and_then(|h| out.get_mut(h)) {
            *slot += u64::try_from(n).unwrap_or(0);
        }
    }
    out
}

/// Parked messages by state and per hour, for a chart.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ParkingCounts {
    pub by_state: Vec<(String, u64)>,
    /// Messages parked in each clock hour asked for, oldest hour first.
    pub parked_per_hour: Vec<u64>,
}

/// The one log line per parked message that log-based alerting (Kibana, Splunk) picks up.
/// Identifies the message and its failure; the payload stays in the database.
fn log_parked(id: u64, m: &NewParkedMessage) {
    let key = m.key.as_deref().map(String::from_utf8_lossy);
    tracing::warn!(
        target: LOG_TARGET,
        event = "message_parked",
        parked_id = id,
        source_topic = %m.source_topic,
        partition = m.original_partition,
        offset = m.original_offset,
        dlq_topic = %m.dlq_topic,
        dlq_partition = m.dlq_partition,
        dlq_offset = m.dlq_offset,
        key = key.as_deref(),
        reason = m.reason.as_str(),
        error_kind = %m.error_kind,
        error_message = m.error_message.as_deref(),
        retry_count = m.retry_count,
        first_failure_at = m.first_failure_at.map(crate::message::retry_metadata::rfc3339),
        last_failure_at = m.last_failure_at.map(crate::message::retry_metadata::rfc3339),
        request_id = m.request_id.map(|r| r.to_string()),
        "message parked"
    );
}

#[derive(sqlx::FromRow)]
struct Row {
    id: u64,
    source_topic: String,
    dlq_topic: String,
    dlq_partition: i32,
    dlq_offset: i64,
    original_partition: Option<i32>,
    original_offset: Option<i64>,
    message_key: Option<Vec<u8>>,
    headers: String,
    payload: Option<Vec<u8>>,
    park_reason: String,
    error_kind: String,
    error_message: Option<String>,
    retry_count: u32,
    first_failure_at: Option<NaiveDateTime>,
    last_failure_at: Option<NaiveDateTime>,
    parked_at: NaiveDateTime,
    state: String,
    request_id: Option<Vec<u8>>,
}

impl Row {
    fn into_message(self) -> Result<ParkedMessage, ParkingError> {
        let id = self.id;
        let corrupt = |detail: String| ParkingError::Corrupt { id, detail };
        let utc = |t: Option<NaiveDateTime>| t.map(|t| DateTime::<Utc>::from_naive_utc_and_offset(t, Utc));
        Ok(ParkedMessage {
            id,
            source_topic: self.source_topic,
            dlq_topic: self.dlq_topic,
            dlq_partition: self.dlq_partition,
            dlq_offset: self.dlq_offset,
            original_partition: self.original_partition,
            original_offset: self.original_offset,
            key: self.message_key,
            headers: headers_from_json(&self.headers).map_err(corrupt)?,
            payload: self.payload,
            reason: self.park_reason,
            error_kind: self.error_kind,
            error_message: self.error_message,
            retry_count: self.retry_count,
            first_failure_at: utc(self.first_failure_at),
            last_failure_at: utc(self.last_failure_at),
            parked_at: self.parked_at.and_utc(),
            state: self.state.parse().map_err(corrupt)?,
            request_id: match self.request_id {
                None => None,
                Some(bytes) => Some(Uuid::from_slice(&bytes).map_err(|e| corrupt(format!("request_id: {e}")))?),
            },
        })
    }
}

//! The idempotent write: users keyed by request id, many per transaction.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use registration_events::RegistrationRequested;
use reliable_messaging::consumer::StageTimings;
use reliable_messaging::request_status::{self, Status, Transition};
use reliable_messaging::service::runtime::telemetry;
use sqlx::{MySql, MySqlPool, QueryBuilder};
use tracing::Instrument;
use uuid::Uuid;

use crate::tombstones::{self, Refusal};

/// What became of one registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// The user row exists for this request (inserted now or by an earlier delivery).
    Registered,
    /// Another request already registered this email; recorded as `rejected`.
    EmailTaken,
    /// A row with this request id exists but holds another email or name: this event is not
    /// the request that row records (a request id reused by a producer for other content).
    /// Recorded as `rejected`, never reported as stored.
    RequestIdConflict,
    /// The user withdrew this sign-up (a tombstone holds its request id): never stored.
    Withdrawn,
    /// The address was erased after this sign-up was requested: never stored.
    Erased,
}

pub const EMAIL_TAKEN_REASON: &str = "email already registered";
pub const REQUEST_ID_CONFLICT_REASON: &str =
    "request id already registered with a different email or name; this registration was not stored";

impl Stored {
    /// Why the event was rejected, if it was.
    pub fn rejection_reason(self) -> Option<&'static str> {
        match self {
            Stored::Registered => None,
            Stored::EmailTaken => Some(EMAIL_TAKEN_REASON),
            Stored::RequestIdConflict => Some(REQUEST_ID_CONFLICT_REASON),
            Stored::Withdrawn => Some(tombstones::WITHDRAWN),
            Stored::Erased => Some(tombstones::ERASED),
        }
    }
}

#[derive(Clone)]
pub struct UserStore {
    pool: MySqlPool,
    /// Where the statements' time is recorded (`insert`, `upsert`, `read_back`, `status`).
    stages: Arc<StageTimings>,
}

impl UserStore {
    pub fn new(pool: MySqlPool, stages: Arc<StageTimings>) -> Self {
        Self { pool, stages }
    }

    /// Where this store (and its handler) record their stages.
    pub fn stages(&self) -> &StageTimings {
        &self.stages
    }

    /// Applies a withdrawal (see [`tombstones::withdraw`]).
    pub async fn withdraw(&self, event: &registration_events::RegistrationWithdrawn) -> Result<(), sqlx::Error> {
        tombstones::withdraw(&self.pool, event).await
    }

    /// Applies an erasure (see [`tombstones::erase`]); returns the accounts deleted now.
    pub async fn erase(&self, event: &registration_events::AccountErased) -> Result<u64, sqlx::Error> {
        tombstones::erase(&self.pool, event).await
    }

    /// Stores a batch and returns one result per event, in order.
    ///
    /// The common case, a batch of new sign-ups, is one plain multi-row `INSERT` in autocommit:
    /// if it succeeds, every row was inserted now, with this batch's content, so every event is
    /// `Registered` and nothing needs reading back. InnoDB rolls a failed statement back whole,
    /// so a duplicate key (a redelivery, an address already taken) leaves nothing behind and
    /// the batch takes the careful path below. Any other failure is returned as it is.
    ///
    /// The careful path, in one transaction: `ON DUPLICATE KEY UPDATE request_id = request_id` makes a redelivered event a no-op on
    /// the primary key, and an event for an already-registered email a no-op on the unique
    /// email key. Reading back the rows that hold the batch's request ids tells the cases
    /// apart by *content*, not by the id alone: the row is this event's only if it holds the
    /// event's email and name (the password hash cannot be compared: a retry of the same
    /// request is hashed again with a new salt; the gateway binds the request id to the
    /// password through its fingerprint instead). Rejections are recorded in the same
    /// transaction, so the outcome of every event commits atomically.
    ///
    /// `insert` is the fast path's statement, built ahead by [`PreparedInsert::of`] for exactly
    /// these `events`, in this order.
    pub async fn store_batch(
        &self,
        events: &[&RegistrationRequested],
        insert: PreparedInsert,
    ) -> Result<Vec<Stored>, sqlx::Error> {
        // The database span of the message's trace (of the batch's, when it mixes traces).
        let span = telemetry::span(|| {
            tracing::info_span!(
                "store users",
                otel.name = "INSERT users",
                otel.kind = "client",
                db.system.name = "mysql",
                db.operation.name = "INSERT",
                db.operation.batch.size = events.len(),
                otel.status_code = tracing::field::Empty,
                error.message = tracing::field::Empty,
            )
        });
        let result = self.store_batch_fast_or_careful(events, insert).instrument(span.clone()).await;
        if let Err(e) = &result {
            span.record("otel.status_code", "ERROR");
            span.record("error.message", e.to_string());
        }
        result
    }

    async fn store_batch_fast_or_careful(
        &self,
        events: &[&RegistrationRequested],
        insert: PreparedInsert,
    ) -> Result<Vec<Stored>, sqlx::Error> {
        let Some(mut statement) = insert.0 else {
            return Ok(Vec::new());
        };
        let started = Instant::now();
        let mut tx = self.pool.begin().await?;
        // Tombstones first, locked until the insert commits (see `tombstones`): a withdrawn
        // or erased sign-up takes the careful path, which refuses it.
        if !tombstones::refused(&mut tx, events).await?.is_empty() {
            tx.rollback().await?;
            return self.store_batch_careful(events).await;
        }
        self.stages.record("tombstones", started.elapsed());
        let started = Instant::now();
        let inserted = match statement.build().execute(&mut *tx).await {
            Ok(_) => tx.commit().await,
            Err(e) => {
                // Now, not when the pooled connection is next used: a duplicate key leaves
                // shared locks on the rows it met, which the careful path's upsert would wait
                // for (until the lock wait timeout) if this transaction stayed open.
                let _ = tx.rollback().await;
                Err(e)
            }
        };
        self.stages.record("insert", started.elapsed());
        match inserted {
            Ok(()) => Ok(vec![Stored::Registered; events.len()]),
            // A row with one of these ids or addresses exists: the careful path tells per row.
            // (The failed statement is rolled back whole; the transaction goes with `tx`.)
            Err(e) if e.as_database_error().is_some_and(|d| d.is_unique_violation()) => {
                self.store_batch_careful(events).await
            }
            // Anything else (the database down, a lock wait) would fail the careful path
            // the same way, only later.
            Err(e) => Err(e),
        }
    }

    async fn store_batch_careful(&self, events: &[&RegistrationRequested]) -> Result<Vec<Stored>, sqlx::Error> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let started = Instant::now();
        let mut tx = self.pool.begin().await?;
        let refused = tombstones::refused(&mut tx, events).await?;
        let storable: Vec<&RegistrationRequested> =
            events.iter().copied().filter(|e| !refused.contains_key(&e.request_id)).collect();
        if let Some(mut upsert) = PreparedInsert::of(&storable).0 {
            upsert.push(" ON DUPLICATE KEY UPDATE request_id = request_id");
            upsert.build().execute(&mut *tx).await?;
        }
        self.stages.record("upsert", started.elapsed());
        let started = Instant::now();

        let mut select: QueryBuilder<'_, MySql> =
            QueryBuilder::new("SELECT request_id, email, name FROM users WHERE request_id IN (");
        let mut ids = select.separated(", ");
        for e in events {
            ids.push_bind(e.request_id.as_bytes().to_vec());
        }
        select.push(")");
        // `email` is read as bytes: its binary collation makes the driver refuse it as text,
        // and bytes are what the unique key compares anyway.
        let rows: HashMap<Uuid, (Vec<u8>, String)> = select
            .build_query_as::<(Vec<u8>, Vec<u8>, String)>()
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .filter_map(|(id, email, name)| Some((Uuid::from_slice(&id).ok()?, (email, name))))
            .collect();

        self.stages.record("read_back", started.elapsed());
        let started = Instant::now();
        let results: Vec<Stored> = events
            .iter()
            .map(|e| match refused.get(&e.request_id) {
                Some(Refusal::Withdrawn) => Stored::Withdrawn,
                Some(Refusal::Erased) => Stored::Erased,
                None => outcome(e, rows.get(&e.request_id)),
            })
            .collect();
        let now = Utc::now();
        let erased: Vec<Uuid> =
            events.iter().zip(&results).filter(|(_, r)| **r == Stored::Erased).map(|(e, _)| e.request_id).collect();
        tombstones::record_erased(&mut tx, &erased, now).await?;
        let rejections: Vec<Transition> = events
            .iter()
            .zip(&results)
            .filter_map(|(e, r)| {
                Some(Transition {
                    request_id: e.request_id,
                    status: Status::Rejected,
                    retry_count: 0,
                    reason: Some(r.rejection_reason()?.to_owned()),
                    at: now,
                })
            })
            .collect();
        request_status::record(&mut *tx, &rejections).await?;
        tx.commit().await?;
        self.stages.record("status", started.elapsed());
        Ok(results)
    }
}

/// The fast path's plain multi-row `INSERT` of a batch, built and its parameters encoded ahead
/// of its turn: the consumer prepares the next batch while this one's statement runs, so the
/// database does not wait for 2,500 parameters to be encoded between two statements.
/// Holds no statement for an empty batch: there is nothing to insert, and a `VALUES` list
/// needs at least one row.
pub struct PreparedInsert(Option<QueryBuilder<'static, MySql>>);

impl PreparedInsert {
    pub fn of(events: &[&RegistrationRequested]) -> Self {
        if events.is_empty() {
            return Self(None);
        }
        let mut insert: QueryBuilder<'static, MySql> =
            QueryBuilder::new("INSERT INTO users (request_id, email, name, password_hash, requested_at) ");
        // Owned copies: the statement outlives the borrowed batch it was built from.
        insert.push_values(events, |mut row, e| {
            row.push_bind(e.request_id.as_bytes().to_vec())
                .push_bind(e.email.clone())
                .push_bind(e.name.clone())
                .push_bind(e.password_hash.clone())
                .push_bind(e.requested_at.naive_utc());
        });
        Self(Some(insert))
    }
}

/// What the row holding `event`'s request id (if any) says about the event.
fn outcome(event: &RegistrationRequested, row: Option<&(Vec<u8>, String)>) -> Stored {
    match row {
        // Emails are canonical (the event was refused otherwise), so byte equality is the
        // system's address equality.
        Some((email, name)) if email == event.email.as_bytes() && *name == event.name => Stored::Registered,
        Some(_) => Stored::RequestIdConflict,
        // The insert was a no-op on the unique email key: another request holds the address.
        None => Stored::EmailTaken,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(email: &str, name: &str) -> RegistrationRequested {
        RegistrationRequested {
            schema_version: RegistrationRequested::VERSION,
            request_id: Uuid::new_v4(),
            email: email.into(),
            name: name.into(),
            password_hash: "$argon2id$v=19$m=64,t=1,p=1$c2FsdA$aGFzaA".into(),
            requested_at: Utc::now(),
        }
    }

    #[test]
    fn a_row_counts_as_this_event_only_when_its_content_matches() {
        let e = event("ada@example.com", "Ada");
        let own = (b"ada@example.com".to_vec(), "Ada".to_owned());
        assert_eq!(outcome(&e, Some(&own)), Stored::Registered);
        let other_email = (b"bob@example.com".to_vec(), "Ada".to_owned());
        assert_eq!(outcome(&e, Some(&other_email)), Stored::RequestIdConflict);
        let other_name = (b"ada@example.com".to_vec(), "Adah".to_owned());
        assert_eq!(outcome(&e, Some(&other_name)), Stored::RequestIdConflict);
        assert_eq!(outcome(&e, None), Stored::EmailTaken);
    }
}

//! The idempotent write: users keyed by request id, many per transaction.

use std::collections::HashSet;

use chrono::Utc;
use registration_events::RegistrationRequested;
use reliable_messaging::request_status::{self, Status, Transition};
use sqlx::{MySql, MySqlPool, QueryBuilder};
use uuid::Uuid;

/// What became of one registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// The user row exists for this request (inserted now or by an earlier delivery).
    Registered,
    /// Another request already registered this email; recorded as `rejected`.
    EmailTaken,
}

pub const EMAIL_TAKEN_REASON: &str = "email already registered";

#[derive(Clone)]
pub struct UserStore {
    pool: MySqlPool,
}

impl UserStore {
    pub fn new(pool: MySqlPool) -> Self {
        Self { pool }
    }

    /// Stores a batch in one transaction and returns one result per event, in order.
    ///
    /// `ON DUPLICATE KEY UPDATE request_id = request_id` makes a redelivered event a no-op on
    /// the primary key, and an event for an already-registered email a no-op on the unique
    /// email key; reading back which request ids own a row tells the two apart. Rejections are
    /// recorded in the same transaction, so the outcome of every event commits atomically.
    pub async fn store_batch(&self, events: &[&RegistrationRequested]) -> Result<Vec<Stored>, sqlx::Error> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin().await?;

        let mut insert: QueryBuilder<'_, MySql> =
            QueryBuilder::new("INSERT INTO users (request_id, email, name, password_hash, requested_at) ");
        insert.push_values(events, |mut row, e| {
            row.push_bind(e.request_id.as_bytes().to_vec())
                .push_bind(&e.email)
                .push_bind(&e.name)
                .push_bind(&e.password_hash)
                .push_bind(e.requested_at.naive_utc());
        });
        insert.push(" ON DUPLICATE KEY UPDATE request_id = request_id");
        insert.build().execute(&mut *tx).await?;

        let mut select: QueryBuilder<'_, MySql> = QueryBuilder::new("SELECT request_id FROM users WHERE request_id IN (");
        let mut ids = select.separated(", ");
        for e in events {
            ids.push_bind(e.request_id.as_bytes().to_vec());
        }
        select.push(")");
        let owners: HashSet<Uuid> = select
            .build_query_scalar::<Vec<u8>>()
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .filter_map(|id| Uuid::from_slice(&id).ok())
            .collect();

        let results: Vec<Stored> = events
            .iter()
            .map(|e| if owners.contains(&e.request_id) { Stored::Registered } else { Stored::EmailTaken })
            .collect();
        let now = Utc::now();
        let rejections: Vec<Transition> = events
            .iter()
            .zip(&results)
            .filter(|(_, r)| **r == Stored::EmailTaken)
            .map(|(e, _)| Transition {
                request_id: e.request_id,
                status: Status::Rejected,
                retry_count: 0,
                reason: Some(EMAIL_TAKEN_REASON.to_owned()),
                at: now,
            })
            .collect();
        request_status::record(&mut *tx, &rejections).await?;
        tx.commit().await?;
        Ok(results)
    }
}

//! Idempotency-Key claims in the `idempotency_keys` table, shared by every gateway instance
//! and surviving restarts.
//!
//! One statement claims a key or reads who owns it, without a transaction: the primary key
//! serialises concurrent first uses (the first insert wins, the others see its fingerprint),
//! and an expired claim is taken over by the next request in the same statement. Claims are
//! kept at least the retention window; [`SharedClaims::sweep_expired`] deletes older ones in
//! bounded batches so the table does not grow without limit.

use std::time::Duration;

use chrono::{NaiveDate, NaiveDateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use sqlx::MySqlPool;
use uuid::Uuid;

use super::{Fingerprint, IdempotencyKey};
use crate::configuration::RequestIdSecret;

/// Rows deleted per sweep statement: short statements keep locks short.
const SWEEP_BATCH: u32 = 5_000;

pub struct SharedClaims {
    db: MySqlPool,
    secret: RequestIdSecret,
    ttl: Duration,
}

impl SharedClaims {
    pub fn new(db: MySqlPool, secret: RequestIdSecret, ttl: Duration) -> Self {
        Self { db, secret, ttl }
    }

    /// Claims `key` for `fingerprint` unless a live claim exists, and returns the fingerprint
    /// that owns the key afterwards (this one, or the earlier request's).
    pub async fn claim(
        &self,
        key: &IdempotencyKey,
        fingerprint: Fingerprint,
        request_id: Uuid,
    ) -> Result<Fingerprint, sqlx::Error> {
        let digest = self.key_digest(key);
        let now = Utc::now().naive_utc();
        let expired_before = self.expired_before(now);
        // Assignments run left to right and see the columns already assigned, so
        // `claimed_at`, which the condition reads, is assigned last. VALUES() rather than the
        // `AS new` alias: MariaDB has no alias.
        sqlx::query(
            "INSERT INTO idempotency_keys (key_digest, fingerprint, request_id, claimed_at) \
             VALUES (?, ?, ?, ?) \
             ON DUPLICATE KEY UPDATE \
               fingerprint = IF(claimed_at < ?, VALUES(fingerprint), fingerprint), \
               request_id  = IF(claimed_at < ?, VALUES(request_id), request_id), \
               claimed_at  = IF(claimed_at < ?, VALUES(claimed_at), claimed_at)",
        )
        .bind(digest.as_slice())
        .bind(fingerprint.as_bytes().as_slice())
        // Informational (operators can join it to the request's status); the fingerprint
        // is what decides.
        .bind(request_id.as_bytes().as_slice())
        .bind(now)
        .bind(expired_before)
        .bind(expired_before)
        .bind(expired_before)
        .execute(&self.db)
        .await?;
        let owner: Vec<u8> = sqlx::query_scalar("SELECT fingerprint FROM idempotency_keys WHERE key_digest = ?")
            .bind(digest.as_slice())
            .fetch_one(&self.db)
            .await?;
        let owner: [u8; 32] =
            owner.try_into().map_err(|_| sqlx::Error::Decode("idempotency_keys.fingerprint is not 32 bytes".into()))?;
        Ok(Fingerprint(owner))
    }

    /// Deletes claims older than the retention window; returns how many.
    pub async fn sweep_expired(&self) -> Result<u64, sqlx::Error> {
        let expired_before = self.expired_before(Utc::now().naive_utc());
        let mut deleted = 0;
        loop {
            let n = sqlx::query("DELETE FROM idempotency_keys WHERE claimed_at < ? LIMIT ?")
                .bind(expired_before)
                .bind(SWEEP_BATCH)
                .execute(&self.db)
                .await?
                .rows_affected();
            deleted += n;
            if n < u64::from(SWEEP_BATCH) {
                return Ok(deleted);
            }
        }
    }

    /// The key as stored: keyed, so the table does not reveal the keys clients chose.
    fn key_digest(&self, key: &IdempotencyKey) -> [u8; 32] {
        let mut mac = <Hmac<Sha256>>::new_from_slice(self.secret.expose()).expect("HMAC takes any key length");
        mac.update(b"idempotency-claim:");
        mac.update(key.as_str().as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Claims made before this instant have expired. A retention longer than the calendar
    /// allows means "never expire".
    fn expired_before(&self, now: NaiveDateTime) -> NaiveDateTime {
        let never = NaiveDate::from_ymd_opt(1970, 1, 1).and_then(|d| d.and_hms_opt(0, 0, 0)).expect("valid date");
        chrono::TimeDelta::from_std(self.ttl)
            .ok()
            .and_then(|ttl| now.checked_sub_signed(ttl))
            .map_or(never, |t| t.max(never))
    }
}

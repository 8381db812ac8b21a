//! The ledger: every request the system accepted must end in exactly one place.
//!
//! For a set of accepted request ids it reads the database and counts where each one ended:
//! a row in `users`, a `rejected` status, or a parked message. Anything accepted that is in
//! none of them is **lost**; a request id with two user rows is **duplicated**; a user row
//! whose request id was never accepted is **unexpected**.

use std::collections::HashSet;
use std::fmt;

use uuid::Uuid;

use crate::database::TestDatabase;

#[derive(Debug, Default, Clone)]
pub struct LedgerReport {
    pub accepted: usize,
    pub stored: usize,
    pub rejected: usize,
    pub parked: usize,
    pub lost: Vec<Uuid>,
    pub duplicated: Vec<Uuid>,
    pub unexpected: Vec<Uuid>,
}

impl LedgerReport {
    /// No loss, no duplicate, nothing unexpected.
    pub fn is_clean(&self) -> bool {
        self.lost.is_empty() && self.duplicated.is_empty() && self.unexpected.is_empty()
    }

    pub fn assert_clean(&self) {
        assert!(self.is_clean(), "ledger violated: {self}");
    }
}

impl fmt::Display for LedgerReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "accepted={} stored={} rejected={} parked={} lost={} duplicated={} unexpected={}",
            self.accepted,
            self.stored,
            self.rejected,
            self.parked,
            self.lost.len(),
            self.duplicated.len(),
            self.unexpected.len()
        )
    }
}

/// Checks `accepted` against the database of `db`.
pub async fn check(db: &TestDatabase, accepted: &[Uuid]) -> LedgerReport {
    let users = db.user_rows_by_request().await;
    let rejected = ids(db, "SELECT request_id FROM request_status WHERE status = 'rejected'").await;
    let parked = parked_request_ids(db).await;
    let accepted_set: HashSet<Uuid> = accepted.iter().copied().collect();
    let mut report = LedgerReport { accepted: accepted_set.len(), ..LedgerReport::default() };
    for id in &accepted_set {
        let in_users = users.get(id).copied().unwrap_or(0);
        if in_users > 1 {
            report.duplicated.push(*id);
        }
        if in_users > 0 {
            report.stored += 1;
        } else if rejected.contains(id) {
            report.rejected += 1;
        } else if parked.contains(id) {
            report.parked += 1;
        } else {
            report.lost.push(*id);
        }
    }
    report.unexpected = users.keys().filter(|id| !accepted_set.contains(id)).copied().collect();
    report
}

async fn ids(db: &TestDatabase, sql: &str) -> HashSet<Uuid> {
    sqlx::query_scalar::<_, Vec<u8>>(sql)
        .fetch_all(&db.pool)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter_map(|b| Uuid::from_slice(&b).ok())
        .collect()
}

/// Parked messages that still wait in the parking lot. Before the parking lot exists (or if its
/// table is missing) this is empty.
async fn parked_request_ids(db: &TestDatabase) -> HashSet<Uuid> {
    let mut parked = ids(db, "SELECT request_id FROM request_status WHERE status = 'parked'").await;
    parked.extend(ids(db, "SELECT request_id FROM parked_messages WHERE request_id IS NOT NULL AND state = 'parked'").await);
    parked
}

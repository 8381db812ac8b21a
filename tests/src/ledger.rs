//! The ledger: every request the system accepted must end in exactly one place, holding what
//! was asked for.
//!
//! For the requests answered 202 (each with the email, name and password it carried) it reads
//! the database and counts where each one ended: a row in `users`, a `rejected` status, or a
//! parked message. Violations:
//! * **lost**: accepted, and in none of them;
//! * **duplicated**: a request id with two user rows;
//! * **unexpected**: a user row whose request id was never accepted;
//! * **mismatched**: the row under an accepted request id holds another email or name, or a
//!   password hash that does not verify against the password that request sent: the sign-up
//!   the client was promised is not the one stored (what a key reused with another body did
//!   before request ids were bound to the body);
//! * **falsely rejected**: rejected as "email already registered" while no *other* request's
//!   row holds that address.
//!
//! A request id may be accepted several times (a client retrying with its Idempotency-Key);
//! every acceptance is held to the row.

use std::collections::{HashMap, HashSet};
use std::fmt;

use argon2::{Argon2, PasswordHash, PasswordVerifier};
use registration_events::{canonical_email, RegistrationRequested};
use uuid::Uuid;

use crate::database::TestDatabase;

/// The reason the registration-service records for a taken email.
const EMAIL_TAKEN_REASON: &str = "email already registered";

/// What one accepted request asked for.
#[derive(Debug, Clone)]
pub struct Expected {
    pub request_id: Uuid,
    /// As the client sent it; compared in canonical form.
    pub email: String,
    pub name: String,
    pub password: PasswordEvidence,
}

/// How the ledger checks the stored password hash.
#[derive(Debug, Clone)]
pub enum PasswordEvidence {
    /// The hash an event carried (tests that produce events directly): compared exactly.
    Hash(String),
    /// The password a client sent over HTTP: the stored hash must verify against it.
    Plaintext(String),
}

impl From<&RegistrationRequested> for Expected {
    fn from(event: &RegistrationRequested) -> Self {
        Self {
            request_id: event.request_id,
            email: event.email.clone(),
            name: event.name.clone(),
            password: PasswordEvidence::Hash(event.password_hash.clone()),
        }
    }
}

/// Expectations for events produced directly to the topic.
pub fn expected_from_events(events: &[RegistrationRequested]) -> Vec<Expected> {
    events.iter().map(Expected::from).collect()
}

#[derive(Debug, Default, Clone)]
pub struct LedgerReport {
    pub accepted: usize,
    pub stored: usize,
    pub rejected: usize,
    pub parked: usize,
    pub lost: Vec<Uuid>,
    pub duplicated: Vec<Uuid>,
    pub unexpected: Vec<Uuid>,
    /// Request ids whose row holds other content than (one of) its acceptances.
    pub mismatched: Vec<Uuid>,
    /// Request ids rejected as "email already registered" with no other row for the address.
    pub falsely_rejected: Vec<Uuid>,
}

impl LedgerReport {
    /// No loss, no duplicate, nothing unexpected, every row and rejection true to its request.
    pub fn is_clean(&self) -> bool {
        self.lost.is_empty()
            && self.duplicated.is_empty()
            && self.unexpected.is_empty()
            && self.mismatched.is_empty()
            && self.falsely_rejected.is_empty()
    }

    pub fn assert_clean(&self) {
        assert!(self.is_clean(), "ledger violated: {self}");
    }

    /// Stored rows beyond the 202s whose request was not among `may_be_recorded` (answered "may
    /// have been recorded"): each is a row its client was told was not accepted.
    pub fn stored_but_answered_not_accepted(&self, may_be_recorded: &[Uuid]) -> Vec<Uuid> {
        self.unexpected.iter().filter(|id| !may_be_recorded.contains(id)).copied().collect()
    }
}

impl fmt::Display for LedgerReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "accepted={} stored={} rejected={} parked={} lost={} duplicated={} unexpected={} mismatched={} falsely_rejected={}",
            self.accepted,
            self.stored,
            self.rejected,
            self.parked,
            self.lost.len(),
            self.duplicated.len(),
            self.unexpected.len(),
            self.mismatched.len(),
            self.falsely_rejected.len(),
        )
    }
}

/// One row of `users`, as the ledger reads it.
struct UserRow {
    email: String,
    name: String,
    password_hash: String,
}

/// Checks every acceptance in `expected` against the database of `db`, content included.
pub async fn check(db: &TestDatabase, expected: &[Expected]) -> LedgerReport {
    let users = user_rows(db).await;
    let mut report = check_places(db, expected, &users).await;
    let rejection_reasons = rejection_reasons(db).await;
    let owners_by_email: HashMap<&str, HashSet<Uuid>> = users.iter().fold(HashMap::new(), |mut acc, (id, rows)| {
        for row in rows {
            acc.entry(row.email.as_str()).or_default().insert(*id);
        }
        acc
    });
    let mut mismatched = HashSet::new();
    let mut falsely_rejected = HashSet::new();
    for acceptance in expected {
        let id = acceptance.request_id;
        if let Some(rows) = users.get(&id) {
            if rows.iter().any(|row| !holds(row, acceptance)) {
                mismatched.insert(id);
            }
        } else if rejection_reasons.get(&id).map(String::as_str) == Some(EMAIL_TAKEN_REASON) {
            let email = canonical_email(&acceptance.email).unwrap_or_default();
            let taken_by_another =
                owners_by_email.get(email.as_str()).is_some_and(|owners| owners.iter().any(|owner| *owner != id));
            if !taken_by_another {
                falsely_rejected.insert(id);
            }
        }
    }
    report.mismatched = mismatched.into_iter().collect();
    report.falsely_rejected = falsely_rejected.into_iter().collect();
    report
}

/// Only where each accepted id ended, without reading content: for polling until the system
/// has settled, before the full [`check`].
pub async fn lost_so_far(db: &TestDatabase, accepted: &[Uuid]) -> Vec<Uuid> {
    let expected: Vec<Expected> = accepted
        .iter()
        .map(|id| Expected {
            request_id: *id,
            email: String::new(),
            name: String::new(),
            password: PasswordEvidence::Hash(String::new()),
        })
        .collect();
    let users = user_rows(db).await;
    check_places(db, &expected, &users).await.lost
}

async fn check_places(db: &TestDatabase, expected: &[Expected], users: &HashMap<Uuid, Vec<UserRow>>) -> LedgerReport {
    let rejected = ids(db, "SELECT request_id FROM request_status WHERE status = 'rejected'").await;
    let parked = parked_request_ids(db).await;
    let accepted_set: HashSet<Uuid> = expected.iter().map(|e| e.request_id).collect();
    let mut report = LedgerReport { accepted: accepted_set.len(), ..LedgerReport::default() };
    for id in &accepted_set {
        let in_users = users.get(id).map_or(0, Vec::len);
        if in_users > 1 {
            report.duplicated.push(*id);
        }
        if in_users > 0 && !rejected.contains(id) {
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

/// Whether `row` is the sign-up `acceptance` asked for.
fn holds(row: &UserRow, acceptance: &Expected) -> bool {
    let email_matches = canonical_email(&acceptance.email).is_ok_and(|e| e == row.email);
    let password_matches = match &acceptance.password {
        PasswordEvidence::Hash(hash) => *hash == row.password_hash,
        PasswordEvidence::Plaintext(password) => PasswordHash::new(&row.password_hash)
            .is_ok_and(|hash| Argon2::default().verify_password(password.as_bytes(), &hash).is_ok()),
    };
    email_matches && row.name == acceptance.name.trim() && password_matches
}

async fn user_rows(db: &TestDatabase) -> HashMap<Uuid, Vec<UserRow>> {
    // `email` has a binary collation, which the driver only reads as bytes.
    let rows: Vec<(Vec<u8>, Vec<u8>, String, String)> =
        sqlx::query_as("SELECT request_id, email, name, password_hash FROM users")
            .fetch_all(&db.pool)
            .await
            .expect("read users");
    let mut users: HashMap<Uuid, Vec<UserRow>> = HashMap::new();
    for (id, email, name, password_hash) in rows {
        users.entry(Uuid::from_slice(&id).expect("16-byte id")).or_default().push(UserRow {
            email: String::from_utf8(email).expect("emails are UTF-8"),
            name,
            password_hash,
        });
    }
    users
}

async fn rejection_reasons(db: &TestDatabase) -> HashMap<Uuid, String> {
    let rows: Vec<(Vec<u8>, Option<String>)> =
        sqlx::query_as("SELECT request_id, reason FROM request_status WHERE status = 'rejected'")
            .fetch_all(&db.pool)
            .await
            .unwrap_or_default();
    rows.into_iter()
        .filter_map(|(id, reason)| Some((Uuid::from_slice(&id).ok()?, reason.unwrap_or_default())))
        .collect()
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
    parked.extend(
        ids(db, "SELECT request_id FROM parked_messages WHERE request_id IS NOT NULL AND state = 'parked'").await,
    );
    parked
}

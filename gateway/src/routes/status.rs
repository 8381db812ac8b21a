//! `GET /registrations/{request_id}`: what became of a registration.
//!
//! The id's tag is checked first, without the database: an id this gateway never issued is
//! 404, so a guessed or foreign id can never be reported as completed. Then the outcome is
//! read from where the services downstream record it: a row in `users` (written by the
//! registration-service in the same transaction as the user) means completed, unless the
//! registration-service rejected an event with this id because the row holds other content;
//! a row in `request_status` (rejected, retrying, parked) tells the other outcomes; no row yet
//! means the request is still pending.

use std::time::Duration;

use axum::extract::rejection::PathRejection;
use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, NaiveDateTime, Utc};
use reliable_messaging::request_status;
use serde::Serialize;
use uuid::Uuid;

use crate::app_state::AppState;
use crate::problem::{types, Problem};

/// How long a client is asked to wait when the database cannot be reached.
const DB_RETRY_AFTER: Duration = Duration::from_secs(5);

#[derive(Debug, Serialize, PartialEq)]
pub struct RegistrationStatus {
    pub request_id: Uuid,
    /// `pending`, `completed`, `rejected`, `retrying`, `parked`, `withdrawn` or `erased`.
    pub status: String,
    pub retry_count: u32,
    pub reason: Option<String>,
    /// When the status last changed; null while pending.
    pub updated_at: Option<DateTime<Utc>>,
}

pub async fn registration_status(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<RegistrationStatus>, Problem> {
    let raw = match path {
        Ok(Path(raw)) => raw,
        Err(rejection) => {
            return Err(invalid_id(None).detail(rejection.body_text()));
        }
    };
    // The path as sent, not `raw`: decoded, `/registrations/%C3%87` would be `/registrations/Ç`,
    // which is not the URI reference RFC 9457 requires `instance` to be.
    let instance = uri_reference(uri.path());
    let request_id = Uuid::parse_str(&raw).map_err(|_| invalid_id(Some(&instance)))?;
    if !state.request_ids.verify(&request_id) {
        return Err(Problem::new(StatusCode::NOT_FOUND, types::UNKNOWN_REQUEST, "Unknown request")
            .detail("no registration with this request id was accepted here")
            .instance(instance));
    }
    lookup(&state, request_id).await.map(Json).map_err(|error| database_problem(error, instance))
}

async fn lookup(state: &AppState, request_id: Uuid) -> Result<RegistrationStatus, sqlx::Error> {
    // A tombstone outranks everything else: the sign-up was withdrawn or erased, whatever
    // rows about it still say (a `parked` status, a row not yet deleted).
    if let Some((kind, reason, at)) = tombstone(state, request_id).await? {
        return Ok(RegistrationStatus {
            request_id,
            status: kind,
            retry_count: 0,
            reason: Some(reason),
            updated_at: Some(at.and_utc()),
        });
    }
    let created_at: Option<NaiveDateTime> = sqlx::query_scalar("SELECT created_at FROM users WHERE request_id = ?")
        .bind(request_id.as_bytes().to_vec())
        .fetch_optional(&state.db)
        .await?;
    let recorded = request_status::fetch(&state.db, request_id).await?;
    let status = match (created_at, recorded) {
        // A row holds this id, yet an event with this id was rejected: the row was written for
        // different content (the registration-service compares email and name), so this
        // request's own sign-up is not what is stored. Never "completed" then.
        (Some(_), Some(recorded)) if recorded.status == "rejected" => RegistrationStatus {
            request_id,
            status: recorded.status,
            retry_count: recorded.retry_count,
            reason: recorded.reason,
            updated_at: Some(recorded.updated_at.and_utc()),
        },
        // The user row is the proof of success; retries it took are still worth telling.
        (Some(created_at), recorded) => RegistrationStatus {
            request_id,
            status: "completed".into(),
            retry_count: recorded.map_or(0, |r| r.retry_count),
            reason: None,
            updated_at: Some(created_at.and_utc()),
        },
        (None, Some(recorded)) => RegistrationStatus {
            request_id,
            status: recorded.status,
            retry_count: recorded.retry_count,
            reason: recorded.reason,
            updated_at: Some(recorded.updated_at.and_utc()),
        },
        (None, None) => {
            RegistrationStatus { request_id, status: "pending".into(), retry_count: 0, reason: None, updated_at: None }
        }
    };
    Ok(status)
}

/// The tombstone of `request_id`: kind (`withdrawn` or `erased`), why, and when.
pub(super) async fn tombstone(
    state: &AppState,
    request_id: Uuid,
) -> Result<Option<(String, String, NaiveDateTime)>, sqlx::Error> {
    sqlx::query_as("SELECT kind, reason, recorded_at FROM registration_tombstones WHERE request_id = ?")
        .bind(request_id.as_bytes().to_vec())
        .fetch_optional(&state.db)
        .await
}

/// `path` with every byte a URI path may not hold percent-encoded (RFC 3986 §3.3). The
/// HTTP parser lets a few such bytes through (`"`, `{`, `|`, ...), and a `%` not followed by
/// two hex digits is not an escape.
pub(super) fn uri_reference(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    for (i, &byte) in bytes.iter().enumerate() {
        let allowed = byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&byte);
        let escape = byte == b'%'
            && bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
            && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
        if allowed || escape {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

pub(super) fn invalid_id(instance: Option<&str>) -> Problem {
    let problem = Problem::new(StatusCode::BAD_REQUEST, types::INVALID_REQUEST_ID, "Invalid request id")
        .detail("the request id must be a UUID as returned by POST /registrations");
    match instance {
        Some(instance) => problem.instance(instance),
        None => problem,
    }
}

/// The database is only a window on the outcome: when it cannot be reached the answer is
/// "ask again later", not an error of the request.
fn database_problem(error: sqlx::Error, instance: String) -> Problem {
    if is_unreachable(&error) {
        tracing::warn!(%error, "status database unreachable");
        Problem::new(StatusCode::SERVICE_UNAVAILABLE, types::STATUS_UNAVAILABLE, "Status temporarily unavailable")
            .detail("the status store cannot be reached; the registration itself is not affected")
            .retry_after(DB_RETRY_AFTER)
            .instance(instance)
    } else {
        tracing::error!(%error, "reading the registration status failed");
        Problem::from_status(StatusCode::INTERNAL_SERVER_ERROR).instance(instance)
    }
}

/// Whether `error` says the database cannot be reached (worth retrying later), not that the
/// statement is wrong.
pub(super) fn is_unreachable(error: &sqlx::Error) -> bool {
    matches!(
        error,
        sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Protocol(_)
    )
}

#[cfg(test)]
mod tests {
    use super::uri_reference;

    #[test]
    fn instance_is_the_path_as_a_valid_uri_reference() {
        assert_eq!(uri_reference("/registrations/%C3%87"), "/registrations/%C3%87");
        assert_eq!(uri_reference("/registrations/abc-1_2.~"), "/registrations/abc-1_2.~");
        assert_eq!(uri_reference("/registrations/a\"b{c}|"), "/registrations/a%22b%7Bc%7D%7C");
        assert_eq!(uri_reference("/registrations/100%"), "/registrations/100%25");
        assert_eq!(uri_reference("/registrations/%zz"), "/registrations/%25zz");
        assert_eq!(uri_reference("/registrations/Ç"), "/registrations/%C3%87");
    }
}

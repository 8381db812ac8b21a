//! `DELETE /registrations/{request_id}`: the user withdraws a sign-up. The unguessable request
//! id is the capability (its tag is checked as the status route checks it: an id this gateway
//! never issued is 404). The answer is 202 only once the broker has the withdrawal event
//! (`acks=all`); the registration-service then deletes the user row and keeps a tombstone,
//! and `GET` on the same URL reads `withdrawn`. A repeated DELETE is idempotent: once the
//! tombstone exists it is answered 202 without publishing again.
//!
//! Key of the event: the sign-up's email when its row is stored (read here), so the
//! withdrawal lands on the sign-up's partition behind it; else the request id. Either way the
//! tombstone makes the order of the two records irrelevant to the outcome.

use std::time::Duration;

use axum::extract::rejection::PathRejection;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use registration_events::RegistrationWithdrawn;
use reliable_messaging::message::{Header, REQUEST_ID_HEADER};
use reliable_messaging::producer::OutboundRecord;
use serde_json::json;
use uuid::Uuid;

use super::status::{invalid_id, is_unreachable, tombstone, uri_reference};
use crate::app_state::AppState;
use crate::problem::{types, Problem};

/// How long a client is asked to wait before repeating a withdrawal that was not accepted.
const RETRY_AFTER: Duration = Duration::from_secs(5);

pub async fn withdraw(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    let raw = match path {
        Ok(Path(raw)) => raw,
        Err(rejection) => return invalid_id(None).detail(rejection.body_text()).into_response(),
    };
    let instance = uri_reference(uri.path());
    let Ok(request_id) = Uuid::parse_str(&raw) else {
        return invalid_id(Some(&instance)).into_response();
    };
    if !state.request_ids.verify(&request_id) {
        return Problem::new(StatusCode::NOT_FOUND, types::UNKNOWN_REQUEST, "Unknown request")
            .detail("no registration with this request id was accepted here")
            .instance(instance)
            .into_response();
    }
    match withdraw_accepted(&state, request_id).await {
        Ok(()) => accepted(request_id),
        Err(problem) => problem.instance(instance).into_response(),
    }
}

async fn withdraw_accepted(state: &AppState, request_id: Uuid) -> Result<(), Problem> {
    if tombstone(state, request_id).await.map_err(not_accepted)?.is_some() {
        return Ok(());
    }
    let email: Option<Vec<u8>> = sqlx::query_scalar("SELECT email FROM users WHERE request_id = ?")
        .bind(request_id.as_bytes().to_vec())
        .fetch_optional(&state.db)
        .await
        .map_err(not_accepted)?;
    let event = RegistrationWithdrawn::new(request_id, Utc::now());
    let record = OutboundRecord {
        topic: state.registrations_topic.to_string(),
        key: Some(email.unwrap_or_else(|| request_id.to_string().into_bytes())),
        payload: Some(event.to_json()),
        headers: vec![Header { key: REQUEST_ID_HEADER.to_owned(), value: Some(request_id.to_string().into_bytes()) }],
    };
    match state.producer.send(&record).await {
        Ok(stored) => {
            tracing::info!(%request_id, partition = stored.partition, offset = stored.offset, "withdrawal accepted");
            Ok(())
        }
        Err(error) => {
            tracing::warn!(%request_id, %error, "withdrawal not acknowledged by the broker");
            Err(Problem::new(StatusCode::SERVICE_UNAVAILABLE, types::NOT_ACCEPTED, "Withdrawal not accepted")
                .detail(
                    "the message broker did not acknowledge the withdrawal in time; it may or may not have been \
                     recorded. Repeat the DELETE: it is idempotent.",
                )
                .retry_after(RETRY_AFTER))
        }
    }
}

/// The database could not tell whether the sign-up is stored (to key the event by its
/// address) or already withdrawn: nothing was published.
fn not_accepted(error: sqlx::Error) -> Problem {
    if is_unreachable(&error) {
        tracing::warn!(%error, "database unreachable; withdrawal not accepted");
    } else {
        tracing::error!(%error, "reading the sign-up to withdraw failed");
    }
    Problem::new(StatusCode::SERVICE_UNAVAILABLE, types::NOT_ACCEPTED, "Withdrawal not accepted")
        .detail("the status store cannot be reached; nothing was withdrawn. Repeat the DELETE later.")
        .retry_after(RETRY_AFTER)
}

/// 202 with where to follow the withdrawal: `GET` reads `withdrawn` once it is applied.
fn accepted(request_id: Uuid) -> Response {
    let mut response =
        (StatusCode::ACCEPTED, Json(json!({"request_id": request_id, "status": "withdrawal_pending"}))).into_response();
    let location = format!("/registrations/{request_id}");
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, HeaderValue::from_str(&location).expect("uuid path is a valid header"));
    headers.insert(REQUEST_ID_HEADER, HeaderValue::from_str(&request_id.to_string()).expect("uuid is a valid header"));
    response
}

//! `POST /registrations`: validate, hash, publish, and answer 202 only once the broker has
//! acknowledged the record. Next stop of an accepted registration: the registrations topic,
//! read by the registration-service.

use std::time::{Duration, Instant};

use axum::extract::{Extension, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use registration_events::RegistrationRequested;
use reliable_messaging::kafka::trace_context;
use reliable_messaging::message::Header;
use reliable_messaging::message::REQUEST_ID_HEADER;
use reliable_messaging::producer::OutboundRecord;
use serde_json::json;
use tracing::Instrument;
use uuid::Uuid;

use crate::app_state::AppState;
use crate::domain::{FieldError, NewRegistration, RegistrationForm};
use crate::idempotency::{self, Claim, Fingerprint, IdempotencyKey};
use crate::json_body::{BodyRejection, JsonBody};
use crate::metrics::RejectReason;
use crate::password_hashing::HashError;
use crate::problem::{types, Problem};
use crate::request_deadline::Handover;

/// How long a client is asked to wait before retrying when hashing is saturated.
const OVERLOADED_RETRY_AFTER: Duration = Duration::from_secs(1);
/// ... and when the broker did not acknowledge.
const NOT_ACKNOWLEDGED_RETRY_AFTER: Duration = Duration::from_secs(5);

pub async fn register(
    State(state): State<AppState>,
    handover: Option<Extension<Handover>>,
    headers: HeaderMap,
    body: Result<JsonBody<RegistrationForm>, BodyRejection>,
) -> Response {
    let started = Instant::now();
    let handover = handover.map(|Extension(handover)| handover);
    match accept(&state, handover.as_ref(), &headers, body).await {
        Ok(accepted) => {
            state.metrics.accepted(started.elapsed());
            accepted.into_response()
        }
        Err(error) => {
            state.metrics.rejected(error.reason());
            if matches!(error, RegistrationError::NotAcknowledged { .. }) {
                state.metrics.publish_failed();
            }
            error.into_response()
        }
    }
}

async fn accept(
    state: &AppState,
    handover: Option<&Handover>,
    headers: &HeaderMap,
    body: Result<JsonBody<RegistrationForm>, BodyRejection>,
) -> Result<Accepted, RegistrationError> {
    let JsonBody(form) = body?;
    let key = idempotency_key(headers)?;
    let registration = NewRegistration::try_from(form).map_err(RegistrationError::InvalidFields)?;

    let request_id = match &key {
        None => state.request_ids.random(),
        Some(key) => {
            let fingerprint = Fingerprint::of(&registration, &state.secret);
            // Bound to the body: even if the claim below is decided by this instance's map
            // alone, another body under this key gets another id, never this one's outcome.
            let request_id = state.request_ids.for_idempotency_key(key.as_str(), &fingerprint);
            let (claim, source) =
                state.metrics.stages.time("idempotency", state.idempotency.claim(key, fingerprint, request_id)).await;
            state.metrics.idempotency_claim(source);
            if claim == Claim::Conflict {
                return Err(RegistrationError::IdempotencyKeyReused);
            }
            // A retry publishes again under the same id: harmless, the consumer upserts.
            request_id
        }
    };

    let hashing = reliable_messaging::service::runtime::telemetry::span(|| tracing::info_span!("hash password"));
    let password_hash = state.hasher.hash(&registration.password).instrument(hashing).await?;
    let event = RegistrationRequested {
        // The lowest version with sign-ups: readers of every version read it (rolling deploys).
        schema_version: RegistrationRequested::VERSION,
        request_id,
        email: registration.email.as_str().to_owned(),
        name: registration.name.as_str().to_owned(),
        password_hash,
        requested_at: Utc::now(),
    };
    let record = OutboundRecord {
        topic: state.registrations_topic.to_string(),
        // Keyed by email: all requests for one address stay in order on one partition.
        key: Some(event.email.clone().into_bytes()),
        payload: Some(event.to_json()),
        headers: std::iter::once(Header {
            key: REQUEST_ID_HEADER.to_owned(),
            value: Some(request_id.to_string().into_bytes()),
        })
        .chain(caller_trace_context(headers))
        .collect(),
    };
    // From here the record may be stored whatever happens to this request: the overall
    // request limit no longer cuts it (its "not accepted" would be a lie); the publish
    // timeout below decides, and its 503 says "may have been recorded".
    if let Some(handover) = handover {
        handover.mark();
    }
    // The producer bounds the wait by the publish timeout itself (it was built with it), a full
    // local queue included, so the answer never comes later than promised.
    let stored = match state.metrics.stages.time("publish", state.producer.send(&record)).await {
        Ok(stored) => stored,
        Err(error) => {
            tracing::warn!(%request_id, %error, timeout = ?state.publish_timeout, "registration not acknowledged by the broker");
            return Err(RegistrationError::NotAcknowledged { request_id, error: error.to_string() });
        }
    };
    tracing::info!(%request_id, partition = stored.partition, offset = stored.offset, "registration accepted");
    Ok(Accepted { request_id })
}

/// The caller's W3C trace context, passed on as record headers. With tracing on the producer
/// replaces it with the gateway's own span (a child of it); with tracing off it travels as
/// it came, so services further on can still join the caller's trace.
fn caller_trace_context(headers: &HeaderMap) -> impl Iterator<Item = Header> + '_ {
    [trace_context::TRACEPARENT, trace_context::TRACESTATE]
        .into_iter()
        .filter_map(|name| headers.get(name).map(|v| (name, v)))
        .filter(|(_, v)| v.len() <= 512)
        .map(|(name, v)| Header { key: name.to_owned(), value: Some(v.as_bytes().to_vec()) })
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, RegistrationError> {
    let mut values = headers.get_all(idempotency::HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(RegistrationError::InvalidIdempotencyKey("must be sent at most once".into()));
    }
    IdempotencyKey::parse(value.as_bytes()).map(Some).map_err(RegistrationError::InvalidIdempotencyKey)
}

/// 202 with where to ask for the outcome.
struct Accepted {
    request_id: Uuid,
}

impl IntoResponse for Accepted {
    fn into_response(self) -> Response {
        let mut response =
            (StatusCode::ACCEPTED, Json(json!({"request_id": self.request_id, "status": "pending"}))).into_response();
        set_request_headers(response.headers_mut(), self.request_id);
        response
    }
}

/// `Location` (where to ask for the outcome) and the request id header.
fn set_request_headers(headers: &mut HeaderMap, request_id: Uuid) {
    let location = format!("/registrations/{request_id}");
    headers.insert(header::LOCATION, HeaderValue::from_str(&location).expect("uuid path is a valid header"));
    headers.insert(REQUEST_ID_HEADER, HeaderValue::from_str(&request_id.to_string()).expect("uuid is a valid header"));
}

#[derive(Debug, thiserror::Error)]
enum RegistrationError {
    #[error(transparent)]
    Body(#[from] BodyRejection),
    #[error("invalid Idempotency-Key: {0}")]
    InvalidIdempotencyKey(String),
    #[error("{} invalid field(s)", .0.len())]
    InvalidFields(Vec<FieldError>),
    #[error("Idempotency-Key reused with a different request")]
    IdempotencyKeyReused,
    #[error(transparent)]
    Hashing(#[from] HashError),
    /// The record may still be stored (an acknowledgement lost on the way back, or a
    /// producer retry that lands later), so the answer carries the id it would have had.
    #[error("the broker did not acknowledge registration {request_id}: {error}")]
    NotAcknowledged { request_id: Uuid, error: String },
}

impl RegistrationError {
    fn reason(&self) -> RejectReason {
        match self {
            RegistrationError::Body(BodyRejection::UnsupportedMediaType) => RejectReason::UnsupportedMediaType,
            RegistrationError::Body(BodyRejection::TooLarge) => RejectReason::PayloadTooLarge,
            RegistrationError::Body(BodyRejection::Unreadable(_) | BodyRejection::Malformed(_)) => {
                RejectReason::MalformedJson
            }
            RegistrationError::Body(BodyRejection::WrongShape) => RejectReason::InvalidFields,
            RegistrationError::InvalidIdempotencyKey(_) => RejectReason::InvalidIdempotencyKey,
            RegistrationError::InvalidFields(_) => RejectReason::InvalidFields,
            RegistrationError::IdempotencyKeyReused => RejectReason::IdempotencyConflict,
            RegistrationError::Hashing(HashError::Overloaded) => RejectReason::Overloaded,
            RegistrationError::Hashing(HashError::Failed(_)) => RejectReason::HashingFailed,
            RegistrationError::NotAcknowledged { .. } => RejectReason::NotAcknowledged,
        }
    }
}

impl IntoResponse for RegistrationError {
    fn into_response(self) -> Response {
        let problem = match self {
            RegistrationError::Body(rejection) => Problem::from(rejection),
            RegistrationError::InvalidIdempotencyKey(message) => {
                Problem::new(StatusCode::BAD_REQUEST, types::INVALID_IDEMPOTENCY_KEY, "Invalid Idempotency-Key")
                    .detail(format!("Idempotency-Key {message}"))
                    .errors(vec![FieldError::new("Idempotency-Key", message)])
            }
            RegistrationError::InvalidFields(errors) => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, types::INVALID_FIELDS, "Invalid fields")
                    .detail(format!("{} field(s) are invalid", errors.len()))
                    .errors(errors)
            }
            RegistrationError::IdempotencyKeyReused => Problem::new(
                StatusCode::CONFLICT,
                types::IDEMPOTENCY_KEY_REUSED,
                "Idempotency-Key reused with a different request",
            )
            .detail("this Idempotency-Key was already used with a different email, name or password; use a new key"),
            RegistrationError::Hashing(HashError::Overloaded) => {
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, types::OVERLOADED, "Too many requests in progress")
                    .detail("the registration was not accepted; retry later")
                    .retry_after(OVERLOADED_RETRY_AFTER)
            }
            RegistrationError::Hashing(HashError::Failed(error)) => {
                tracing::error!(%error, "password hashing failed");
                Problem::from_status(StatusCode::INTERNAL_SERVER_ERROR)
            }
            RegistrationError::NotAcknowledged { request_id, .. } => {
                // Not a promise either way: the broker may still store the record. The id and
                // Location let the client ask what became of it instead of signing up again
                // (and being told its own email is taken).
                let mut response =
                    Problem::new(StatusCode::SERVICE_UNAVAILABLE, types::NOT_ACCEPTED, "Registration not accepted")
                        .detail(format!(
                            "the message broker did not acknowledge the registration in time; it may or may not \
                         have been recorded. Ask GET /registrations/{request_id} what became of it, or retry \
                         with the same Idempotency-Key."
                        ))
                        .retry_after(NOT_ACKNOWLEDGED_RETRY_AFTER)
                        .extension("request_id", json!(request_id))
                        .instance("/registrations")
                        .into_response();
                set_request_headers(response.headers_mut(), request_id);
                return response;
            }
        };
        problem.instance("/registrations").into_response()
    }
}

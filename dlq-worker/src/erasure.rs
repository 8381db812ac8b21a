//! An operator's erasure of an address: `POST /admin/erasures {"email", "reason"}` (admin
//! token) and `dlq-worker erase <email> --reason ...`. Both write an audit row (who, why, the
//! address's digest, never the address) and then publish an `AccountErased` event on the
//! sign-up topic, keyed by the address, with `acks=all`; the registration-service deletes the
//! accounts and keeps tombstones. 202 (or the CLI's exit 0) only after the broker has it; a
//! failed publish leaves the audit row, and repeating the erasure is harmless.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Json, Router};
use chrono::Utc;
use registration_events::events::MAX_REASON_CHARS;
use registration_events::{canonical_email, email_digest, AccountErased};
use reliable_messaging::message::Header;
use reliable_messaging::producer::{DurableProducer, OutboundRecord};
use serde::{Deserialize, Serialize};
use sqlx::MySqlPool;
use uuid::Uuid;

use crate::admin::{require_bearer, Actor};
use crate::admin_tokens::AdminTokens;
use crate::problem::{self, Problem};

/// Header naming the erasure on its record (tools follow it as they follow `x-request-id`).
pub const ERASURE_ID_HEADER: &str = "x-erasure-id";

/// Where erasures are written and published.
#[derive(Clone)]
pub struct Erasures {
    pub pool: MySqlPool,
    pub producer: DurableProducer,
    /// The sign-up topic (`ERASURE_TOPIC`).
    pub topic: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ErasureError {
    #[error("{0}")]
    Invalid(String),
    #[error("writing the audit row failed: {0}")]
    Audit(#[from] sqlx::Error),
    #[error("the broker did not acknowledge the erasure {erasure_id} (its audit row is written; repeat it): {error}")]
    NotAcknowledged { erasure_id: Uuid, error: String },
}

/// What an accepted erasure was.
#[derive(Debug, Clone, Serialize)]
pub struct Accepted {
    pub erasure_id: Uuid,
    pub actor: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

impl Erasures {
    /// Audits, then publishes the erasure of `email` (any spelling; its canonical form is used).
    pub async fn erase(&self, email: &str, reason: &str, actor: &str) -> Result<Accepted, ErasureError> {
        let email = canonical_email(email).map_err(|e| ErasureError::Invalid(format!("email: {e}")))?;
        let reason = reason.trim();
        let chars = reason.chars().count();
        if chars == 0 || chars > MAX_REASON_CHARS || reason.chars().any(char::is_control) {
            return Err(ErasureError::Invalid(format!(
                "reason must be 1 to {MAX_REASON_CHARS} characters without control characters"
            )));
        }
        let event = AccountErased::new(Uuid::new_v4(), email, reason.to_owned(), Utc::now());
        sqlx::query(
            "INSERT INTO erasure_audit (erasure_id, email_digest, actor, reason, requested_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(event.erasure_id.as_bytes().to_vec())
        .bind(email_digest(&event.email).to_vec())
        .bind(actor)
        .bind(&event.reason)
        .bind(event.erased_at.naive_utc())
        .execute(&self.pool)
        .await?;
        let record = OutboundRecord {
            topic: self.topic.clone(),
            key: Some(event.email.clone().into_bytes()),
            payload: Some(event.to_json()),
            headers: vec![Header {
                key: ERASURE_ID_HEADER.to_owned(),
                value: Some(event.erasure_id.to_string().into_bytes()),
            }],
        };
        let stored = self
            .producer
            .send(&record)
            .await
            .map_err(|e| ErasureError::NotAcknowledged { erasure_id: event.erasure_id, error: e.to_string() })?;
        tracing::info!(erasure_id = %event.erasure_id, %actor, partition = stored.partition, offset = stored.offset, "erasure published");
        Ok(Accepted {
            erasure_id: event.erasure_id,
            actor: actor.to_owned(),
            topic: self.topic.clone(),
            partition: stored.partition,
            offset: stored.offset,
        })
    }
}

/// `POST /admin/erasures`, behind the admin bearer token; the token's name is the actor.
pub fn router(erasures: Erasures, tokens: AdminTokens) -> Router {
    Router::new()
        .route("/admin/erasures", post(erase))
        .route_layer(middleware::from_fn(move |request: Request, next: Next| {
            let tokens = tokens.clone();
            async move { require_bearer(&tokens, request, next).await }
        }))
        .with_state(erasures)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EraseBody {
    email: String,
    reason: String,
}

async fn erase(
    State(erasures): State<Erasures>,
    Extension(actor): Extension<Actor>,
    body: Result<Json<EraseBody>, JsonRejection>,
) -> Response {
    let Json(body) = match body {
        Ok(body) => body,
        Err(rejection) => return problem::invalid(rejection.body_text()).into_response(),
    };
    match erasures.erase(&body.email, &body.reason, &actor.0).await {
        Ok(accepted) => (StatusCode::ACCEPTED, Json(accepted)).into_response(),
        Err(e) => erasure_problem(e).into_response(),
    }
}

fn erasure_problem(e: ErasureError) -> Problem {
    match e {
        ErasureError::Invalid(detail) => problem::invalid(detail),
        other => {
            tracing::error!(error = %other, "erasure not accepted");
            Problem::new(StatusCode::SERVICE_UNAVAILABLE, problem::types::UNAVAILABLE, "Erasure not accepted")
                .detail(other.to_string())
        }
    }
}

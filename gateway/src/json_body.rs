//! A JSON body extractor whose every rejection is a problem document.
//!
//! axum's own `Json` answers bad input in plain text; clients of this API get
//! `application/problem+json` for every error, with a status that says what to fix:
//! 415 wrong or missing content type, 413 body over the limit, 400 not JSON at all,
//! 422 JSON of the wrong shape.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::problem::{types, Problem};

/// Largest accepted body: a sign-up is three short strings.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// A JSON body deserialised into `T`.
pub struct JsonBody<T>(pub T);

/// Why a body could not be read as JSON.
#[derive(Debug, thiserror::Error)]
pub enum BodyRejection {
    #[error("expected Content-Type application/json")]
    UnsupportedMediaType,
    #[error("the body is larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
    #[error("the body could not be read: {0}")]
    Unreadable(String),
    #[error("the body is not valid JSON: {0}")]
    Malformed(String),
    /// Valid JSON that is not an object of the expected type. Serde's message is not kept:
    /// it may quote the input (`invalid type: string "..."`), which could be a password.
    #[error("the body is JSON, but not an object with the expected members")]
    WrongShape,
}

impl<T, S> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = BodyRejection;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json_content_type(request.headers()) {
            return Err(BodyRejection::UnsupportedMediaType);
        }
        // `Bytes` honours the router's `DefaultBodyLimit`, with or without Content-Length.
        let bytes = Bytes::from_request(request, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                BodyRejection::TooLarge
            } else {
                BodyRejection::Unreadable(rejection.body_text())
            }
        })?;
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| {
            use serde_json::error::Category;
            match e.classify() {
                Category::Data => BodyRejection::WrongShape,
                // Syntax messages give a position, never input text.
                Category::Syntax | Category::Eof | Category::Io => BodyRejection::Malformed(e.to_string()),
            }
        })
    }
}

/// `application/json` or any `application/*+json`, parameters (charset) allowed.
fn is_json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

impl IntoResponse for BodyRejection {
    fn into_response(self) -> Response {
        Problem::from(self).into_response()
    }
}

impl From<BodyRejection> for Problem {
    fn from(rejection: BodyRejection) -> Self {
        let detail = rejection.to_string();
        let problem = match rejection {
            BodyRejection::UnsupportedMediaType => Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                types::UNSUPPORTED_MEDIA_TYPE,
                "Unsupported media type",
            ),
            BodyRejection::TooLarge => {
                Problem::new(StatusCode::PAYLOAD_TOO_LARGE, types::PAYLOAD_TOO_LARGE, "Request body too large")
            }
            BodyRejection::Unreadable(_) | BodyRejection::Malformed(_) => {
                Problem::new(StatusCode::BAD_REQUEST, types::MALFORMED_JSON, "Malformed JSON")
            }
            BodyRejection::WrongShape => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, types::INVALID_FIELDS, "Invalid request body")
            }
        };
        problem.detail(detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn recognises_json_media_types() {
        let with = |ct: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
            is_json_content_type(&h)
        };
        assert!(with("application/json"));
        assert!(with("Application/JSON; charset=utf-8"));
        assert!(with("application/merge-patch+json"));
        assert!(!with("text/plain"));
        assert!(!with("application/x-www-form-urlencoded"));
        assert!(!with("application/jsonx"));
        assert!(!is_json_content_type(&HeaderMap::new()));
    }
}

//! Error answers as RFC 9457 problem documents (`application/problem+json`), shared by every
//! service's HTTP API.
//!
//! Every error a service sends is one of these, including the ones axum and tower would
//! otherwise answer in plain text (unknown route, wrong method, body too large, timeout,
//! panic): [`ensure_problem_body`] rewrites any bare error response on its way out. Each
//! service names its own problem types (relative URI references under `/problems/`).

use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// One invalid input, for the `errors` extension member of a 422.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

/// One problem document, plus the `Retry-After` header some of them carry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Extension member: one entry per invalid field.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Other extension members (RFC 9457 3.2), e.g. the `request_id` a client can follow.
    #[serde(flatten)]
    pub extensions: serde_json::Map<String, serde_json::Value>,
    #[serde(skip)]
    pub retry_after: Option<Duration>,
}

impl Problem {
    pub fn new(status: StatusCode, problem_type: &str, title: &str) -> Self {
        Self {
            problem_type: problem_type.to_owned(),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: None,
            instance: None,
            errors: Vec::new(),
            extensions: serde_json::Map::new(),
            retry_after: None,
        }
    }

    /// A problem that says no more than its status code (`type` "about:blank", RFC 9457 4.2.1).
    pub fn from_status(status: StatusCode) -> Self {
        Self::new(status, "about:blank", status.canonical_reason().unwrap_or("Error"))
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn instance(mut self, instance: impl Into<String>) -> Self {
        self.instance = Some(instance.into());
        self
    }

    pub fn errors(mut self, errors: Vec<FieldError>) -> Self {
        self.errors = errors;
        self
    }

    /// Adds an extension member. Names of the standard members are not allowed here.
    pub fn extension(mut self, name: &str, value: serde_json::Value) -> Self {
        debug_assert!(
            !["type", "title", "status", "detail", "instance", "errors"].contains(&name),
            "{name} is a standard member"
        );
        self.extensions.insert(name.to_owned(), value);
        self
    }

    pub fn retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self).expect("problem serialises");
        let mut response = (self.status_code(), body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_CONTENT_TYPE));
        if self.status == StatusCode::UNAUTHORIZED.as_u16() {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(after) = self.retry_after {
            // Whole seconds, at least one: "Retry-After: 0" would invite a busy loop.
            let secs = after.as_secs().max(1);
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// Middleware: replaces the body of any error response that is not already JSON with a
/// problem document for its status, keeping its other headers (`Allow` on a 405,
/// `Retry-After`). Covers what the framework answers on its own.
pub async fn ensure_problem_body(request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(&response) {
        return response;
    }
    let (mut parts, bare_body) = response.into_parts();
    // The framework's own text (an extractor rejection, say) is the most useful detail.
    let detail = axum::body::to_bytes(bare_body, 16 * 1024)
        .await
        .ok()
        .and_then(|b| String::from_utf8(b.to_vec()).ok())
        .filter(|s| !s.trim().is_empty());
    let mut problem = Problem::from_status(status).instance(path);
    problem.detail = detail;
    let body = serde_json::to_vec(&problem).expect("problem serialises");
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_CONTENT_TYPE));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with(PROBLEM_CONTENT_TYPE) || ct.starts_with("application/json"))
}

/// For `CatchPanicLayer`: a panicking handler answers a problem, not a dropped connection.
pub fn from_panic(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("request handler panicked");
    Problem::from_status(StatusCode::INTERNAL_SERVER_ERROR).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::to_bytes;
    use serde_json::{json, Value};

    async fn body_json(response: Response) -> Value {
        serde_json::from_slice(&to_bytes(response.into_body(), 1 << 20).await.unwrap()).unwrap()
    }

    #[tokio::test]
    async fn serialises_as_rfc9457_with_field_errors() {
        let response = Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "/problems/invalid-fields", "Invalid fields")
            .detail("2 fields are invalid")
            .instance("/registrations")
            .errors(vec![FieldError::new("email", "must contain an @"), FieldError::new("name", "is required")])
            .into_response();
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_CONTENT_TYPE);
        assert!(response.headers().get(header::RETRY_AFTER).is_none());
        assert_eq!(
            body_json(response).await,
            json!({
                "type": "/problems/invalid-fields",
                "title": "Invalid fields",
                "status": 422,
                "detail": "2 fields are invalid",
                "instance": "/registrations",
                "errors": [
                    {"field": "email", "message": "must contain an @"},
                    {"field": "name", "message": "is required"}
                ]
            })
        );
    }

    #[tokio::test]
    async fn optional_members_are_omitted_and_retry_after_is_whole_seconds() {
        let response = Problem::from_status(StatusCode::SERVICE_UNAVAILABLE)
            .retry_after(Duration::from_millis(200))
            .into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        assert_eq!(
            body_json(response).await,
            json!({"type": "about:blank", "title": "Service Unavailable", "status": 503})
        );
    }
}

//! Error answers of the worker's HTTP API as RFC 9457 problem documents
//! (`application/problem+json`), including the plain-text ones axum would otherwise send.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// Problem types, as relative URI references (RFC 9457 allows them) under `/problems/`.
pub mod types {
    pub const UNAUTHORIZED: &str = "/problems/unauthorized";
    pub const NOT_FOUND: &str = "/problems/not-found";
    pub const INVALID_REQUEST: &str = "/problems/invalid-request";
    pub const UNAVAILABLE: &str = "/problems/parking-lot-unavailable";
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Problem {
    pub fn new(status: StatusCode, problem_type: &str, title: &str, detail: impl Into<Option<String>>) -> Self {
        Problem {
            problem_type: problem_type.to_owned(),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
        }
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            types::UNAUTHORIZED,
            "Missing or wrong bearer token",
            "send Authorization: Bearer <ADMIN_TOKEN>".to_owned(),
        )
    }

    pub fn not_found(detail: impl Into<Option<String>>) -> Self {
        Self::new(StatusCode::NOT_FOUND, types::NOT_FOUND, "Not found", detail)
    }

    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, types::INVALID_REQUEST, "Invalid request", Some(detail.into()))
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, types::UNAVAILABLE, "Parking lot unavailable", Some(detail.into()))
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).expect("problem serialises");
        let mut response = (status, body).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_CONTENT_TYPE));
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Middleware: turns any error response that is not already a problem document (unknown
/// route, wrong method, axum's extractor rejections) into one with the same status.
pub async fn ensure_problem_body(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_CONTENT_TYPE.as_bytes()));
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }
    let (parts, body) = response.into_parts();
    let detail = axum::body::to_bytes(body, 16 * 1024)
        .await
        .ok()
        .and_then(|b| String::from_utf8(b.to_vec()).ok())
        .filter(|s| !s.trim().is_empty());
    // Readiness failures keep their JSON body: probes read it.
    if parts.headers.get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/json")) {
        return Response::from_parts(parts, Body::from(detail.unwrap_or_default()));
    }
    let title = status.canonical_reason().unwrap_or("Error");
    let problem_type = if status == StatusCode::NOT_FOUND { types::NOT_FOUND } else { types::INVALID_REQUEST };
    let mut problem = Problem::new(status, problem_type, title, detail).into_response();
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            problem.headers_mut().insert(name.clone(), value.clone());
        }
    }
    problem
}

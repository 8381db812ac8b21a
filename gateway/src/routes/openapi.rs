//! `GET /openapi.json`: the API description.

use axum::http::header;
use axum::response::IntoResponse;

pub async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], crate::openapi::document().to_string())
}

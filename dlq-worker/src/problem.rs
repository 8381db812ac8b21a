//! The worker's problem types and the problems its admin API answers with; the problem
//! document itself is the library's [`reliable_messaging::service::endpoints::problem`].

use axum::http::StatusCode;
pub use reliable_messaging::service::endpoints::problem::{ensure_problem_body, Problem};

/// Problem types, as relative URI references (RFC 9457 allows them) under `/problems/`.
pub mod types {
    pub const UNAUTHORIZED: &str = "/problems/unauthorized";
    pub const NOT_FOUND: &str = "/problems/not-found";
    pub const INVALID_REQUEST: &str = "/problems/invalid-request";
    pub const UNAVAILABLE: &str = "/problems/parking-lot-unavailable";
}

pub fn unauthorized() -> Problem {
    Problem::new(StatusCode::UNAUTHORIZED, types::UNAUTHORIZED, "Missing or wrong bearer token")
        .detail("send Authorization: Bearer <ADMIN_TOKEN>")
}

pub fn not_found(detail: impl Into<String>) -> Problem {
    Problem::new(StatusCode::NOT_FOUND, types::NOT_FOUND, "Not found").detail(detail)
}

pub fn invalid(detail: impl Into<String>) -> Problem {
    Problem::new(StatusCode::BAD_REQUEST, types::INVALID_REQUEST, "Invalid request").detail(detail)
}

pub fn unavailable(detail: impl Into<String>) -> Problem {
    Problem::new(StatusCode::SERVICE_UNAVAILABLE, types::UNAVAILABLE, "Parking lot unavailable").detail(detail)
}

//! The gateway's problem types; the problem document itself is the library's
//! [`reliable_messaging::service::endpoints::problem`].

pub use reliable_messaging::service::endpoints::problem::*;

/// Problem types this API defines. Relative URI references (allowed by RFC 9457) under
/// `/problems/`, so they identify the problem without naming a host.
pub mod types {
    pub const MALFORMED_JSON: &str = "/problems/malformed-json";
    pub const UNSUPPORTED_MEDIA_TYPE: &str = "/problems/unsupported-media-type";
    pub const PAYLOAD_TOO_LARGE: &str = "/problems/payload-too-large";
    pub const INVALID_FIELDS: &str = "/problems/invalid-fields";
    pub const INVALID_IDEMPOTENCY_KEY: &str = "/problems/invalid-idempotency-key";
    pub const IDEMPOTENCY_KEY_REUSED: &str = "/problems/idempotency-key-reused";
    pub const INVALID_REQUEST_ID: &str = "/problems/invalid-request-id";
    pub const UNKNOWN_REQUEST: &str = "/problems/unknown-request";
    pub const NOT_ACCEPTED: &str = "/problems/not-accepted";
    pub const OVERLOADED: &str = "/problems/overloaded";
    pub const RATE_LIMITED: &str = "/problems/rate-limited";
    pub const STATUS_UNAVAILABLE: &str = "/problems/status-unavailable";
    pub const TIMED_OUT: &str = "/problems/timed-out";
    pub const BODY_TIMED_OUT: &str = "/problems/body-timed-out";
}

//! The contract on topic `user-registrations`: what the gateway promises to write and what
//! the registration-service accepts. Both sides use this one definition, so they cannot drift.
//!
//! Record layout:
//! * key: the canonical email ([`email::canonical_email`]), so every request for one address
//!   lands on one partition, in order;
//! * value: [`RegistrationRequested`] as JSON, or since schema version 2 one of the other
//!   [`events`] (a withdrawal, an erasure), told apart by `"type"`;
//! * header `x-request-id`: the request id, so tools can follow a record without parsing it.
//!
//! The password only ever travels as an argon2id PHC string (`$argon2id$v=19$...`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub mod email;
pub mod events;

pub use email::{canonical_email, is_canonical_email, InvalidEmail, MAX_EMAIL_LEN};
pub use events::{email_digest, AccountErased, RegistrationEvent, RegistrationWithdrawn, Unreadable};

/// Default topic for sign-up requests.
pub const REGISTRATIONS_TOPIC: &str = "user-registrations";
/// The newest schema version this build understands (and writes its newest event types at).
/// Version 2 added withdrawals and erasures; sign-ups are still written at version 1
/// ([`RegistrationRequested::VERSION`]) so that readers of version 1 keep reading them.
pub const SCHEMA_VERSION: u32 = 2;

pub const MAX_NAME_CHARS: usize = 100;

/// "Please register this user", as accepted by the gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegistrationRequested {
    pub schema_version: u32,
    pub request_id: Uuid,
    pub email: String,
    pub name: String,
    pub password_hash: String,
    pub requested_at: DateTime<Utc>,
}

/// Why a record on the topic cannot be a registration. Always permanent: no retry fixes it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContractViolation {
    #[error("payload is missing")]
    MissingPayload,
    #[error("payload is not JSON: {0}")]
    NotJson(String),
    #[error("unknown schema version {0} (this service understands {SCHEMA_VERSION})")]
    UnknownSchemaVersion(u64),
    #[error("payload does not match the RegistrationRequested schema: {0}")]
    WrongShape(String),
    #[error("invalid field {field}: {problem}")]
    InvalidField { field: &'static str, problem: String },
}

impl RegistrationRequested {
    /// The version sign-ups are written at: the lowest that has them, so every reader reads them.
    pub const VERSION: u32 = 1;

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("event serialises")
    }

    /// Parses and re-checks a record value that must be a sign-up, as a reader of this build's
    /// [`SCHEMA_VERSION`]. The gateway validated already; this guards against other producers
    /// and corrupted records. Any other event, or one too new, is refused here: read the
    /// topic with [`RegistrationEvent::parse`] to tell those apart.
    pub fn parse(payload: Option<&[u8]>) -> Result<Self, ContractViolation> {
        match RegistrationEvent::parse(payload, SCHEMA_VERSION) {
            Ok(RegistrationEvent::Requested(event)) => Ok(event),
            Ok(_) => Err(ContractViolation::WrongShape("not a RegistrationRequested event".into())),
            Err(Unreadable::Violation(violation)) => Err(violation),
            Err(Unreadable::Newer { schema_version, .. }) => {
                Err(ContractViolation::UnknownSchemaVersion(schema_version))
            }
        }
    }

    pub(crate) fn check_fields(&self) -> Result<(), ContractViolation> {
        let invalid =
            |field, problem: &str| Err(ContractViolation::InvalidField { field, problem: problem.to_owned() });
        if self.email.is_empty() || self.email.len() > MAX_EMAIL_LEN || !self.email.contains('@') {
            return invalid("email", "must be an address of at most 254 bytes");
        }
        if !is_canonical_email(&self.email) {
            // Another producer's spelling would slip past the unique key (which compares
            // bytes): refuse it rather than store a second account for one address.
            return invalid("email", "must be a valid address in canonical form (see registration_events::email)");
        }
        let chars = self.name.chars().count();
        if chars == 0 || chars > MAX_NAME_CHARS || self.name.chars().any(char::is_control) {
            return invalid("name", "must be 1 to 100 characters without control characters");
        }
        if !self.password_hash.starts_with("$argon2id$") || self.password_hash.len() > 255 {
            return invalid("password_hash", "must be an argon2id PHC string");
        }
        if self.request_id.is_nil() {
            return invalid("request_id", "must not be the nil UUID");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> RegistrationRequested {
        RegistrationRequested {
            schema_version: RegistrationRequested::VERSION,
            request_id: Uuid::new_v4(),
            email: "ada@example.com".into(),
            name: "Ada Lovelace".into(),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
            requested_at: Utc::now(),
        }
    }

    #[test]
    fn round_trips() {
        let e = event();
        assert_eq!(RegistrationRequested::parse(Some(&e.to_json())).unwrap(), e);
    }

    #[test]
    fn poison_is_classified() {
        assert!(matches!(RegistrationRequested::parse(Some(b"not json")), Err(ContractViolation::NotJson(_))));
        assert!(matches!(RegistrationRequested::parse(None), Err(ContractViolation::MissingPayload)));
        let mut v = serde_json::to_value(event()).unwrap();
        v["schema_version"] = 3.into();
        let bytes = serde_json::to_vec(&v).unwrap();
        assert_eq!(RegistrationRequested::parse(Some(&bytes)), Err(ContractViolation::UnknownSchemaVersion(3)));
        let mut bad = event();
        bad.password_hash = "hunter2".into();
        assert!(matches!(
            RegistrationRequested::parse(Some(&bad.to_json())),
            Err(ContractViolation::InvalidField { field: "password_hash", .. })
        ));
    }
}

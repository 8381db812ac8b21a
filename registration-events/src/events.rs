//! Every event type on topic `user-registrations`, and how a reader tells what it can read from
//! what is newer than it (see "Versioning" in `docs/message-contract.md`).
//!
//! Since schema version 2 a record carries `"type"`; a record without one is a
//! [`RegistrationRequested`], as every version-1 record is. A reader that understands version
//! N reads every event of a type it knows with `schema_version` ≤ N. A higher version, or a
//! type it does not know, is [`Unreadable::Newer`]: not poison, but a record for a newer
//! reader, which the consumer waits for instead of parking the record.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{is_canonical_email, ContractViolation, RegistrationRequested, MAX_EMAIL_LEN, SCHEMA_VERSION};

pub const REGISTRATION_REQUESTED: &str = "registration_requested";
pub const REGISTRATION_WITHDRAWN: &str = "registration_withdrawn";
pub const ACCOUNT_ERASED: &str = "account_erased";

/// The event types this build knows, each with the schema version that introduced it.
pub const EVENT_TYPES: &[(&str, u32)] =
    &[(REGISTRATION_REQUESTED, 1), (REGISTRATION_WITHDRAWN, 2), (ACCOUNT_ERASED, 2)];

/// Longest operator reason carried by an erasure.
pub const MAX_REASON_CHARS: usize = 200;

/// "The user withdrew this sign-up" (`DELETE /registrations/{request_id}`). Carries no
/// personal data: the request id says which sign-up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegistrationWithdrawn {
    pub schema_version: u32,
    #[serde(rename = "type")]
    pub event_type: String,
    pub request_id: Uuid,
    pub withdrawn_at: DateTime<Utc>,
}

/// "Erase every account of this address signed up until `erased_at`", by an operator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountErased {
    pub schema_version: u32,
    #[serde(rename = "type")]
    pub event_type: String,
    /// The audit row's id (`erasure_audit`), so the tombstones can name the erasure.
    pub erasure_id: Uuid,
    /// Canonical email; also the record key.
    pub email: String,
    pub reason: String,
    pub erased_at: DateTime<Utc>,
}

impl RegistrationWithdrawn {
    /// Written at version 2, the first that has the type.
    pub fn new(request_id: Uuid, withdrawn_at: DateTime<Utc>) -> Self {
        Self { schema_version: 2, event_type: REGISTRATION_WITHDRAWN.into(), request_id, withdrawn_at }
    }
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("event serialises")
    }
}

impl AccountErased {
    pub fn new(erasure_id: Uuid, email: String, reason: String, erased_at: DateTime<Utc>) -> Self {
        Self { schema_version: 2, event_type: ACCOUNT_ERASED.into(), erasure_id, email, reason, erased_at }
    }
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("event serialises")
    }
}

/// One record of the topic, read.
#[derive(Debug, Clone, PartialEq)]
pub enum RegistrationEvent {
    Requested(RegistrationRequested),
    Withdrawn(RegistrationWithdrawn),
    Erased(AccountErased),
}

/// Why a record could not be read as an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unreadable {
    /// Written for a newer reader: wait for one, never park it.
    #[error("event {event_type:?} of schema version {schema_version} (this reader understands up to {understood})")]
    Newer { schema_version: u64, event_type: String, understood: u32 },
    /// Poison: no reader will ever read it.
    #[error(transparent)]
    Violation(#[from] ContractViolation),
}

/// Only what decides how to read the rest; other fields are skipped unparsed.
#[derive(Deserialize)]
struct Envelope {
    schema_version: Option<serde_json::Value>,
    #[serde(rename = "type")]
    event_type: Option<serde_json::Value>,
}

impl RegistrationEvent {
    /// Reads a record value as a reader that understands schema versions up to `understood`
    /// (at most [`SCHEMA_VERSION`]; a lower value makes this build act as an older one, for
    /// rollout tests).
    pub fn parse(payload: Option<&[u8]>, understood: u32) -> Result<Self, Unreadable> {
        let understood = understood.min(SCHEMA_VERSION);
        let bytes = payload.ok_or(ContractViolation::MissingPayload)?;
        let envelope: Envelope = serde_json::from_slice(bytes).map_err(|e| match e.classify() {
            serde_json::error::Category::Data => ContractViolation::WrongShape(e.to_string()),
            _ => ContractViolation::NotJson(e.to_string()),
        })?;
        let version = match envelope.schema_version {
            None => return Err(ContractViolation::WrongShape("schema_version is missing".into()).into()),
            Some(v) => {
                v.as_u64().ok_or_else(|| ContractViolation::WrongShape("schema_version is not a number".into()))?
            }
        };
        let event_type = match envelope.event_type {
            None => REGISTRATION_REQUESTED.to_owned(),
            Some(serde_json::Value::String(t)) => t,
            Some(_) => return Err(ContractViolation::WrongShape("type is not a string".into()).into()),
        };
        if version == 0 {
            return Err(ContractViolation::UnknownSchemaVersion(0).into());
        }
        let since = EVENT_TYPES.iter().find(|(t, _)| *t == event_type).map(|(_, since)| u64::from(*since));
        match since {
            _ if version > u64::from(understood) => {
                return Err(Unreadable::Newer { schema_version: version, event_type, understood })
            }
            // A type this reader does not know, at a version it knows: a writer added a type
            // without a version bump. Still a newer reader's record, not poison.
            None => return Err(Unreadable::Newer { schema_version: version, event_type, understood }),
            Some(since) if version < since => {
                return Err(ContractViolation::InvalidField {
                    field: "schema_version",
                    problem: format!("{event_type} exists from schema version {since} on"),
                }
                .into())
            }
            Some(_) => {}
        }
        let shape = |e: serde_json::Error| ContractViolation::WrongShape(e.to_string());
        match event_type.as_str() {
            REGISTRATION_REQUESTED => {
                let event: RegistrationRequested = serde_json::from_slice(bytes).map_err(shape)?;
                event.check_fields()?;
                Ok(Self::Requested(event))
            }
            REGISTRATION_WITHDRAWN => {
                let event: RegistrationWithdrawn = serde_json::from_slice(bytes).map_err(shape)?;
                if event.request_id.is_nil() {
                    return Err(invalid("request_id", "must not be the nil UUID"));
                }
                Ok(Self::Withdrawn(event))
            }
            _ => {
                let event: AccountErased = serde_json::from_slice(bytes).map_err(shape)?;
                if event.email.is_empty() || event.email.len() > MAX_EMAIL_LEN || !is_canonical_email(&event.email) {
                    return Err(invalid("email", "must be a valid address in canonical form"));
                }
                let chars = event.reason.chars().count();
                if chars == 0 || chars > MAX_REASON_CHARS || event.reason.chars().any(char::is_control) {
                    return Err(invalid("reason", "must be 1 to 200 characters without control characters"));
                }
                Ok(Self::Erased(event))
            }
        }
    }
}

fn invalid(field: &'static str, problem: &str) -> Unreadable {
    ContractViolation::InvalidField { field, problem: problem.to_owned() }.into()
}

/// What tombstones and audit rows key an address by instead of the address: SHA-256 of the
/// canonical email under a fixed domain prefix. A pseudonym, not a secret: it finds the rows of
/// an address one already knows, and stores no address itself.
pub fn email_digest(canonical_email: &str) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(b"registration-email:");
    hash.update(canonical_email.as_bytes());
    hash.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signup(version: u32) -> serde_json::Value {
        serde_json::json!({
            "schema_version": version,
            "request_id": Uuid::new_v4(),
            "email": "ada@example.com",
            "name": "Ada",
            "password_hash": "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
            "requested_at": Utc::now(),
        })
    }

    fn parse(value: &serde_json::Value, understood: u32) -> Result<RegistrationEvent, Unreadable> {
        RegistrationEvent::parse(Some(&serde_json::to_vec(value).unwrap()), understood)
    }

    #[test]
    fn a_version_1_sign_up_stays_readable_and_additive_fields_are_accepted() {
        assert!(matches!(parse(&signup(1), 1), Ok(RegistrationEvent::Requested(_))));
        assert!(matches!(parse(&signup(1), 2), Ok(RegistrationEvent::Requested(_))));
        let mut extra = signup(1);
        extra["referrer"] = "newsletter".into();
        assert!(matches!(parse(&extra, 1), Ok(RegistrationEvent::Requested(_))), "an additive field");
    }

    #[test]
    fn new_event_types_round_trip() {
        let withdrawn = RegistrationWithdrawn::new(Uuid::new_v4(), Utc::now());
        assert_eq!(
            RegistrationEvent::parse(Some(&withdrawn.to_json()), 2),
            Ok(RegistrationEvent::Withdrawn(withdrawn.clone()))
        );
        let erased = AccountErased::new(Uuid::new_v4(), "ada@example.com".into(), "user asked".into(), Utc::now());
        assert_eq!(RegistrationEvent::parse(Some(&erased.to_json()), 2), Ok(RegistrationEvent::Erased(erased)));
    }

    #[test]
    fn newer_than_the_reader_is_not_poison() {
        let withdrawn = RegistrationWithdrawn::new(Uuid::new_v4(), Utc::now());
        let newer = RegistrationEvent::parse(Some(&withdrawn.to_json()), 1).unwrap_err();
        assert_eq!(
            newer,
            Unreadable::Newer { schema_version: 2, event_type: REGISTRATION_WITHDRAWN.into(), understood: 1 }
        );
        assert!(matches!(parse(&signup(3), 2), Err(Unreadable::Newer { schema_version: 3, .. })), "a higher version");
        let mut unknown_type = signup(2);
        unknown_type["type"] = "registration_amended".into();
        assert!(matches!(parse(&unknown_type, 2), Err(Unreadable::Newer { .. })), "an unknown type");
        assert!(matches!(parse(&signup(7), 99), Err(Unreadable::Newer { understood: 2, .. })), "capped at this build");
    }

    #[test]
    fn what_no_reader_can_read_is_poison() {
        let poison = |v: &serde_json::Value| matches!(parse(v, 2), Err(Unreadable::Violation(_)));
        assert!(poison(&signup(0)), "version 0 never existed");
        let mut early = serde_json::to_value(RegistrationWithdrawn::new(Uuid::new_v4(), Utc::now())).unwrap();
        early["schema_version"] = 1.into();
        assert!(poison(&early), "a withdrawal claiming version 1, which had none");
        let mut not_canonical =
            serde_json::to_value(AccountErased::new(Uuid::new_v4(), "x".into(), "r".into(), Utc::now())).unwrap();
        not_canonical["email"] = "Ada@Example.com".into();
        assert!(poison(&not_canonical));
        assert!(poison(&serde_json::json!({"type": "account_erased"})), "no version");
        assert!(matches!(RegistrationEvent::parse(Some(b"nope"), 2), Err(Unreadable::Violation(_))));
    }

    #[test]
    fn the_email_digest_is_stable_and_names_no_address() {
        assert_eq!(email_digest("ada@example.com"), email_digest("ada@example.com"));
        assert_ne!(email_digest("ada@example.com"), email_digest("bob@example.com"));
    }
}

//! What a handler decided about one message, and so where the message goes next.

use std::fmt;

/// The result of handling one message.
///
/// | outcome | what the consumer does next |
/// |---|---|
/// | `Done` | commit |
/// | `Rejected` | commit; the handler recorded the business decision (never retried) |
/// | `Failed(Transient)` | short in-place retry, then the dead-letter topic, then commit |
/// | `Failed(Permanent)` | straight to the dead-letter topic marked permanent, where the DLQ worker parks it |
/// | `DependencyDown` | nothing is dead-lettered: the consumer pauses, probes until the dependency answers, then handles the message again |
/// | `NewerThanConsumer` | nothing is dead-lettered or committed: the consumer stops before the message on its partition (the rest flow on) until a newer instance takes the partition or this one restarts |
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done,
    Rejected {
        reason: String,
    },
    Failed(Failure),
    /// The failure is about a dependency, not about the message (the database unreachable,
    /// read-only, out of connections): every message would fail alike, so none of them is
    /// dead-lettered or spends a retry while it lasts.
    DependencyDown {
        dependency: String,
        message: String,
    },
    /// The message was written for a newer version of this consumer (a higher schema
    /// version, an event type it does not know): not poison, but not for this build either.
    /// Waiting loses nothing during a rolling deploy; parking would.
    NewerThanConsumer {
        reason: String,
    },
}

impl Outcome {
    pub fn rejected(reason: impl Into<String>) -> Self {
        Outcome::Rejected { reason: reason.into() }
    }
    pub fn transient(message: impl Into<String>) -> Self {
        Outcome::Failed(Failure { kind: FailureKind::Transient, message: message.into() })
    }
    pub fn permanent(message: impl Into<String>) -> Self {
        Outcome::Failed(Failure { kind: FailureKind::Permanent, message: message.into() })
    }
    pub fn dependency_down(dependency: impl Into<String>, message: impl Into<String>) -> Self {
        Outcome::DependencyDown { dependency: dependency.into(), message: message.into() }
    }
    pub fn newer_than_consumer(reason: impl Into<String>) -> Self {
        Outcome::NewerThanConsumer { reason: reason.into() }
    }
    pub fn is_newer_than_consumer(&self) -> bool {
        matches!(self, Outcome::NewerThanConsumer { .. })
    }
    pub fn is_dependency_down(&self) -> bool {
        matches!(self, Outcome::DependencyDown { .. })
    }
    pub fn is_transient(&self) -> bool {
        matches!(self, Outcome::Failed(Failure { kind: FailureKind::Transient, .. }))
    }
}

/// Why a message could not be handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
}

/// Transient failures may succeed later (database down, lock timeout); permanent ones never
/// will (the payload is not JSON, the schema is unknown), so retrying them is pointless.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    Transient,
    Permanent,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Transient => "transient",
            FailureKind::Permanent => "permanent",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "transient" => Some(FailureKind::Transient),
            "permanent" => Some(FailureKind::Permanent),
            _ => None,
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

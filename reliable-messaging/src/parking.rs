//! The parking lot: where messages that must not be retried any more wait for an operator.
//!
//! A message is parked when retrying it is pointless or has gone on long enough: its failure is
//! permanent, its retry budget is exhausted, its retry metadata is unreadable (poison), or the
//! topic it should go back to does not exist. Parking keeps the whole record (key, headers,
//! payload, origin, failure history) in the `parked_messages` table, records `parked` in
//! `request_status` for the request it belongs to, and writes one structured log line (target
//! `parking_lot`, `event = "message_parked"`) for log-based alerting.
//!
//! From there an operator can [`ParkingLot::list`] and [`ParkingLot::get`] parked messages,
//! [`Redriver::redrive`] them to their original topic with a fresh retry budget, or
//! [`ParkingLot::discard`] them. Both are state changes with an audit row; nothing is deleted.

mod canary;
mod headers_json;
mod message;
mod redrive;
pub mod signature;
mod store;

pub use canary::{CanaryPlan, CanaryReport, CanaryStop, Outcome, OutcomeJudge, StatusJudge};
pub use headers_json::{headers_from_json, headers_to_json};
pub use message::{AuditEntry, NewParkedMessage, ParkReason, ParkedFilter, ParkedMessage, ParkedState, ParkedSummary};
pub use redrive::{Rate, RedriveOutcome, Redriver};
pub use signature::{signature_of, SignatureGroup};
pub use store::{
    hourly_buckets, DiscardOutcome, Parked, ParkingCounts, ParkingError, ParkingLot, LOG_TARGET, MAX_LIST_LIMIT,
};

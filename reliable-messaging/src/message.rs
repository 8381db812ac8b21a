//! The ground floor: the words every other part of the crate speaks about one message.
//!
//! * [`Delivery`]: a consumed record as a handler sees it, its retry metadata decoded;
//! * [`Outcome`], [`Failure`], [`FailureKind`]: what handling decided, and so where the message
//!   goes next;
//! * [`Header`]: one record header, as consumed and produced, and [`REQUEST_ID_HEADER`];
//! * [`retry_metadata`]: what a failed message carries between its topic and its dead-letter
//!   topic, in either wire format.
//!
//! Nothing here talks to Kafka or a database, and nothing here imports another module of the
//! crate: the clients, the consumer, the dead-letter machinery and the kit all build on it.

mod delivery;
pub(crate) mod header;
mod outcome;
pub mod retry_metadata;

pub use delivery::Delivery;
pub use header::{Header, REQUEST_ID_HEADER};
pub use outcome::{Failure, FailureKind, Outcome};

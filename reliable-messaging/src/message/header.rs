//! One Kafka record header, as this crate copies it out of consumed records and into produced
//! ones.
//!
//! On its own so that the types built from headers (a consumed [`Delivery`](crate::message::Delivery),
//! the retry-metadata formats in [`crate::message::retry_metadata`]) depend on it and not on each
//! other.

/// The header naming the request a message belongs to (a UUID): the gateway writes it, the
/// machinery reads it to record the request's status and to find a parked message by it.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// One Kafka header. Values are optional because Kafka allows null header values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub key: String,
    pub value: Option<Vec<u8>>,
}

/// The first value of the header `name` among `headers`, if present and not null.
pub(crate) fn first_value<'a>(headers: &'a [Header], name: &str) -> Option<&'a [u8]> {
    headers.iter().find(|h| h.key == name).and_then(|h| h.value.as_deref())
}

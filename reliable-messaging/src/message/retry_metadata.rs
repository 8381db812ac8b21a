//! The retry metadata a failed message carries between its topic and its dead-letter topic.
//!
//! Two wire formats, both read everywhere, one chosen for writing ([`MetadataFormat`]):
//!
//! * **Headers** (default): `x-retry-count`, `x-original-topic`, `x-original-partition`,
//!   `x-original-offset`, `x-first-failure-at`, `x-last-failure-at`, `x-error-kind`,
//!   `x-error-message`, `x-not-before`. Every hop *replaces* these; key, payload and all other
//!   headers travel unchanged.
//! * **Wrapper**: the article's `{"retryCount": n, "message": {...}}` JSON envelope with the
//!   same fields in camelCase, for brokers and tools without header support. A payload that is
//!   not JSON travels base64-encoded in `messageBase64` instead of `message`.
//!
//! For redriving the DLQs of mixed fleets, foreign formats are read too. Precedence, first
//! match wins: our `x-` headers; the wrapper; the article's reference implementation's headers
//! (`retryCount`, `originalTopic`: count and origin honoured); Spring Kafka's dead-letter
//! recoverer (`kafka_dlt-original-*`, count from `retry_topic-attempts`); Kafka Connect's error
//! reporter (`__connect.errors.*`). Once this system has re-sent a record its own headers
//! travel with it and win from then on.
//!
//! Foreign writers append their error headers on every hop (Connect: a stack trace of several
//! KB each time). What is carried forward is bounded: of each foreign error header only the
//! newest value is kept, cut to [`MAX_FOREIGN_ERROR_HEADER_BYTES`].
//!
//! One concept per file: the header names ([`header`]), what the metadata says
//! (`metadata.rs`), the headers format (`our_headers.rs`), the wrapper (`wrapper.rs`), the
//! foreign formats (`foreign.rs`), reading single header values (`values.rs`), text and times
//! (`text.rs`), and [`encode`] / `decode` choosing among them (`codec.rs`); round trips through
//! all of them are tested in `tests.rs`. The formats work on a record's headers and payload,
//! not on a [`Delivery`](crate::message::Delivery): a delivery decodes its metadata with
//! them, and nothing here depends on it.

mod codec;
mod foreign;
pub mod header;
mod metadata;
mod our_headers;
#[cfg(test)]
mod tests;
mod text;
mod values;
mod wrapper;

pub(crate) use codec::decode;
pub use codec::encode;
pub use foreign::MAX_FOREIGN_ERROR_HEADER_BYTES;
pub use metadata::{MetadataError, MetadataFormat, MetadataSource, RetryMetadata};
pub use text::{rfc3339, truncate, MAX_ERROR_MESSAGE_BYTES};

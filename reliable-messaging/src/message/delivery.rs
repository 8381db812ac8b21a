//! An owned copy of a consumed Kafka record, with the retry metadata it carried.
//!
//! Depends on [`crate::message::retry_metadata`] (to decode what a record carries), never the reverse:
//! the formats work on headers and payloads, so they can be used and tested without a
//! delivery.

use rdkafka::message::{Headers, Message};

use crate::message::retry_metadata::{self, MetadataError, RetryMetadata};
use crate::message::Header;

/// A record as a handler sees it.
///
/// When the record came back from the dead-letter queue, `payload` is the original message
/// (the JSON retry wrapper, if any, is already removed) and `retry` says how it got here.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub headers: Vec<Header>,
    pub timestamp_ms: Option<i64>,
    /// Present when this record is a retry (headers or wrapper format).
    pub retry: Option<RetryMetadata>,
    /// Set when the record carries retry metadata that cannot be read (a negative or garbage
    /// `x-retry-count`, a malformed wrapper). Such a record is poison: it is parked, not handled.
    pub retry_metadata_error: Option<MetadataError>,
}

impl Delivery {
    /// An empty record at `topic`/`partition`@`offset`, for the stages' unit tests.
    #[cfg(test)]
    pub(crate) fn empty_at(topic: &str, partition: i32, offset: i64) -> Self {
        Delivery {
            topic: topic.to_owned(),
            partition,
            offset,
            key: None,
            payload: None,
            headers: Vec::new(),
            timestamp_ms: None,
            retry: None,
            retry_metadata_error: None,
        }
    }

    /// Copies a record out of the consumer's buffer and decodes its retry metadata.
    pub fn from_message<M: Message>(message: &M) -> Self {
        let headers = message
            .headers()
            .map(|hs| hs.iter().map(|h| Header { key: h.key.to_owned(), value: h.value.map(<[u8]>::to_vec) }).collect())
            .unwrap_or_default();
        let mut delivery = Delivery {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().map(<[u8]>::to_vec),
            headers,
            timestamp_ms: message.timestamp().to_millis(),
            retry: None,
            retry_metadata_error: None,
        };
        delivery.decode_retry_metadata();
        delivery
    }

    /// Decodes the retry metadata the record carries: unwraps a wrapper payload, and records
    /// either the metadata or the reason it is unreadable.
    fn decode_retry_metadata(&mut self) {
        match retry_metadata::decode(&self.headers, self.payload.as_deref()) {
            Ok(Some((metadata, unwrapped))) => {
                if let Some(payload) = unwrapped {
                    self.payload = payload;
                }
                self.retry = Some(metadata);
            }
            Ok(None) => {}
            Err(e) => self.retry_metadata_error = Some(e),
        }
    }

    /// The first value of a header, if present and not null.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        crate::message::header::first_value(&self.headers, name)
    }

    /// A header as UTF-8 text.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// How many times this message has already been re-sent from the DLQ.
    pub fn retry_count(&self) -> u32 {
        self.retry.as_ref().map_or(0, |r| r.retry_count)
    }

    /// A human-friendly position, for logs: `topic/partition@offset`.
    pub fn position(&self) -> String {
        format!("{}/{}@{}", self.topic, self.partition, self.offset)
    }
}

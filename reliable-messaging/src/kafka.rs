//! What every Kafka client in the workspace shares: the connection settings, consumer-group
//! plumbing, the topics a service declares and the trace context a record carries.
//!
//! * [`KafkaSettings`]: bootstrap servers and any librdkafka property from `KAFKA_*`
//!   variables, secrets kept out of logs (`settings.rs`);
//! * [`group`]: what every consumer-group member shares (partitions, commits, rebalances,
//!   pausing);
//! * [`topics`]: declaring topics and their DLQs with the durability a replicated cluster
//!   needs, and checking it;
//! * [`trace_context`]: W3C trace context in headers, so one trace follows a message across
//!   every hop.

pub mod group;
mod settings;
pub mod topics;
pub mod trace_context;

pub(crate) use settings::is_secret_property;
pub use settings::{KafkaSettings, ProducerAcks};

//! One consumer service's kit settings, whole: what [`ServiceArgs`](super::ServiceArgs) parse
//! into and what a service keeps as one field and hands to the builder, so nothing is unpacked
//! into loose fields and packed again on the way.

use std::net::SocketAddr;

use crate::consumer::ConsumerSettings;
use crate::dead_letter::DeadLetterPolicy;
use crate::kafka::topics::TopicPolicy;
use crate::kafka::KafkaSettings;
use crate::service::configuration::TelemetryArgs;

/// Kafka client, consumer, dead letters, topics, probe address and telemetry of one service.
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    pub kafka: KafkaSettings,
    pub consumer: ConsumerSettings,
    /// Its limit is the one the consumer halts by (it replaces `consumer.dead_letter_limit`).
    pub dead_letters: DeadLetterPolicy,
    /// How the topics and their `<topic>-dlq` are created when missing.
    pub topic_policy: TopicPolicy,
    /// Where `/healthz`, `/readyz` and `/metrics` listen.
    pub http_addr: SocketAddr,
    /// Logs and traces: what `telemetry::init` takes.
    pub telemetry: TelemetryArgs,
}

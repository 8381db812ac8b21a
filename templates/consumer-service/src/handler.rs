//! What the service does with each message: stores its payload, once, in `received_messages`.
//! Replace `handle` (and the table in `migrations/`) and keep [`examples`] true of it; keep it
//! idempotent (after a crash the same message arrives again), and classify failures (`Outcome`).

use reliable_messaging::consumer::sql_failures;
use reliable_messaging::message::retry_metadata::RetryMetadata;
use reliable_messaging::message::FailureKind;
use reliable_messaging::{Delivery, Handler, Outcome};
use sqlx::MySqlPool;

pub struct StoreMessages {
    pool: MySqlPool,
}

impl StoreMessages {
    pub fn new(pool: MySqlPool) -> Self {
        Self { pool }
    }
}

impl Handler for StoreMessages {
    // TEMPLATE: your logic; the failure classification at the end fits most SQL handlers.
    async fn handle(&self, delivery: &Delivery) -> Outcome {
        // Poison: retrying cannot fix a payload that is not JSON, so it goes to the DLQ at once.
        let payload = delivery.payload.as_deref().unwrap_or_default();
        if serde_json::from_slice::<serde_json::Value>(payload).is_err() {
            return Outcome::permanent("the payload is not JSON");
        }
        // Keyed by where the message was first produced (kept across DLQ retries), so a
        // redelivery or a retry of a message already stored changes nothing.
        let (topic, partition, offset) = match &delivery.retry {
            Some(RetryMetadata {
                original_topic: Some(t),
                original_partition: Some(p),
                original_offset: Some(o),
                ..
            }) => (t.as_str(), *p, *o),
            _ => (delivery.topic.as_str(), delivery.partition, delivery.offset),
        };
        let stored = sqlx::query(
            "INSERT INTO received_messages (topic, kafka_partition, kafka_offset, payload) VALUES (?, ?, ?, ?) \
             ON DUPLICATE KEY UPDATE kafka_offset = kafka_offset",
        )
        .bind(topic)
        .bind(partition)
        .bind(offset)
        .bind(payload)
        .execute(&self.pool)
        .await;
        match stored {
            Ok(_) => Outcome::Done,
            // Pause consuming until the database is back, instead of failing every message.
            Err(e) if sql_failures::is_dependency_down(&e) => Outcome::dependency_down("database", e.to_string()),
            Err(e) if sql_failures::classify(&e) == FailureKind::Permanent => Outcome::permanent(e.to_string()),
            Err(e) => Outcome::transient(e.to_string()),
        }
    }
}

/// TEMPLATE: payloads `handle` stores and one it refuses: the tests send them, not a table.
pub mod examples {
    pub const ACCEPTED: &[&str] = &[r#"{"hello":"world"}"#, r#"{"hello":"again"}"#];
    pub const POISON: &str = "not json";
}

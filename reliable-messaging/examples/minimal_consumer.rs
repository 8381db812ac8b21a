//! A new at-least-once consumer with in-place retries, a dead-letter topic and (through the
//! dlq-worker) delayed retries and a parking lot — everything but the handler is the library.
//!
//! Consumes `payments` (JSON `{"payment_id": "<uuid>", "amount_cents": 1234}`) into MySQL:
//!
//! ```text
//! scripts/local-services.sh up && eval "$(scripts/local-services.sh env)"
//! cargo run -p reliable-messaging --example minimal_consumer
//! ```
//! Not JSON → parked at once. Database down → retried in place, then `payments-dlq`, from
//! where the dlq-worker re-sends it with backoff and parks it after 5 tries.

use reliable_messaging::backoff::Backoff;
use reliable_messaging::dead_letter::DeadLetterPublisher;
use reliable_messaging::retry_metadata::MetadataFormat;
use reliable_messaging::{
    sql_failures, ConsumerSettings, Delivery, DurableProducer, FailureKind, Handler, KafkaSettings, Outcome,
    ReliableConsumer,
};
use std::time::Duration;

struct Payments(sqlx::MySqlPool);

#[derive(serde::Deserialize)]
struct Payment {
    payment_id: uuid::Uuid,
    amount_cents: i64,
}

impl Handler for Payments {
    async fn handle(&self, delivery: &Delivery) -> Outcome {
        let Ok(payment) = serde_json::from_slice::<Payment>(delivery.payload.as_deref().unwrap_or_default()) else {
            return Outcome::permanent("not a payment");
        };
        // Keyed by the payment id: a redelivery after a crash is a no-op.
        let stored = sqlx::query("INSERT INTO payments (payment_id, amount_cents) VALUES (?, ?) ON DUPLICATE KEY UPDATE payment_id = payment_id")
            .bind(payment.payment_id.as_bytes().to_vec())
            .bind(payment.amount_cents)
            .execute(&self.0)
            .await;
        match stored {
            Ok(_) => Outcome::Done,
            Err(e) if sql_failures::classify(&e) == FailureKind::Permanent => Outcome::permanent(e.to_string()),
            Err(e) => Outcome::transient(e.to_string()),
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    reliable_messaging::telemetry::init("minimal_consumer");
    let database_url =
        std::env::var("DATABASE_URL").unwrap_or_else(|_| "mysql://registrations@127.0.0.1:3306/registrations".into());
    let pool =
        sqlx::mysql::MySqlPoolOptions::new().acquire_timeout(Duration::from_secs(2)).connect(&database_url).await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS payments (payment_id BINARY(16) PRIMARY KEY, amount_cents BIGINT NOT NULL)",
    )
    .execute(&pool)
    .await?;

    let kafka = KafkaSettings::from_env("payments-consumer");
    let producer = DurableProducer::new(&kafka, Duration::from_secs(10))?;
    let dead_letters = DeadLetterPublisher::new(producer, MetadataFormat::Headers, Backoff::default());
    let consumer = ReliableConsumer::new(
        &kafka,
        ConsumerSettings::new("payments-consumer", &["payments"]),
        Payments(pool),
        dead_letters,
    )?;
    consumer.run(reliable_messaging::shutdown::on_termination_signal()).await?;
    Ok(())
}

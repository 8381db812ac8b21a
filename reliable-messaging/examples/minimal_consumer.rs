//! A new at-least-once consumer with in-place retries, a dead-letter topic and (through the
//! dlq-worker) delayed retries and a parking lot; everything but the handler is the library.
//! The service kit adds the rest: the topic and `payments-dlq` declared, the table migrated at
//! start, `/healthz`, `/readyz` and `/metrics` on 127.0.0.1:8090, the DLQ producer flushed on
//! shutdown, and every setting from the environment (`-- --help` lists them).
//!
//! Consumes `payments` (JSON `{"payment_id": "<uuid>", "amount_cents": 1234}`) into MySQL:
//!
//! ```text
//! scripts/local-services.sh up && eval "$(scripts/local-services.sh env)"
//! cargo run -p reliable-messaging --example minimal_consumer
//! ```
//! Not JSON → parked at once. Database down → consuming pauses until it is back.

use reliable_messaging::consumer::sql_failures;
use reliable_messaging::message::FailureKind;
use reliable_messaging::service::{self, DatabaseArgs, ServiceArgs, ServiceBuilder, ServiceDefaults};
use reliable_messaging::{Delivery, Handler, Outcome};

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
            Err(e) if sql_failures::is_dependency_down(&e) => Outcome::dependency_down("database", e.to_string()),
            Err(e) if sql_failures::classify(&e) == FailureKind::Permanent => Outcome::permanent(e.to_string()),
            Err(e) => Outcome::transient(e.to_string()),
        }
    }
}

#[derive(clap::Parser)]
struct Args {
    #[command(flatten)]
    service: ServiceArgs,
    #[command(flatten)]
    database: DatabaseArgs,
}

const DEFAULTS: ServiceDefaults = ServiceDefaults {
    name: "payments-consumer",
    http_addr_env: "PAYMENTS_CONSUMER_ADDR",
    http_addr: "127.0.0.1:8090",
    database_url: None,
};

/// The example's one migration; a real service keeps its own in `migrations/` (`sqlx::migrate!()`).
const CREATE_PAYMENTS: &str =
    "CREATE TABLE IF NOT EXISTS payments (payment_id BINARY(16) PRIMARY KEY, amount_cents BIGINT NOT NULL)";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `--help` and a bad variable (named in the message) exit here, before anything else.
    let args: Args = service::parse_from(&DEFAULTS, std::env::args_os()).unwrap_or_else(|e| e.exit());
    reliable_messaging::service::runtime::telemetry::init(DEFAULTS.name, &args.service.telemetry);
    let pool = args.database.settings().connect_lazy()?;
    let handler = Payments(pool.clone());
    let service = ServiceBuilder::from_args(DEFAULTS.name, &args.service, &["payments"], std::env::vars(), handler)
        .database(pool.clone())
        .version(env!("CARGO_PKG_VERSION"))
        .build()
        .await?;
    sqlx::query(CREATE_PAYMENTS).execute(&pool).await?;
    service.run(reliable_messaging::service::runtime::shutdown::on_termination_signal()).await?;
    Ok(())
}

//! `consumer-service-template`: stores every message of one topic in a MySQL table of its own,
//! exactly once, with in-place retries, a dead-letter topic, `/healthz`, `/readyz` and
//! `/metrics` from the service kit (`reliable_messaging::service`).
//! `consumer-service-template --help` lists every setting; edit the places marked `TEMPLATE:`.

use reliable_messaging::service::runtime::preflight;
use reliable_messaging::service::{self, DatabaseArgs, ServiceArgs, ServiceBuilder, ServiceDefaults};

use consumer_service_template::handler;

const NAME: &str = "consumer-service-template";

/// The database is the service's own, named after it, and created at start when missing: sqlx
/// records applied migrations per database (`_sqlx_migrations`), so in the workspace's shared
/// database each migrator would find the other's migrations "applied but missing" and refuse.
const DEFAULTS: ServiceDefaults = ServiceDefaults {
    name: NAME,
    http_addr_env: "CONSUMER_SERVICE_TEMPLATE_ADDR",
    http_addr: "127.0.0.1:8090",
    database_url: Some("mysql://registrations@127.0.0.1:3306/consumer_service_template"),
};

#[derive(Debug, clap::Parser)]
#[command(version, about = "Stores each message of a topic in MySQL, exactly once.")]
struct Args {
    // TEMPLATE: the settings your handler needs go here, next to the topic.
    /// The topic to consume; failures go to `<topic>-dlq`.
    #[arg(long, env = "CONSUMER_SERVICE_TEMPLATE_TOPIC", default_value = "consumer-service-template-input")]
    topic: String,
    #[command(flatten)]
    service: ServiceArgs,
    #[command(flatten)]
    database: DatabaseArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `--help` and a bad variable (named in the message) exit here, before anything else.
    let args: Args = service::parse_from(&DEFAULTS, std::env::args_os()).unwrap_or_else(|e| e.exit());
    reliable_messaging::service::runtime::telemetry::init(NAME, &args.service.telemetry);
    let pool = args.database.single_identity()?.connect_lazy()?;
    let handler = handler::StoreMessages::new(pool.clone());
    let builder = ServiceBuilder::from_args(NAME, &args.service, &[&args.topic], std::env::vars(), handler)
        .database(pool)
        .version(env!("CARGO_PKG_VERSION"))
        .create_database_if_missing()
        .migrations(sqlx::migrate!());
    // A wrong password or an untrusted certificate is a clear error now, not a hang later.
    preflight::check_kafka(builder.kafka_settings(), preflight::DEFAULT_TIMEOUT).await?;
    let service = builder.build().await?;
    tracing::info!(http = ?service.http_addr(), topic = %args.topic, "{NAME} starting");
    let stopped = service.run(reliable_messaging::service::runtime::shutdown::on_termination_signal()).await;
    reliable_messaging::service::runtime::telemetry::shutdown();
    Ok(stopped?)
}

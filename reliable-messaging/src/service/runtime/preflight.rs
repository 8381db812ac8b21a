//! Start-up checks that turn a misconfigured secured connection into one clear error.
//!
//! Every service otherwise starts while Kafka or the database is down and waits for them
//! (messages wait safely in Kafka meanwhile). That is right for an outage, and wrong for a
//! wrong password or a certificate nobody trusts: those never heal, and waiting would look
//! like a hang. So before building anything, a service tries each connection once:
//!
//! * the server refuses us (SASL authentication failed, TLS handshake failed, access denied,
//!   TLS required): [`PreflightError`], which names the server, the security settings in use
//!   (never a secret) and the server's or the TLS library's reason; the binary exits with it;
//! * the server is unreachable (refused, timed out): a warning, and the service starts and
//!   waits as before;
//! * it answers: nothing to say.

#[cfg(feature = "mysql")]
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::Timeout;
#[cfg(feature = "mysql")]
use sqlx::mysql::{MySqlConnectOptions, MySqlSslMode};
#[cfg(feature = "mysql")]
use sqlx::{ConnectOptions, Connection};

use crate::kafka::KafkaSettings;

/// How long each check may take when the server does not answer at all.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    #[error(
        "Kafka at {bootstrap} refused this client (security.protocol={protocol}, sasl.mechanism={mechanism}): {reason}. \
         Check KAFKA_SASL_USERNAME / KAFKA_SASL_PASSWORD and KAFKA_SSL_CA_LOCATION"
    )]
    KafkaRefused { bootstrap: String, protocol: String, mechanism: String, reason: String },
    #[error("the Kafka client configuration is invalid: {0}")]
    KafkaConfig(String),
    #[cfg(feature = "mysql")]
    #[error("the database at {address} refused this client (ssl-mode={ssl_mode}): {reason}")]
    DatabaseRefused { address: String, ssl_mode: String, reason: String },
    #[cfg(feature = "mysql")]
    #[error("DATABASE_URL is invalid: {0}")]
    DatabaseUrl(String),
    #[cfg(feature = "mysql")]
    #[error(
        "the database identity {account} lacks {privileges} on table {table}, which this service needs: {reason}. \
         Grant it (README, Security), or set DATABASE_MIGRATION_URL so the migration step grants it"
    )]
    DatabaseGrantMissing { account: String, privileges: String, table: String, reason: String },
}

/// What a check found when the server did not refuse us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    Answered,
    /// Not reachable now (the reason); the service waits for it as for any outage.
    Unreachable(String),
}

#[cfg(feature = "mysql")]
/// Both checks, Kafka first; logs a warning for a server that cannot be reached.
pub async fn check(kafka: &KafkaSettings, database_url: &str) -> Result<(), PreflightError> {
    if let Reach::Unreachable(reason) = check_kafka(kafka, DEFAULT_TIMEOUT).await? {
        tracing::warn!(bootstrap = %kafka.bootstrap_servers, %reason, "Kafka is not reachable at start-up; waiting for it");
    }
    if let Reach::Unreachable(reason) = check_database(database_url, DEFAULT_TIMEOUT).await? {
        tracing::warn!(%reason, "the database is not reachable at start-up; waiting for it");
    }
    Ok(())
}

/// Records the errors librdkafka reports while it connects: the metadata request itself only
/// says "timed out"; the reason (SASL or TLS failure) arrives here.
#[derive(Default, Clone)]
struct ErrorRecorder(Arc<Mutex<Vec<(RDKafkaErrorCode, String)>>>);

impl ClientContext for ErrorRecorder {
    fn error(&self, error: KafkaError, reason: &str) {
        let code = error.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Unknown);
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push((code, reason.to_owned()));
    }

    // A TLS or SASL failure reaches the error callback only as "all brokers down"; the
    // reason is in librdkafka's log line for the failed connection, so keep those.
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, _fac: &str, log_message: &str) {
        use rdkafka::config::RDKafkaLogLevel::{Alert, Critical, Emerg, Error};
        if matches!(level, Emerg | Alert | Critical | Error) && is_refusal_text(log_message) {
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((RDKafkaErrorCode::Authentication, log_message.to_owned()));
        }
    }
}

/// librdkafka's wording for a connection the broker (or our TLS stack) refused.
fn is_refusal_text(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "ssl handshake failed",
        "sasl authentication error",
        "authentication failed",
        "certificate verify failed",
        "incorrect security.protocol",
    ]
    .iter()
    .any(|needle| m.contains(needle))
}

// Nothing is produced: the producer only fetches metadata.
impl rdkafka::producer::ProducerContext for ErrorRecorder {
    type DeliveryOpaque = ();
    fn delivery(&self, _result: &rdkafka::producer::DeliveryResult<'_>, _opaque: ()) {}
}

impl ErrorRecorder {
    fn refusal(&self) -> Option<String> {
        let errors = self.0.lock().unwrap_or_else(|p| p.into_inner());
        errors
            .iter()
            .find(|(code, _)| {
                matches!(
                    code,
                    RDKafkaErrorCode::Authentication
                        | RDKafkaErrorCode::SSL
                        | RDKafkaErrorCode::SaslAuthenticationFailed
                )
            })
            .map(|(_, reason)| reason.clone())
    }

    fn all_brokers_down(&self) -> Option<String> {
        let errors = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let down = errors.iter().any(|(code, _)| *code == RDKafkaErrorCode::AllBrokersDown);
        down.then(|| errors.iter().map(|(_, r)| r.as_str()).collect::<Vec<_>>().join("; "))
    }
}

/// Connects to Kafka once (metadata request) and says whether the brokers refused us.
pub async fn check_kafka(settings: &KafkaSettings, timeout: Duration) -> Result<Reach, PreflightError> {
    let settings = settings.clone();
    tokio::task::spawn_blocking(move || check_kafka_blocking(&settings, timeout))
        .await
        .unwrap_or_else(|e| Err(PreflightError::KafkaConfig(format!("the check panicked: {e}"))))
}

fn check_kafka_blocking(settings: &KafkaSettings, timeout: Duration) -> Result<Reach, PreflightError> {
    let recorder = ErrorRecorder::default();
    let producer: BaseProducer<ErrorRecorder> = settings
        .client_config()
        .create_with_context(recorder.clone())
        // The message names the property; for a secret one the value is not repeated.
        .map_err(|e| PreflightError::KafkaConfig(config_error_without_secret(&e)))?;
    let refused = |reason: String| PreflightError::KafkaRefused {
        bootstrap: settings.bootstrap_servers.clone(),
        protocol: settings.security_protocol().to_owned(),
        mechanism: settings
            .property("sasl.mechanism")
            .or(settings.property("sasl.mechanisms"))
            .unwrap_or("-")
            .to_owned(),
        reason,
    };
    let deadline = Instant::now() + timeout;
    loop {
        let answer = producer.client().fetch_metadata(None, Timeout::After(Duration::from_millis(400)));
        // Errors and log lines reach the context only when the client's queue is served.
        producer.poll(Duration::from_millis(100));
        // A refusal wins even over an answer: with several brokers one may have let us in.
        if let Some(reason) = recorder.refusal() {
            return Err(refused(reason));
        }
        match answer {
            Ok(_) => return Ok(Reach::Answered),
            Err(e) => {
                if let Some(reasons) = recorder.all_brokers_down() {
                    return Ok(Reach::Unreachable(reasons));
                }
                if Instant::now() >= deadline {
                    return Ok(Reach::Unreachable(e.to_string()));
                }
            }
        }
    }
}

fn config_error_without_secret(error: &KafkaError) -> String {
    match error {
        KafkaError::ClientConfig(_, description, key, _value) if crate::kafka::is_secret_property(key) => {
            format!("{key}: {description}")
        }
        other => other.to_string(),
    }
}

#[cfg(feature = "mysql")]
/// MySQL/MariaDB errors that say "not you" or "not like this": they do not heal by waiting.
const REFUSAL_CODES: &[u16] = &[
    1044, // access denied to the database
    1045, // access denied (wrong password, or a REQUIRE SSL user without TLS)
    1698, // access denied (auth plugin)
    3159, // insecure transport prohibited (require_secure_transport)
];

#[cfg(feature = "mysql")]
/// Opens one connection to the database and says whether it refused us.
pub async fn check_database(url: &str, timeout: Duration) -> Result<Reach, PreflightError> {
    let options = MySqlConnectOptions::from_str(url).map_err(|e| PreflightError::DatabaseUrl(e.to_string()))?;
    let ssl_mode = ssl_mode_name(url);
    let address = database_address(url);
    let refused = |reason: String| PreflightError::DatabaseRefused {
        address: address.clone(),
        ssl_mode: ssl_mode.clone(),
        reason,
    };
    match tokio::time::timeout(timeout, options.connect()).await {
        Err(_) => Ok(Reach::Unreachable(format!("no answer within {timeout:?}"))),
        Ok(Ok(connection)) => {
            let _ = connection.close().await;
            Ok(Reach::Answered)
        }
        Ok(Err(sqlx::Error::Tls(e))) => Err(refused(format!("TLS failed: {e}"))),
        // rustls reports a certificate it does not trust as invalid data on the socket.
        Ok(Err(sqlx::Error::Io(e))) if e.kind() == std::io::ErrorKind::InvalidData => {
            Err(refused(format!("TLS failed: {e}")))
        }
        Ok(Err(sqlx::Error::Configuration(e))) => Err(refused(format!("TLS configuration: {e}"))),
        Ok(Err(sqlx::Error::Database(e)))
            if e.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                .is_some_and(|m| REFUSAL_CODES.contains(&m.number())) =>
        {
            Err(refused(e.to_string()))
        }
        Ok(Err(e)) => Ok(Reach::Unreachable(e.to_string())),
    }
}

#[cfg(feature = "mysql")]
/// [`check`], then [`check_database_grants`]: what every service runs at start. With a
/// migration identity, the runtime identity may hold nothing on its database yet (the migration
/// phase grants it, and MySQL refuses a login to a database the account has no privilege on),
/// so its login is checked on `information_schema`, which every account may open.
pub async fn check_with_identities(
    kafka: &KafkaSettings,
    url: &str,
    migration_url: Option<&str>,
    grants: &[crate::service::runtime::identities::TableGrant],
) -> Result<(), PreflightError> {
    let login = match migration_url {
        Some(_) => {
            let mut login = url::Url::parse(url).map_err(|e| PreflightError::DatabaseUrl(e.to_string()))?;
            login.set_path("/information_schema");
            login.to_string()
        }
        None => url.to_owned(),
    };
    check(kafka, &login).await?;
    check_database_grants(url, migration_url, grants).await
}

#[cfg(feature = "mysql")]
/// The runtime identity's grants, once: with a migration identity (`migration_url`) only that
/// identity's connection is checked (the migration step grants the rest); without one, every
/// statement of `grants` is prepared as `url`'s identity ([`identities::missing_grant`]). An
/// unreachable database is left to the connection check and to waiting.
///
/// [`identities::missing_grant`]: crate::service::runtime::identities::missing_grant
pub async fn check_database_grants(
    url: &str,
    migration_url: Option<&str>,
    grants: &[crate::service::runtime::identities::TableGrant],
) -> Result<(), PreflightError> {
    if let Some(migration_url) = migration_url {
        if let Reach::Unreachable(reason) = check_database(migration_url, DEFAULT_TIMEOUT).await? {
            tracing::warn!(%reason, "the migration identity cannot reach the database at start-up; waiting for it");
        }
        return Ok(());
    }
    let options = MySqlConnectOptions::from_str(url).map_err(|e| PreflightError::DatabaseUrl(e.to_string()))?;
    let pool = sqlx::mysql::MySqlPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(DEFAULT_TIMEOUT)
        .connect_lazy_with(options);
    let found =
        tokio::time::timeout(DEFAULT_TIMEOUT, crate::service::runtime::identities::missing_grant(&pool, grants)).await;
    pool.close().await;
    match found {
        Ok(Ok(Some(missing))) => Err(PreflightError::DatabaseGrantMissing {
            account: missing.account,
            privileges: missing.grant.privileges.to_owned(),
            table: missing.grant.table.to_owned(),
            reason: missing.reason,
        }),
        Ok(Ok(None)) => Ok(()),
        Ok(Err(error)) => {
            tracing::warn!(%error, "could not check the database grants at start-up");
            Ok(())
        }
        Err(_) => {
            tracing::warn!("the database grants could not be checked within {DEFAULT_TIMEOUT:?}");
            Ok(())
        }
    }
}

#[cfg(feature = "mysql")]
fn ssl_mode_name(url: &str) -> String {
    let mode = url::Url::parse(url)
        .ok()
        .and_then(|u| u.query_pairs().find(|(k, _)| k == "ssl-mode" || k == "sslmode").map(|(_, v)| v.into_owned()));
    match mode {
        Some(m) => MySqlSslMode::from_str(&m).map(|_| m.clone()).unwrap_or(m),
        None => "PREFERRED (default)".to_owned(),
    }
}

#[cfg(feature = "mysql")]
/// `host:port/database` of a URL, without user or password.
fn database_address(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!("{}:{}{}", u.host_str().unwrap_or("?"), u.port().unwrap_or(3306), u.path()),
        Err(_) => "<unparsable DATABASE_URL>".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn librdkafka_refusals_are_recognised_by_their_wording() {
        assert!(is_refusal_text("sasl_ssl://localhost:29092/bootstrap: SASL authentication error: Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512"));
        assert!(is_refusal_text(
            "ssl://b:9093/bootstrap: SSL handshake failed: error:0A000086:SSL routines::certificate verify failed"
        ));
        assert!(!is_refusal_text(
            "localhost:9092/bootstrap: Connect to ipv4#127.0.0.1:9092 failed: Connection refused"
        ));
    }

    #[cfg(feature = "mysql")]
    #[test]
    fn the_address_in_an_error_never_carries_the_password() {
        let url = "mysql://app:hunter2@db.example.com:3307/registrations?ssl-mode=VERIFY_IDENTITY";
        assert_eq!(database_address(url), "db.example.com:3307/registrations");
        assert_eq!(ssl_mode_name(url), "VERIFY_IDENTITY");
        assert_eq!(ssl_mode_name("mysql://a@b/c"), "PREFERRED (default)");
    }

    #[cfg(feature = "mysql")]
    #[tokio::test]
    async fn an_unreachable_database_is_waited_for_not_refused() {
        // Port 9 (discard) is closed on loopback: connection refused, which is an outage.
        let reach = check_database("mysql://u@127.0.0.1:9/db", Duration::from_secs(5)).await.expect("not a refusal");
        assert!(matches!(reach, Reach::Unreachable(_)), "{reach:?}");
    }

    #[tokio::test]
    async fn an_unreachable_broker_is_waited_for_not_refused() {
        let settings = KafkaSettings::new("127.0.0.1:9", "preflight-test");
        let reach = check_kafka(&settings, Duration::from_secs(5)).await.expect("not a refusal");
        assert!(matches!(reach, Reach::Unreachable(_)), "{reach:?}");
    }
}

//! The services over secured connections, for real: Kafka over SASL_SSL (SCRAM-SHA-512, and
//! PLAIN over TLS) and MariaDB requiring TLS with the server certificate verified, both
//! started by `scripts/local-services.sh up --secure` with a CA generated on the machine.
//!
//! Run by `scripts/test.sh` in the environment `scripts/local-services.sh env --secure`
//! prints; they need those servers, so a plain `cargo test` skips them (`#[ignore]`):
//!
//! ```sh
//! scripts/local-services.sh up --secure
//! (eval "$(scripts/local-services.sh env --secure)"; cargo test -p integration-tests --test secure_connections -- --ignored)
//! ```
//!
//! A wrong password and a certificate nobody trusts must stop a service at start-up with an
//! error that says so: not a hang (it would wait forever like for an outage), not a panic.

use std::str::FromStr;
use std::time::Duration;

use integration_tests::harness::{self, free_port, ServiceProcess};
use reliable_messaging::dead_letter::dead_letter_topic;
use reliable_messaging::service::runtime::preflight::{self, PreflightError, Reach};
use reliable_messaging::KafkaSettings;
use sqlx::mysql::MySqlConnectOptions;
use sqlx::{ConnectOptions, Connection};
use uuid::Uuid;

const HOW_TO_RUN: &str = "run with the secured services' environment: scripts/local-services.sh up --secure && \
eval \"$(scripts/local-services.sh env --secure)\" (scripts/test.sh does both)";

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: {HOW_TO_RUN}"))
}

/// The secured environment, checked to really be the secured one.
fn secured_env() -> (KafkaSettings, String) {
    // What the services read through their KafkaArgs: the bootstrap servers, then every other
    // KAFKA_<PROPERTY> of the environment.
    let bootstrap = std::env::var("KAFKA_BOOTSTRAP_SERVERS")
        .unwrap_or_else(|_| KafkaSettings::DEFAULT_BOOTSTRAP_SERVERS.to_owned());
    let mut kafka = KafkaSettings::new(bootstrap, "secure-test");
    kafka.read_properties(std::env::vars());
    assert_eq!(kafka.security_protocol(), "SASL_SSL", "KAFKA_SECURITY_PROTOCOL must be SASL_SSL: {HOW_TO_RUN}");
    let database_url = var("DATABASE_URL");
    assert!(database_url.contains("ssl-mode=VERIFY_IDENTITY"), "DATABASE_URL must verify the server: {HOW_TO_RUN}");
    (kafka, database_url)
}

/// The test's own connection to the secured MariaDB really is TLS.
async fn assert_encrypted(server_url: &str) {
    let options = MySqlConnectOptions::from_str(server_url).expect("DATABASE_URL parses");
    let mut admin = options.connect().await.expect("connect over TLS to the secured MariaDB");
    // The connection really is TLS: the server says which cipher it uses for us.
    let cipher: (String, String) =
        sqlx::query_as("SHOW SESSION STATUS LIKE 'Ssl_cipher'").fetch_one(&mut admin).await.expect("Ssl_cipher");
    assert!(!cipher.1.is_empty(), "the test's own connection is not encrypted");
    admin.close().await.ok();
}

#[tokio::test]
#[ignore = "needs scripts/local-services.sh up --secure and its env; run by scripts/test.sh"]
async fn a_sign_up_goes_end_to_end_over_sasl_ssl_and_tls_to_the_database() {
    let (kafka, server_url) = secured_env();
    assert_encrypted(&server_url).await;
    // Each service as its own least-privilege identity (local-services.sh creates them), the
    // schema migrated as the migrator, on the shared `registrations` database: topics and
    // request ids are unique per test, so runs never see each other's rows.
    let migration = ("DATABASE_MIGRATION_URL", var("SECURE_REGISTRATIONS_MIGRATOR_DATABASE_URL"));
    let (gateway_url, registration_url, dlq_url) = (
        var("SECURE_GATEWAY_DATABASE_URL"),
        var("SECURE_REGISTRATION_SERVICE_DATABASE_URL"),
        var("SECURE_DLQ_WORKER_DATABASE_URL"),
    );
    let topic = format!("secure-registrations-{}", Uuid::new_v4().simple());
    let policy = reliable_messaging::kafka::topics::TopicPolicy::default();
    reliable_messaging::kafka::topics::ensure_exist_with(&kafka, &[&topic, &dead_letter_topic(&topic)], &policy)
        .await
        .expect("create topics over SASL_SSL");

    // Every process inherits KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_*, KAFKA_SSL_CA_LOCATION.
    let gateway_ports = harness::gateway::GatewayPorts::free();
    let gateway_port = gateway_ports.public;
    let registration_port = free_port();
    let dlq_port = free_port();
    let secret = harness::gateway::random_secret();
    let mut gateway_env =
        harness::gateway::process_env(gateway_ports, &kafka.bootstrap_servers, &gateway_url, &topic, &secret);
    gateway_env.push(migration.clone());
    let mut gateway = ServiceProcess::spawn("gateway", &gateway_env);
    let mut registration = ServiceProcess::spawn(
        "registration-service",
        &[
            ("DATABASE_URL", registration_url.clone()),
            migration.clone(),
            ("REGISTRATIONS_TOPIC", topic.clone()),
            ("CONSUMER_GROUP", format!("{topic}-registration-service")),
            ("REGISTRATION_SERVICE_ADDR", format!("127.0.0.1:{registration_port}")),
        ],
    );
    let mut dlq_worker = ServiceProcess::spawn(
        "dlq-worker",
        &[
            ("DATABASE_URL", dlq_url.clone()),
            migration.clone(),
            ("DLQ_TOPIC_PATTERN", format!("^{}$", dead_letter_topic(&topic))),
            ("DLQ_CONSUMER_GROUP", format!("dlq-worker-{topic}")),
            ("DLQ_WORKER_ADDR", format!("127.0.0.1:{dlq_port}")),
        ],
    );
    let client = reqwest::Client::new();
    let urls = [
        format!("{}/readyz", gateway_ports.internal_url()),
        format!("http://127.0.0.1:{registration_port}/readyz"),
        format!("http://127.0.0.1:{dlq_port}/healthz"),
    ];
    if let Err(url) = harness::all_ready(&urls, Duration::from_secs(60)).await {
        panic!(
            "{url} never became ready over the secured connections; logs:\n{}\n{}\n{}",
            gateway.log(),
            registration.log(),
            dlq_worker.log()
        );
    }

    let email = format!("secure-{}@example.com", Uuid::new_v4().simple());
    let answer = client
        .post(format!("http://127.0.0.1:{gateway_port}/registrations"))
        .json(&serde_json::json!({"email": email, "name": "Ada Secure", "password": "a long passphrase"}))
        .send()
        .await
        .expect("POST /registrations");
    assert_eq!(answer.status(), 202, "{}", answer.text().await.unwrap_or_default());
    let body: serde_json::Value = answer.json().await.expect("JSON answer");
    let request_id = body["request_id"].as_str().expect("request_id").to_owned();

    let status_url = format!("http://127.0.0.1:{gateway_port}/registrations/{request_id}");
    let completed = harness::gateway::completed_within(&client, &status_url, Duration::from_secs(60)).await;
    assert!(completed, "the sign-up never completed; registration-service log:\n{}", registration.log());

    // The row is there, read back over TLS.
    let mut db = MySqlConnectOptions::from_str(&server_url).expect("url").connect().await.expect("connect");
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE email = ?")
        .bind(&email)
        .fetch_one(&mut db)
        .await
        .expect("count");
    assert_eq!(rows, 1);

    // Secrets stay out of the logs.
    let password = var("KAFKA_SASL_PASSWORD");
    let db_passwords: Vec<String> = [&migration.1, &gateway_url, &registration_url, &dlq_url]
        .iter()
        .map(|u| url::Url::parse(u).expect("url").password().unwrap_or_default().to_owned())
        .collect();
    for process in [&gateway, &registration, &dlq_worker] {
        let log = process.log();
        assert!(!log.contains(&password), "{} logged the Kafka password", process.name);
        for db_password in &db_passwords {
            assert!(
                db_password.is_empty() || !log.contains(db_password),
                "{} logged a database password",
                process.name
            );
        }
    }
    for process in [&mut gateway, &mut registration, &mut dlq_worker] {
        let clean = process.terminate(Duration::from_secs(30)).await;
        assert!(clean, "{} did not stop cleanly; log:\n{}", process.name, process.log());
    }
}

#[tokio::test]
#[ignore = "needs scripts/local-services.sh up --secure and its env; run by scripts/test.sh"]
async fn plain_over_tls_is_accepted_and_a_plaintext_database_login_is_refused() {
    let (kafka, server_url) = secured_env();
    let mut plain = kafka.clone();
    plain.set_property("sasl.mechanism", "PLAIN");
    let reach = preflight::check_kafka(&plain, Duration::from_secs(20)).await.expect("PLAIN over TLS is accepted");
    assert_eq!(reach, Reach::Answered);

    // The account is REQUIRE SSL and the server require_secure_transport: no TLS, no entry.
    let mut plaintext = url::Url::parse(&server_url).expect("url");
    plaintext.set_query(Some("ssl-mode=DISABLED"));
    match preflight::check_database(plaintext.as_str(), Duration::from_secs(20)).await {
        Err(PreflightError::DatabaseRefused { reason, .. }) => assert!(
            reason.contains("Access denied") || reason.contains("insecure transport"),
            "unexpected reason: {reason}"
        ),
        other => panic!("a plaintext login to the TLS-only database was not refused: {other:?}"),
    }
}

/// Starts the gateway with the secured environment changed by `change`, and expects it to exit
/// on its own, with exit code 1 (an error, not a panic's 101) and a log that says `expected`.
async fn refused_at_start_up(change: &[(&str, String)], expected: &[&str]) {
    let _ = secured_env();
    let mut env = vec![("GATEWAY_ADDR", format!("127.0.0.1:{}", free_port()))];
    env.extend(change.iter().map(|(k, v)| (*k, v.clone())));
    let mut gateway = ServiceProcess::spawn("gateway", &env);
    let status = gateway.wait_exit(Duration::from_secs(40)).await;
    let log = gateway.log();
    let Some(status) = status else {
        gateway.kill_9().await;
        panic!("the gateway did not stop at start-up (a hang); log:\n{log}");
    };
    assert_eq!(status.code(), Some(1), "expected an error exit, got {status}; log:\n{log}");
    assert!(!log.contains("panicked"), "a panic, not an error:\n{log}");
    for needle in expected {
        assert!(log.contains(needle), "the error does not say {needle:?}:\n{log}");
    }
}

#[tokio::test]
#[ignore = "needs scripts/local-services.sh up --secure and its env; run by scripts/test.sh"]
async fn a_wrong_kafka_password_stops_start_up_with_a_clear_error() {
    let wrong = format!("wrong-{}", Uuid::new_v4().simple());
    refused_at_start_up(
        &[("KAFKA_SASL_PASSWORD", wrong.clone())],
        // LOCAL_PORT_OFFSET moves the port: the address is the environment's.
        &[
            format!("Kafka at {} refused this client", secured_env().0.bootstrap_servers).as_str(),
            "SASL authentication error",
            "invalid credentials",
        ],
    )
    .await;
}

#[tokio::test]
#[ignore = "needs scripts/local-services.sh up --secure and its env; run by scripts/test.sh"]
async fn an_untrusted_broker_certificate_stops_start_up_with_a_clear_error() {
    refused_at_start_up(
        &[("KAFKA_SSL_CA_LOCATION", var("SECURE_UNTRUSTED_CA_LOCATION"))],
        // librdkafka words it "SSL handshake failed: ...certificate verify failed" or only
        // "...certificate verify failed (... in state SSL_HANDSHAKE)", depending on timing.
        &["refused this client", "certificate verify failed"],
    )
    .await;
}

#[tokio::test]
#[ignore = "needs scripts/local-services.sh up --secure and its env; run by scripts/test.sh"]
async fn an_untrusted_database_certificate_stops_start_up_with_a_clear_error() {
    let (_, server_url) = secured_env();
    let mut url = url::Url::parse(&server_url).expect("url");
    let query = format!("ssl-mode=VERIFY_IDENTITY&ssl-ca={}", var("SECURE_UNTRUSTED_CA_LOCATION"));
    url.set_query(Some(&query));
    refused_at_start_up(
        &[("DATABASE_URL", url.to_string())],
        &[
            format!(
                "the database at {}:{}/registrations refused this client",
                url.host_str().unwrap(),
                url.port().unwrap()
            )
            .as_str(),
            "invalid peer certificate",
        ],
    )
    .await;
}

#[tokio::test]
#[ignore = "needs scripts/local-services.sh up --secure and its env; run by scripts/test.sh"]
async fn a_wrong_database_password_stops_start_up_with_a_clear_error() {
    let (_, server_url) = secured_env();
    let mut url = url::Url::parse(&server_url).expect("url");
    url.set_password(Some("not-the-password")).expect("password");
    refused_at_start_up(&[("DATABASE_URL", url.to_string())], &["refused this client", "Access denied"]).await;
}

//! Services started at once on an empty database all come up, and the schema is migrated
//! exactly once.
//!
//! Every service applies the shared migrations when it starts. sqlx's own migration lock does
//! nothing on MariaDB (`GET_LOCK(?, -1)` answers NULL there), so simultaneous starts raced:
//! `Duplicate entry … for key 'PRIMARY'` or "migration … is partially applied", and the
//! dlq-worker died. The negative control shows that plain `Migrator::run` still races here, so
//! the checks of the other tests can fail.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use futures::future::join_all;
use integration_tests::harness::{self, free_port, ServiceProcess};
use integration_tests::{test_env, TestEnv};
use reliable_messaging::dead_letter::dead_letter_topic;
use reliable_messaging::service::runtime::migrations::{apply_migrations, SchemaStatus};
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::{ConnectOptions, Connection, MySqlConnection, MySqlPool};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Concurrent migrators per database: about the 21 simultaneous starts the failure was seen in.
const STARTS: usize = 20;

/// A new database with no table at all, and its URL.
async fn empty_database(env: &TestEnv) -> (MySqlConnectOptions, String) {
    let name = format!("test_{}", Uuid::new_v4().simple());
    let server = MySqlConnectOptions::from_str(&env.database_url).expect("DATABASE_URL parses");
    let mut admin = MySqlConnection::connect_with(&server).await.expect("connect to the MySQL server");
    sqlx::query(&format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
        .execute(&mut admin)
        .await
        .expect("create the database");
    admin.close().await.ok();
    let options = server.database(&name);
    let url = options.to_url_lossy().to_string();
    (options, url)
}

/// A pool of its own, as each service process has.
fn own_pool(options: &MySqlConnectOptions) -> MySqlPool {
    MySqlPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(10))
        .connect_lazy_with(options.clone())
}

/// Asserts every migration is recorded exactly once, successfully, and nothing else is.
async fn assert_migrated_once(options: &MySqlConnectOptions) {
    let pool = own_pool(options);
    let rows: Vec<(i64, i64, bool)> = sqlx::query_as(
        "SELECT version, COUNT(*), MIN(success) = 1 FROM _sqlx_migrations GROUP BY version ORDER BY version",
    )
    .fetch_all(&pool)
    .await
    .expect("read _sqlx_migrations");
    let expected: Vec<(i64, i64, bool)> = signup_schema::migrator().iter().map(|m| (m.version, 1, true)).collect();
    assert_eq!(rows, expected, "(version, rows, success) per migration");
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_simultaneous_starts_on_an_empty_database_all_migrate_it_once() {
    let env = test_env().await;
    let (options, _) = empty_database(env).await;
    let shutdown = CancellationToken::new();
    let starts = (0..STARTS).map(|_| {
        let pool = own_pool(&options);
        let shutdown = shutdown.clone();
        async move {
            let status = SchemaStatus::default();
            let result = apply_migrations(&pool, signup_schema::migrator(), &status, &shutdown).await;
            pool.close().await;
            (result.is_ok() && status.is_applied(), status.failed_attempts())
        }
    });
    let results = tokio::time::timeout(Duration::from_secs(120), join_all(starts))
        .await
        .expect("every start finishes migrating within 120 s");
    let done = results.iter().filter(|(applied, _)| *applied).count();
    let failed_attempts: u64 = results.iter().map(|(_, failed)| failed).sum();
    assert_eq!(done, STARTS, "every start reports the schema applied");
    // Retries would hide a race (a later attempt finds the work done); with a lock that works,
    // every first attempt succeeds.
    assert_eq!(failed_attempts, 0, "attempts that failed and had to be retried");
    assert_migrated_once(&options).await;
}

/// Negative control: the same simultaneous starts with plain `Migrator::run` (sqlx's own lock)
/// must be caught failing on MariaDB. If this test fails there, the test above proves nothing.
/// On MySQL 8 sqlx's lock works, so there is nothing to catch and the control is skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negative_control_plain_sqlx_migrations_race_on_mariadb() {
    let env = test_env().await;
    let (options, _) = empty_database(env).await;
    let version: String =
        sqlx::query_scalar("SELECT VERSION()").fetch_one(&own_pool(&options)).await.expect("server version");
    if !version.contains("MariaDB") {
        println!("skipped: {version} honours sqlx's GET_LOCK(?, -1), so plain sqlx migrations do not race there");
        return;
    }
    // Each round is a fresh empty database; one round almost always shows the race, a few make
    // missing it vanishingly unlikely.
    let mut failures: BTreeMap<String, usize> = BTreeMap::new();
    for round in 0..5 {
        let options = if round == 0 { options.clone() } else { empty_database(env).await.0 };
        let runs = (0..STARTS).map(|_| {
            let pool = own_pool(&options);
            async move {
                let result = signup_schema::migrator().run(&pool).await;
                pool.close().await;
                result
            }
        });
        for result in join_all(runs).await {
            if let Err(e) = result {
                let kind = e.to_string();
                let kind = kind.split(':').next().unwrap_or_default().to_owned();
                *failures.entry(kind).or_default() += 1;
            }
        }
        if !failures.is_empty() {
            println!("round {round}: plain sqlx migrations failed: {failures:?}");
            return;
        }
    }
    panic!("{STARTS} simultaneous plain sqlx migrations never failed in 5 rounds on {version}: the race is not caught");
}

/// The reported failure itself: the gateway, the registration-service and the dlq-worker (two
/// of each) started at the same moment on an empty database all come up and stay up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_three_services_started_at_once_on_an_empty_database_all_come_up() {
    let env = test_env().await;
    let (options, url) = empty_database(env).await;
    let topic = env.unique_topic("registrations");
    // Two partitions: each of the two registration-service instances owns one, so is ready.
    env.create_topics(&[&topic, &dead_letter_topic(&topic)], 2).await;
    let secret = harness::gateway::random_secret();
    let mut ports = Vec::new();
    let mut specs: Vec<(&str, Vec<(&str, String)>)> = Vec::new();
    for _ in 0..2 {
        // Its probes are on the internal listener.
        let gateway = harness::gateway::GatewayPorts::free();
        ports.push(gateway.internal);
        specs.push(("gateway", harness::gateway::process_env(gateway, &env.kafka_bootstrap, &url, &topic, &secret)));
        let port = free_port();
        ports.push(port);
        specs.push((
            "registration-service",
            vec![
                ("KAFKA_BOOTSTRAP_SERVERS", env.kafka_bootstrap.clone()),
                ("DATABASE_URL", url.clone()),
                ("REGISTRATIONS_TOPIC", topic.clone()),
                ("CONSUMER_GROUP", format!("{topic}-registration-service")),
                ("REGISTRATION_SERVICE_ADDR", format!("127.0.0.1:{port}")),
            ],
        ));
        let port = free_port();
        ports.push(port);
        specs.push((
            "dlq-worker",
            vec![
                ("KAFKA_BOOTSTRAP_SERVERS", env.kafka_bootstrap.clone()),
                ("DATABASE_URL", url.clone()),
                ("DLQ_TOPIC_PATTERN", format!("^{topic}-dlq$")),
                ("DLQ_CONSUMER_GROUP", format!("{topic}-dlq-worker")),
                ("DLQ_WORKER_ADDR", format!("127.0.0.1:{port}")),
            ],
        ));
    }
    // All spawned back to back, before any of them has had time to connect.
    let mut processes: Vec<ServiceProcess> =
        specs.iter().map(|(name, vars)| ServiceProcess::spawn(name, vars)).collect();

    for (process, port) in processes.iter_mut().zip(&ports) {
        let ready = harness::ready_within(&format!("http://127.0.0.1:{port}/readyz"), Duration::from_secs(90)).await;
        assert!(ready, "{} on port {port} never became ready\n{}", process.name, process.log());
    }
    for process in &mut processes {
        assert!(process.is_running(), "{} died\n{}", process.name, process.log());
    }
    assert_migrated_once(&options).await;
    for process in &mut processes {
        assert!(process.terminate(Duration::from_secs(30)).await, "{} stops cleanly\n{}", process.name, process.log());
    }
}

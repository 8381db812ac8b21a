//! Least privilege in the database (issue 25), against the real server: every service runs as
//! its own runtime identity, the schema belongs to a migrator identity, and each runtime
//! identity can do its job and nothing else. A widened grant fails a denial below; a missing
//! one stops the service at start-up with exit 1 and the privilege named.
//!
//! The services are the real binaries (`cargo build --workspace --bins` first).

use std::time::Duration;

use integration_tests::harness::dlq_worker::{self, Scope};
use integration_tests::harness::{self, free_port, ServiceProcess};
use integration_tests::identities::Identities;
use integration_tests::{test_env, wait};
use reliable_messaging::dead_letter::dead_letter_topic;
use sqlx::mysql::MySqlDatabaseError;
use sqlx::{Executor, MySqlConnection};
use uuid::Uuid;

/// Runs `sql` as `conn`'s identity and expects the server to refuse it for lack of a privilege
/// (1142 table, 1143 column), saying `command denied`; and, as the control, that the migrator
/// can prepare the very same statement (so the refusal is the identity's, not a typo's).
async fn assert_denied(conn: &mut MySqlConnection, migrator: &mut MySqlConnection, who: &str, sql: &str) {
    migrator.prepare(sql).await.unwrap_or_else(|e| panic!("control: the migrator cannot prepare {sql:?}: {e}"));
    let error = match sqlx::query(sql).execute(&mut *conn).await {
        Ok(done) => {
            panic!("{who} may run {sql:?} ({} rows): a grant is wider than the service needs", done.rows_affected())
        }
        Err(e) => e,
    };
    let number = error.as_database_error().and_then(|d| d.try_downcast_ref::<MySqlDatabaseError>()).map(|m| m.number());
    assert!(matches!(number, Some(1142 | 1143)), "{who}: {sql:?} failed, but not for a privilege: {error}");
    assert!(error.to_string().contains("command denied"), "{who}: {sql:?}: {error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_service_works_as_its_own_identity_and_can_do_nothing_else() {
    let env = test_env().await;
    let ids = env.fresh_identities().await;
    let scope = Scope::new(env);
    let topic = scope.topic("registrations");
    env.create_topics(&[&topic, &dead_letter_topic(&topic)], 1).await;

    // Every service migrates as the migrator (the first one to start applies the migrations,
    // the others find them applied) and is granted its tables by it.
    let migration = ("DATABASE_MIGRATION_URL", ids.migrator_url.clone());
    let gateway_ports = harness::gateway::GatewayPorts::free();
    let gateway_port = gateway_ports.public;
    let mut gateway_env = harness::gateway::process_env(
        gateway_ports,
        &env.kafka_bootstrap,
        &ids.gateway_url,
        &topic,
        &harness::gateway::random_secret(),
    );
    gateway_env.push(migration.clone());
    let mut registration_env = harness::registration::service_process_env(
        env,
        &topic,
        &format!("{topic}-registration-service"),
        &ids.registration_url,
    );
    let registration_port = free_port();
    registration_env.retain(|(k, _)| *k != "REGISTRATION_SERVICE_ADDR");
    registration_env.push(("REGISTRATION_SERVICE_ADDR", format!("127.0.0.1:{registration_port}")));
    registration_env.push(migration.clone());
    let dlq_port = free_port();
    let mut dlq_env = dlq_worker::process_env(env, &scope, &ids.dlq_worker_url, dlq_port);
    dlq_env.push(migration);
    let mut processes = [
        ServiceProcess::spawn("gateway", &gateway_env),
        ServiceProcess::spawn("registration-service", &registration_env),
        ServiceProcess::spawn("dlq-worker", &dlq_env),
    ];
    let logs = |processes: &[ServiceProcess]| processes.iter().map(|p| p.log()).collect::<Vec<_>>().join("\n----\n");
    let urls = [
        format!("{}/readyz", gateway_ports.internal_url()),
        format!("http://127.0.0.1:{registration_port}/readyz"),
        format!("http://127.0.0.1:{dlq_port}/readyz"),
    ];
    if let Err(url) = harness::all_ready(&urls, Duration::from_secs(60)).await {
        panic!("{url} never became ready as its own identity; logs:\n{}", logs(&processes));
    }

    // The gateway (reads statuses, claims keys) and the registration-service (writes users).
    let client = reqwest::Client::new();
    let email = format!("ident-{}@example.com", Uuid::new_v4().simple());
    let answer = client
        .post(format!("http://127.0.0.1:{gateway_port}/registrations"))
        .header("Idempotency-Key", Uuid::new_v4().to_string())
        .json(&serde_json::json!({"email": email, "name": "Ada Least", "password": "a long passphrase"}))
        .send()
        .await
        .expect("POST /registrations");
    assert_eq!(answer.status(), 202, "{}", answer.text().await.unwrap_or_default());
    let body: serde_json::Value = answer.json().await.expect("JSON answer");
    let status_url = format!("http://127.0.0.1:{gateway_port}/registrations/{}", body["request_id"].as_str().unwrap());
    let completed = harness::gateway::completed_within(&client, &status_url, Duration::from_secs(60)).await;
    assert!(completed, "the sign-up never completed; logs:\n{}", logs(&processes));

    // The dlq-worker parks a dead letter whose retry budget is spent.
    env.produce(
        &dead_letter_topic(&topic),
        Some(b"spent"),
        Some(b"{}"),
        &[("originalTopic", topic.as_bytes()), ("retryCount", b"5")],
    )
    .await;
    let mut migrator = Identities::connect(&ids.migrator_url).await;
    let parked = wait::within(Duration::from_secs(60), || {
        let url = ids.migrator_url.clone();
        async move {
            let mut conn = Identities::connect(&url).await;
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM parked_messages").fetch_one(&mut conn).await.unwrap_or(0)
                == 1
        }
    })
    .await;
    assert!(parked, "the dlq-worker never parked the spent dead letter; logs:\n{}", logs(&processes));
    let mut logged = Identities::connect(&ids.migrator_url).await;
    let dead_letters: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM dead_letter_log").fetch_one(&mut logged).await.expect("count");
    assert_eq!(dead_letters, 1, "the dlq-worker logged the dead letter it took, as its own identity");

    // Nothing beyond: no DDL for anyone, no other service's tables, no hidden columns.
    let mut gateway = Identities::connect(&ids.gateway_url).await;
    for sql in [
        "ALTER TABLE users ADD COLUMN x INT",
        "DROP TABLE idempotency_keys",
        "CREATE TABLE gateway_owned (a INT)",
        "SELECT password_hash FROM users",
        "SELECT name FROM users",
        "INSERT INTO users (request_id, email, name, password_hash, requested_at) VALUES (X'00', 'a@b.c', 'n', 'h', NOW(6))",
        "UPDATE request_status SET status = 'parked'",
        "INSERT INTO registration_tombstones (request_id, kind, reason, recorded_at) VALUES (X'00', 'withdrawn', 'x', NOW(6))",
        "DELETE FROM registration_tombstones",
        "SELECT actor FROM erasure_audit",
        "DELETE FROM parked_messages",
    ] {
        assert_denied(&mut gateway, &mut migrator, "the gateway", sql).await;
    }
    let mut registration = Identities::connect(&ids.registration_url).await;
    for sql in [
        "ALTER TABLE users ADD COLUMN x INT",
        "DROP TABLE request_status",
        // It deletes users and writes tombstones (withdrawals, erasures), but never removes one.
        "DELETE FROM registration_tombstones",
        "UPDATE registration_tombstones SET kind = 'withdrawn'",
        "DELETE FROM erased_addresses",
        "SELECT actor FROM erasure_audit",
        "SELECT key_digest FROM idempotency_keys",
        "INSERT INTO parked_message_audit (parked_message_id, action, actor, at) VALUES (1, 'discard', 'x', NOW(6))",
        "UPDATE parked_messages SET state = 'discarded'",
    ] {
        assert_denied(&mut registration, &mut migrator, "the registration-service", sql).await;
    }
    let mut dlq = Identities::connect(&ids.dlq_worker_url).await;
    for sql in [
        "ALTER TABLE parked_messages ADD COLUMN x INT",
        "DROP TABLE parked_message_audit",
        "SELECT email FROM users",
        "INSERT INTO users (request_id, email, name, password_hash, requested_at) VALUES (X'00', 'a@b.c', 'n', 'h', NOW(6))",
        "DELETE FROM parked_message_audit",
        "UPDATE parked_message_audit SET actor = 'someone else'",
        "DELETE FROM erasure_audit",
        "UPDATE erasure_audit SET actor = 'someone else'",
        "SELECT actor FROM erasure_audit",
        "DELETE FROM registration_tombstones",
        "DELETE FROM idempotency_keys",
        // The dead-letter log is only ever added to: the chart's history cannot be rewritten.
        "DELETE FROM dead_letter_log",
        "UPDATE dead_letter_log SET dead_lettered_at = NOW(6)",
    ] {
        assert_denied(&mut dlq, &mut migrator, "the dlq-worker", sql).await;
    }

    // Once migrated and granted, a service needs no migrator at all: started with only its
    // runtime identity it finds every migration applied, issues no DDL and becomes ready.
    let runtime_only_port = free_port();
    let mut runtime_only_env: Vec<_> = registration_env
        .iter()
        .filter(|(k, _)| *k != "DATABASE_MIGRATION_URL" && *k != "REGISTRATION_SERVICE_ADDR")
        .cloned()
        .collect();
    runtime_only_env.push(("REGISTRATION_SERVICE_ADDR", format!("127.0.0.1:{runtime_only_port}")));
    // A group of its own: in the first one's group it would be assigned no partition, not ready.
    runtime_only_env.retain(|(k, _)| *k != "CONSUMER_GROUP");
    runtime_only_env.push(("CONSUMER_GROUP", format!("{topic}-runtime-only")));
    let mut runtime_only = ServiceProcess::spawn("registration-service", &runtime_only_env);
    let ready =
        harness::ready_within(&format!("http://127.0.0.1:{runtime_only_port}/readyz"), Duration::from_secs(60)).await;
    assert!(ready, "a runtime identity alone did not start on the migrated schema; log:\n{}", runtime_only.log());
    assert!(runtime_only.terminate(Duration::from_secs(30)).await, "{}", runtime_only.log());

    for process in &mut processes {
        let clean = process.terminate(Duration::from_secs(30)).await;
        assert!(clean, "{} did not stop cleanly; log:\n{}", process.name, process.log());
    }
}

/// Starts `binary` with `vars` and expects exit 1 within 40 s with `expected` in its log.
async fn stops_at_start_up(binary: &str, vars: &[(&'static str, String)], expected: &[&str]) {
    let mut process = ServiceProcess::spawn(binary, vars);
    let status = process.wait_exit(Duration::from_secs(40)).await;
    let log = process.log();
    let Some(status) = status else {
        process.kill_9().await;
        panic!("{binary} did not stop at start-up with a missing grant; log:\n{log}");
    };
    assert_eq!(status.code(), Some(1), "{binary}: expected an error exit, got {status}; log:\n{log}");
    for needle in expected {
        assert!(log.contains(needle), "{binary}'s error does not say {needle:?}:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identity_missing_one_grant_stops_its_service_at_start_up_naming_it() {
    let env = test_env().await;
    let ids = env.fresh_identities().await;
    // Migrated, but the runtime accounts get all they need except one grant each.
    signup_schema::migrator()
        .run(&mut Identities::connect(&ids.migrator_url).await)
        .await
        .expect("migrate as the migrator");
    let db = &ids.database;
    let (gw, rs, dw) = (
        Identities::account(&ids.gateway_url),
        Identities::account(&ids.registration_url),
        Identities::account(&ids.dlq_worker_url),
    );
    for grant in [
        format!("GRANT SELECT (request_id, created_at, email) ON `{db}`.users TO {gw}"),
        format!("GRANT SELECT ON `{db}`.registration_tombstones TO {gw}"),
        format!("GRANT SELECT ON `{db}`.request_status TO {gw}"),
        // No DELETE: the sweep of expired Idempotency-Key claims could not run.
        format!("GRANT SELECT, INSERT, UPDATE ON `{db}`.idempotency_keys TO {gw}"),
        format!("GRANT SELECT, INSERT, UPDATE, DELETE ON `{db}`.users TO {rs}"),
        format!("GRANT SELECT, INSERT ON `{db}`.registration_tombstones TO {rs}"),
        format!("GRANT SELECT, INSERT, UPDATE ON `{db}`.erased_addresses TO {rs}"),
        // No UPDATE: a retried status could not be recorded.
        format!("GRANT SELECT, INSERT ON `{db}`.request_status TO {rs}"),
        format!("GRANT SELECT, INSERT, UPDATE ON `{db}`.parked_messages TO {dw}"),
        format!("GRANT SELECT, INSERT, UPDATE ON `{db}`.request_status TO {dw}"),
        format!("GRANT SELECT, INSERT ON `{db}`.dead_letter_log TO {dw}"),
        // Nothing on the audit table.
        format!("GRANT SELECT ON `{db}`._sqlx_migrations TO {gw}"),
        format!("GRANT SELECT ON `{db}`._sqlx_migrations TO {rs}"),
        format!("GRANT SELECT ON `{db}`._sqlx_migrations TO {dw}"),
    ] {
        ids.as_admin(&grant).await;
    }
    let scope = Scope::new(env);
    let topic = scope.topic("registrations");
    let gateway_env = harness::gateway::process_env(
        harness::gateway::GatewayPorts::free(),
        &env.kafka_bootstrap,
        &ids.gateway_url,
        &topic,
        &harness::gateway::random_secret(),
    );
    let registration_env =
        harness::registration::service_process_env(env, &topic, &format!("{topic}-rs"), &ids.registration_url);
    let dlq_env = dlq_worker::process_env(env, &scope, &ids.dlq_worker_url, free_port());
    let gateway_identity = format!("identity {}@%", url::Url::parse(&ids.gateway_url).unwrap().username());
    let gateway_expects = [
        gateway_identity.as_str(),
        "SELECT, INSERT, UPDATE, DELETE on table idempotency_keys",
        "DELETE command denied",
    ];
    let registration_expects = ["SELECT, INSERT, UPDATE on table request_status", "UPDATE command denied"];
    let dlq_expects = ["SELECT, INSERT on table parked_message_audit", "command denied"];
    tokio::join!(
        stops_at_start_up("gateway", &gateway_env, &gateway_expects),
        stops_at_start_up("registration-service", &registration_env, &registration_expects),
        stops_at_start_up("dlq-worker", &dlq_env, &dlq_expects),
    );
}

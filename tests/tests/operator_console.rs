//! The operator surfaces against a real broker and database: named admin tokens as audited
//! actors, failures grouped by signature, the console's login, CSRF guard and escaping over
//! plain HTTP, and the whole console in a real headless Chromium over WebDriver against the
//! real pipeline (gateway -> Kafka -> registration-service -> MariaDB, dlq-worker), with a
//! fault placed in the database (a trigger that refuses every new user): canary redrive
//! stops after the canary while the fault is there, and redrives everything once it is gone.
//!
//! The browser test needs `chromium` and `chromium-driver` (scripts/ensure-chromium.sh, run by
//! scripts/test.sh). With `CONSOLE_SCREENSHOTS_DIR` set it saves the README's screenshots there.

use std::time::Duration;

use chrono::Utc;
use futures::future::BoxFuture;
use integration_tests::harness::dlq_worker::{settings, RunningWorker, Scope};
use integration_tests::harness::gateway::{test_settings, GatewayServer};
use integration_tests::harness::registration::{service_settings, InProcessService};
use integration_tests::tcp_proxy::{database_socket_addr, TcpProxy};
use integration_tests::webdriver::Browser;
use integration_tests::{test_env, wait};
use reliable_messaging::dead_letter::{dead_letter_topic, FAILED_BY_HEADER};
use reliable_messaging::message::retry_metadata::MetadataFormat;
use reliable_messaging::message::Header;
use reliable_messaging::parking::{
    CanaryPlan, CanaryStop, NewParkedMessage, Outcome, OutcomeJudge, ParkReason, ParkedMessage, ParkedState,
    ParkingLot, Rate, Redriver,
};
use reliable_messaging::service::Secret;
use serde_json::{json, Value};
use uuid::Uuid;

const ALICE: &str = "alice-token-0123456789abcdef";
const BOB: &str = "bob-token-fedcba9876543210";

fn parked(origin: &str, offset: i64, error: &str, writer: &str, payload: &str) -> NewParkedMessage {
    NewParkedMessage {
        source_topic: origin.to_owned(),
        dlq_topic: dead_letter_topic(origin),
        dlq_partition: 0,
        dlq_offset: offset,
        original_partition: Some(0),
        original_offset: Some(offset),
        key: Some(format!("user{offset}@example.com").into_bytes()),
        headers: vec![
            Header { key: FAILED_BY_HEADER.into(), value: Some(writer.as_bytes().to_vec()) },
            Header {
                key: "traceparent".into(),
                value: Some(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_vec()),
            },
        ],
        payload: Some(payload.as_bytes().to_vec()),
        reason: ParkReason::RetriesExhausted,
        error_kind: "transient".into(),
        error_message: Some(error.to_owned()),
        retry_count: 5,
        first_failure_at: Some(Utc::now() - chrono::Duration::minutes(10)),
        last_failure_at: Some(Utc::now()),
        request_id: Some(Uuid::new_v4()),
    }
}

async fn worker_with_tokens(db_url: &str, scope: &Scope) -> RunningWorker {
    let env = test_env().await;
    let mut s = settings(env, scope, db_url);
    s.admin_token = Some(Secret::new("legacy-token-0123456789"));
    s.operator.named_tokens = Some(Secret::new(format!("alice:{ALICE},bob:{BOB}")));
    RunningWorker::start(s).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_tokens_are_the_audited_actors_and_the_api_groups_failures_by_signature() {
    let env = test_env().await;
    let db = env.fresh_database().await;
    let scope = Scope::new(env);
    let lot = ParkingLot::new(db.pool.clone());
    // Two causes: one with ids, numbers and times that differ per message, one other.
    let pool_ids = [
        lot.park(&parked(
            "orders",
            1,
            "pool timed out after 30 s for user 17 at 2026-12-07T09:00:01Z",
            "registration-service/0.1.0",
            "{}",
        ))
        .await
        .unwrap()
        .id,
        lot.park(&parked(
            "orders",
            2,
            "pool timed out after 5 s for user 4242 at 2026-12-07T09:13:44.5Z",
            "registration-service/0.1.0",
            "{}",
        ))
        .await
        .unwrap()
        .id,
        lot.park(&parked(
            "orders",
            3,
            "pool timed out after 9 s for user 7 at 2026-12-07T10:00:00Z",
            "registration-service/0.2.0",
            "{}",
        ))
        .await
        .unwrap()
        .id,
    ];
    let other = lot
        .park(&parked("orders", 4, "duplicate key 'users.email'", "registration-service/0.2.0", "{}"))
        .await
        .unwrap()
        .id;
    let worker = worker_with_tokens(&db.url, &scope).await;
    let client = reqwest::Client::new();

    let answer = client.get(worker.url("/admin/signatures")).bearer_auth(ALICE).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    let groups: Value = answer.json().await.unwrap();
    let groups = groups["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "{groups:?}");
    assert_eq!(groups[0]["count"], 3);
    assert_eq!(groups[0]["pattern"], "pool timed out after <n> s for user <n> at <time>");
    assert_eq!(groups[0]["ids"], json!(pool_ids));
    assert_eq!(groups[0]["failed_by"], json!(["registration-service/0.1.0", "registration-service/0.2.0"]));
    assert_eq!(groups[1]["ids"], json!([other]));
    let signature = groups[0]["signature"].as_str().unwrap().to_owned();
    let listed: Value = client
        .get(worker.url(&format!("/admin/parked?signature={signature}")))
        .bearer_auth(BOB)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed: Vec<u64> = listed["items"].as_array().unwrap().iter().map(|i| i["id"].as_u64().unwrap()).collect();
    assert_eq!(listed, pool_ids, "the list filters by the same signature");

    // The CLI groups the same way (one set of operations underneath).
    let cli = |args: &[&str]| {
        std::process::Command::new(integration_tests::harness::binary_path("dlq-worker"))
            .arg("parked")
            .args(args)
            .env("DATABASE_URL", &db.url)
            .env("KAFKA_BOOTSTRAP_SERVERS", &env.kafka_bootstrap)
            .env_remove("CANARY_STATUS_URL")
            .output()
            .expect("run dlq-worker parked")
    };
    let out = cli(&["groups", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cli_groups: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(
        cli_groups.iter().map(|g| g["signature"].clone()).collect::<Vec<_>>(),
        groups.iter().map(|g| g["signature"].clone()).collect::<Vec<_>>()
    );
    let refused = cli(&["redrive", "--signature", &signature, "--canary", "1"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("CANARY_STATUS_URL"));

    // Bob discards; the audit row says bob. Bob cannot claim to be alice; no token, no access.
    let discard = |token: &'static str, body: Value| {
        client.post(worker.url("/admin/parked/discard")).bearer_auth(token).json(&body).send()
    };
    let spoof = discard(BOB, json!({"ids": [other], "reason": "x", "actor": "alice"})).await.unwrap();
    assert_eq!(spoof.status(), 400);
    assert_eq!(lot.get(other).await.unwrap().unwrap().state, ParkedState::Parked, "a refused request changes nothing");
    let ok = discard(BOB, json!({"ids": [other], "reason": "duplicate sign-up"})).await.unwrap();
    assert_eq!(ok.status(), 200);
    let audit = lot.audit_trail(other).await.unwrap();
    assert_eq!((audit[0].action.as_str(), audit[0].actor.as_str()), ("discard", "bob"));
    let wrong =
        client.get(worker.url("/admin/signatures")).bearer_auth("alice-token-0123456789abcdeX").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    assert_eq!(wrong.headers()["content-type"], "application/problem+json");
    let legacy = client.get(worker.url("/admin/audit")).bearer_auth("legacy-token-0123456789").send().await.unwrap();
    let legacy: Value = legacy.json().await.unwrap();
    assert_eq!(legacy["audit"][0]["actor"], "bob", "ADMIN_TOKEN still works, beside the named ones");

    // A canary needs a way to see outcomes: refused, with a problem document, when none is set.
    let canary = client
        .post(worker.url("/admin/parked/redrive"))
        .bearer_auth(ALICE)
        .json(&json!({"filter": {"signature": signature}, "canary": {"size": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(canary.status(), 400);
    assert!(canary.text().await.unwrap().contains("CANARY_STATUS_URL"));
    worker.stop().await;
}

/// A client that keeps the console's session cookie by hand, to see its attributes.
async fn console_login(client: &reqwest::Client, worker: &RunningWorker, token: &str) -> reqwest::Response {
    client.post(worker.url("/console/login")).form(&[("token", token)]).send().await.unwrap()
}

fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a CSRF field") + "name=\"csrf\" value=\"".len();
    page[at..at + 64].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_login_gives_a_strict_cookie_posts_need_the_csrf_token_and_user_input_is_escaped() {
    let env = test_env().await;
    let db = env.fresh_database().await;
    let scope = Scope::new(env);
    let lot = ParkingLot::new(db.pool.clone());
    let payload = r#"{"name":"<script>window.injected=1</script>","email":"x@example.com","password_hash":"$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA"}"#;
    let id = lot.park(&parked("orders", 1, "bad <b>bold</b> error", "w/1", payload)).await.unwrap().id;
    let worker = worker_with_tokens(&db.url, &scope).await;
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();

    let anonymous = client.get(worker.url("/console")).send().await.unwrap();
    assert_eq!(anonymous.status(), 303);
    assert_eq!(anonymous.headers()["location"], "/console/login");
    assert_eq!(console_login(&client, &worker, "not-a-token").await.status(), 401);
    let login = console_login(&client, &worker, ALICE).await;
    assert_eq!(login.status(), 303);
    let cookie = login.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let cookie = cookie.split(';').next().unwrap().to_owned();

    let page =
        client.get(worker.url(&format!("/console/messages/{id}"))).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-security-policy"].to_str().unwrap().contains("default-src 'none'"));
    let page = page.text().await.unwrap();
    assert!(page.contains("&lt;script&gt;window.injected=1&lt;/script&gt;"), "the name shows as text");
    assert!(!page.contains("<script>"), "no markup from user input reaches the page");
    assert!(page.contains("bad &lt;b&gt;bold&lt;/b&gt; error"));
    assert!(!page.contains("argon2id"), "the password hash is masked");
    assert!(page.contains("4bf92f3577b34da6a3ce929d0e0e4736"), "the trace id is shown");
    let csrf = csrf_of(&page);

    // Negative control: the same discard without the CSRF token (or with another) does nothing.
    for forged in ["", "0000000000000000000000000000000000000000000000000000000000000000"] {
        let refused = client
            .post(worker.url("/console/discard"))
            .header("cookie", &cookie)
            .form(&[("csrf", forged), ("id", &id.to_string()), ("reason", "forged")])
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 403);
    }
    assert_eq!(lot.get(id).await.unwrap().unwrap().state, ParkedState::Parked);
    assert!(lot.audit_trail(id).await.unwrap().is_empty());
    let done = client
        .post(worker.url("/console/discard"))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str()), ("id", &id.to_string()), ("reason", "test data")])
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 303);
    assert_eq!(lot.get(id).await.unwrap().unwrap().state, ParkedState::Discarded);
    let audit = lot.audit_trail(id).await.unwrap();
    assert_eq!((audit[0].actor.as_str(), audit[0].reason.as_deref()), ("alice", Some("test data")));
    worker.stop().await;
}

/// The fault: every new user row is refused by the database, as after a bad migration.
const FAULT: &str = "CREATE TRIGGER console_test_fault BEFORE INSERT ON users FOR EACH ROW \
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'bad deploy: users insert refused'";

async fn sign_up(client: &reqwest::Client, gateway: &GatewayServer, n: usize, name: &str) -> Uuid {
    let answer = client
        .post(gateway.url("/registrations"))
        .json(&json!({"email": format!("console{n}-{}@example.com", Uuid::new_v4().simple()), "name": name, "password": "a long passphrase here"}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 202);
    let body: Value = answer.json().await.unwrap();
    Uuid::parse_str(body["request_id"].as_str().unwrap()).unwrap()
}

async fn status_of(client: &reqwest::Client, gateway: &GatewayServer, id: Uuid) -> String {
    let body: Value =
        client.get(gateway.url(&format!("/registrations/{id}"))).send().await.unwrap().json().await.unwrap();
    body["status"].as_str().unwrap_or_default().to_owned()
}

async fn wait_parked(client: &reqwest::Client, gateway: &GatewayServer, ids: &[Uuid]) {
    wait::until(Duration::from_secs(120), "the sign-ups parked", || async move {
        for id in ids {
            if status_of(client, gateway, *id).await != "parked" {
                return false;
            }
        }
        true
    })
    .await;
}

/// Submits the redrive form of the (only) signature group with a canary of one.
async fn canary_redrive_the_group(browser: &Browser, base: &str) -> String {
    browser.goto(&format!("{base}/console/groups")).await.unwrap();
    let groups = browser.find_all("fieldset.group").await.unwrap();
    assert_eq!(groups.len(), 1, "one cause, one group");
    let form = groups[0].find("form.redrive").await.unwrap();
    let size = form.find("input[name=canary_size]").await.unwrap();
    size.clear().await.unwrap();
    size.send_keys("1").await.unwrap();
    form.find("input[name=reason]").await.unwrap().send_keys("after the rollback").await.unwrap();
    form.find("button").await.unwrap().click().await.unwrap();
    browser.wait_for("#results", Duration::from_secs(120)).await.expect("the redrive's result page");
    browser.source().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_console_in_a_real_browser_finds_the_group_stops_the_canary_on_the_fault_and_redrives_once_fixed() {
    assert!(Browser::available(), "chromium and chromedriver are needed: run scripts/ensure-chromium.sh");
    let env = test_env().await;
    let db = env.fresh_database().await;
    let scope = Scope::new(env);
    let topic = scope.topic("registrations");
    env.create_topics(&[&topic, &dead_letter_topic(&topic)], 1).await;
    // The registration-service reaches the database through a proxy the test can cut.
    let proxy = TcpProxy::start(database_socket_addr(&db.url)).await;
    let gateway = GatewayServer::start(test_settings(env, &topic, &db.url)).await;
    let service_db = proxy.rewrite_url(&db.url);
    let service =
        InProcessService::start(service_settings(env, &topic, &scope.group.replace("dlq-worker", "rs"), &service_db))
            .await;
    let mut ws = settings(env, &scope, &db.url);
    ws.operator.named_tokens = Some(Secret::new(format!("alice:{ALICE}")));
    ws.operator.canary_status_url = Some(gateway.url("/registrations/{request_id}"));
    ws.operator.readyz_urls = vec![
        ("gateway".into(), gateway.internal_url("/readyz")),
        ("registration-service".into(), format!("http://127.0.0.1:{}/readyz", service.http_port)),
    ];
    let worker = RunningWorker::start(ws).await;
    let base = worker.url("");
    let client = reqwest::Client::new();

    let browser = Browser::start().await.expect("headless chromium");
    browser.goto(&format!("{base}/console")).await.unwrap();
    assert!(browser.current_url().await.unwrap().ends_with("/console/login"), "the console asks for a login first");
    browser.find("#token").await.unwrap().send_keys(ALICE).await.unwrap();
    browser.find("#login").await.unwrap().click().await.unwrap();
    browser.wait_for_text("#actor", "alice", Duration::from_secs(30)).await.expect("logged in as alice");

    // A database cut while a sign-up is in flight: the overview shows the registration-service
    // paused, with the reason; after the cut the sign-up is stored.
    proxy.cut();
    let during_cut = sign_up(&client, &gateway, 9, "Outage User").await;
    let (b, overview_url) = (&browser, format!("{base}/console"));
    let paused = wait::within(Duration::from_secs(60), || async {
        b.goto(&overview_url).await.unwrap();
        let services = b.find("#services").await.unwrap().text().await.unwrap();
        services.contains("paused: database down")
    })
    .await;
    assert!(paused, "the overview shows the registration-service paused on the database cut");
    browser.save_screenshot("overview-database-cut").await;
    proxy.restore();
    wait::until(Duration::from_secs(60), "the sign-up made during the cut is stored", || {
        let client = client.clone();
        let gateway = &gateway;
        async move { status_of(&client, gateway, during_cut).await == "completed" }
    })
    .await;

    // The fault; five sign-ups, all parked. The one named like markup signs up after the
    // others parked, so it is parked last and never the canary (the first by id).
    sqlx::query(FAULT).execute(&db.pool).await.expect("place the fault");
    let mut ids = Vec::new();
    for n in 0..4 {
        ids.push(sign_up(&client, &gateway, n, &format!("Console User {n}")).await);
    }
    wait_parked(&client, &gateway, &ids).await;
    let script = sign_up(&client, &gateway, 4, "<script>window.injected=1</script>").await;
    wait_parked(&client, &gateway, &[script]).await;
    ids.push(script);
    let all: Vec<Uuid> = ids.clone();

    browser.goto(&format!("{base}/console")).await.unwrap();
    let services = browser.find("#services").await.unwrap().text().await.unwrap();
    assert!(services.contains("gateway") && services.contains("registration-service"), "{services}");
    assert!(!services.contains("paused"), "the outage is over: {services}");
    let counts = browser.find("#counts").await.unwrap().text().await.unwrap();
    assert!(counts.contains('5'), "five parked: {counts}");

    browser.goto(&format!("{base}/console/groups")).await.unwrap();
    let group = browser.find("fieldset.group").await.unwrap().text().await.unwrap();
    assert!(group.contains("5 ×") && group.contains("bad deploy: users insert refused"), "{group}");
    assert!(group.contains("registration-service/"), "the build that failed them: {group}");
    browser.save_screenshot("groups").await;

    // The fault is still there: the canary of one fails again, and the other four stay parked.
    let stopped = canary_redrive_the_group(&browser, &base).await;
    let why = browser.find("#stopped").await.expect("the canary stopped").text().await.unwrap();
    assert!(why.contains("canary failed again"), "{why}");
    assert_eq!(stopped.matches(">left_parked<").count(), 4, "the canary alone was redriven");
    browser.save_screenshot("canary-stopped").await;
    let still_parked = db.count("SELECT COUNT(*) FROM parked_messages WHERE state = 'parked'").await;
    assert_eq!(still_parked, 4);

    // The sign-up named like markup: shown as text (no script ran), its hash masked; discarded
    // with a reason, and the audit row says who and why.
    let script_row: u64 =
        sqlx::query_scalar("SELECT id FROM parked_messages WHERE request_id = ? AND state = 'parked'")
            .bind(script.as_bytes().to_vec())
            .fetch_optional(&db.pool)
            .await
            .unwrap()
            .expect("the <script> sign-up was not the canary (it signed up last)");
    browser.goto(&format!("{base}/console/messages/{script_row}")).await.unwrap();
    let payload = browser.find("#payload").await.unwrap().text().await.unwrap();
    assert!(payload.contains("<script>window.injected=1</script>"), "the name as text: {payload}");
    assert!(!payload.contains("argon2"), "the password hash is masked: {payload}");
    assert!(!browser.script_global_set("injected").await.unwrap(), "no injected script ran");
    browser.scroll_to("#headers").await.unwrap();
    browser.save_screenshot("message").await;
    browser.find("#discard-reason").await.unwrap().send_keys("test sign-up with markup").await.unwrap();
    browser.find("#discard-button").await.unwrap().click().await.unwrap();
    browser.wait_for_text("#state", "discarded", Duration::from_secs(30)).await.expect("the message is discarded");
    browser.goto(&format!("{base}/console/audit")).await.unwrap();
    let audit = browser.find("#audit").await.unwrap().text().await.unwrap();
    assert!(audit.contains("alice") && audit.contains("test sign-up with markup"), "{audit}");
    let (action, actor, reason): (String, String, Option<String>) =
        sqlx::query_as("SELECT action, actor, reason FROM parked_message_audit WHERE parked_message_id = ?")
            .bind(script_row)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        (action.as_str(), actor.as_str(), reason.as_deref()),
        ("discard", "alice", Some("test sign-up with markup"))
    );

    // The fix. The canary's own message finishes its retries first (completed now, or parked again).
    sqlx::query("DROP TRIGGER console_test_fault").execute(&db.pool).await.unwrap();
    let canary_request: Vec<u8> = sqlx::query_scalar("SELECT request_id FROM parked_messages WHERE state = 'redriven'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let canary_request = Uuid::from_slice(&canary_request).unwrap();
    wait::until(Duration::from_secs(120), "the canary message settled", || {
        let (client, gateway, pool) = (client.clone(), &gateway, db.pool.clone());
        async move {
            let parked: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM parked_messages WHERE request_id = ? AND state = 'parked'")
                    .bind(canary_request.as_bytes().to_vec())
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            parked > 0 || status_of(&client, gateway, canary_request).await == "completed"
        }
    })
    .await;
    let done = canary_redrive_the_group(&browser, &base).await;
    assert!(browser.find("#completed").await.is_ok(), "the redrive ran to the end: {done}");
    assert!(!done.contains(">left_parked<"));
    browser.save_screenshot("redrive-completed").await;
    for id in all.iter().filter(|id| **id != script) {
        let (client, gateway) = (client.clone(), &gateway);
        wait::until(Duration::from_secs(60), "every redriven sign-up completed", || {
            let client = client.clone();
            async move { status_of(&client, gateway, *id).await == "completed" }
        })
        .await;
    }
    assert_eq!(
        db.count("SELECT COUNT(*) FROM users").await,
        5,
        "the cut's sign-up and the four redriven stored, the discarded one not"
    );
    assert_eq!(status_of(&client, &gateway, script).await, "parked", "the discarded sign-up was not redriven");
    assert_eq!(db.count("SELECT COUNT(*) FROM parked_messages WHERE state = 'parked'").await, 0);

    browser.close().await;
    worker.stop().await;
    service.stop().await;
    gateway.stop(Duration::from_secs(30)).await;
}

/// Judges by id: the ids in `failing` failed again, every other one succeeded. The redrives,
/// the parking lot and the broker are real; only the verdict is the test's, so the threshold
/// logic is exercised exactly.
struct VerdictById {
    failing: Vec<u64>,
}

impl OutcomeJudge for VerdictById {
    fn outcome<'a>(&'a self, message: &'a ParkedMessage, _: chrono::DateTime<Utc>) -> BoxFuture<'a, Outcome> {
        let verdict = if self.failing.contains(&message.id) {
            Outcome::Failed("still broken".into())
        } else {
            Outcome::Succeeded
        };
        Box::pin(async move { verdict })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_good_canary_the_redrive_stops_once_failures_pass_the_threshold() {
    let env = test_env().await;
    let db = env.fresh_database().await;
    let scope = Scope::new(env);
    let origin = scope.topic("orders");
    env.create_topics(&[&origin], 1).await;
    let lot = ParkingLot::new(db.pool.clone());
    let mut ids = Vec::new();
    for n in 0..8 {
        ids.push(lot.park(&parked(&origin, n, "boom", "w/1", "{}")).await.unwrap().id);
    }
    let producer = reliable_messaging::producer::DurableProducer::new(
        &reliable_messaging::KafkaSettings::new(env.kafka_bootstrap.clone(), "canary-test"),
        Duration::from_secs(15),
    )
    .unwrap();
    let redriver = Redriver::new(lot.clone(), producer, MetadataFormat::Headers);
    let plan = CanaryPlan { canary: 2, max_failures: 1, wait: Duration::from_secs(5), poll: Duration::from_millis(50) };
    let rate: Rate = "1000/s".parse().unwrap();

    // Canary (ids 0, 1) succeeds; the next step (2, 3) has two failures, more than 1 allowed.
    let judge = VerdictById { failing: vec![ids[2], ids[3]] };
    let report = redriver.redrive_canary(&ids, "carol", None, rate, plan, &judge).await.unwrap();
    assert_eq!(report.canary_ids, ids[..2]);
    assert!(
        matches!(&report.stopped, Some(CanaryStop::TooManyFailures { failed, threshold: 1 }) if failed == &ids[2..4]),
        "{:?}",
        report.stopped
    );
    assert_eq!(report.not_attempted, ids[4..], "the rest stays parked");
    for id in &ids[4..] {
        assert_eq!(lot.get(*id).await.unwrap().unwrap().state, ParkedState::Parked);
    }
    assert_eq!(env.end_offsets(&origin).values().sum::<i64>(), 4, "four published, no more");
    let trail = lot.audit_trail(ids[0]).await.unwrap();
    assert_eq!(trail.iter().map(|a| a.action.as_str()).collect::<Vec<_>>(), ["redrive", "canary-stop"]);
    assert!(trail[1].reason.as_deref().unwrap().contains("more than the threshold of 1"), "{trail:?}");

    // Negative control: the same plan with nothing failing runs to the end.
    let mut rest = Vec::new();
    for n in 10..14 {
        rest.push(lot.park(&parked(&origin, n, "boom", "w/1", "{}")).await.unwrap().id);
    }
    let clean =
        redriver.redrive_canary(&rest, "carol", None, rate, plan, &VerdictById { failing: vec![] }).await.unwrap();
    assert_eq!(clean.stopped, None);
    assert!(clean.not_attempted.is_empty());
    assert!(clean.outcomes.iter().all(|(_, o)| *o == Outcome::Succeeded));
}

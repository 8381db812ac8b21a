//! A rolling deploy of schema version 2 (withdrawals) loses nothing and parks nothing, in both
//! orders, with the real binaries. "Old" is the registration-service started with the hidden,
//! test-only `--max-schema-version 1`: it reads what a build of version 1 reads.
//!
//! (a) gateway first: the new gateway writes withdrawals while an old consumer runs. The old one
//!     stops before the first withdrawal on its partition, says so on `/readyz`, keeps its
//!     group (sign-ups on the other partitions are stored meanwhile), and nothing is
//!     dead-lettered or parked. A new consumer then takes over and applies everything in order.
//! (b) consumers first: a new consumer, then the new events: all applied at once.
//! The negative control runs (a) with `--newer-events park` (what builds before version 2 did
//! with a version they did not know) and must see the withdrawals parked.

use std::collections::HashMap;
use std::time::Duration;

use integration_tests::harness::dlq_worker::{self, RunningWorker, Scope};
use integration_tests::harness::gateway::{test_settings, GatewayServer};
use integration_tests::harness::registration::service_process_env;
use integration_tests::harness::{free_port, ready_within, ServiceProcess};
use integration_tests::ledger::{self, Expected, PasswordEvidence};
use integration_tests::{test_env, wait, TestEnv};
use reliable_messaging::dead_letter::dead_letter_topic;
use reliable_messaging::message::REQUEST_ID_HEADER;
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

const PARTITIONS: i32 = 3;

struct Rig {
    env: &'static TestEnv,
    db: integration_tests::database::TestDatabase,
    topic: String,
    group: String,
    gateway: GatewayServer,
    worker: RunningWorker,
    client: reqwest::Client,
}

impl Rig {
    async fn start() -> Rig {
        let env = test_env().await;
        let db = env.fresh_database().await;
        let scope = Scope::new(env);
        let topic = scope.topic("registrations");
        env.create_topics(&[&topic, &dead_letter_topic(&topic)], PARTITIONS).await;
        let worker = RunningWorker::start(dlq_worker::settings(env, &scope, &db.url)).await;
        let gateway = GatewayServer::start(test_settings(env, &topic, &db.url)).await;
        let group = format!("{topic}-registration-service");
        Rig { env, db, topic, group, gateway, worker, client: reqwest::Client::new() }
    }

    /// A registration-service process; `args` are its hidden test-only flags. Its `/readyz`.
    fn consumer(&self, args: &[&str]) -> (ServiceProcess, String) {
        let port = free_port();
        let mut vars = service_process_env(self.env, &self.topic, &self.group, &self.db.url);
        vars.retain(|(k, _)| *k != "REGISTRATION_SERVICE_ADDR");
        vars.push(("REGISTRATION_SERVICE_ADDR", format!("127.0.0.1:{port}")));
        let process = ServiceProcess::spawn_with_args("registration-service", &vars, args);
        (process, format!("http://127.0.0.1:{port}/readyz"))
    }

    async fn sign_up(&self, count: usize) -> Vec<Expected> {
        let mut accepted = Vec::new();
        for _ in 0..count {
            let email = format!("r-{}@example.com", Uuid::new_v4().simple());
            let password = "a long passphrase".to_owned();
            let response = self
                .client
                .post(self.gateway.url("/registrations"))
                .json(&json!({"email": email, "name": "Roll Out", "password": password}))
                .send()
                .await
                .expect("POST");
            assert_eq!(response.status(), StatusCode::ACCEPTED);
            let body: Value = response.json().await.unwrap();
            let request_id = Uuid::parse_str(body["request_id"].as_str().unwrap()).unwrap();
            accepted.push(Expected {
                request_id,
                email,
                name: "Roll Out".into(),
                password: PasswordEvidence::Plaintext(password),
            });
        }
        accepted
    }

    async fn withdraw(&self, ids: &[Uuid]) {
        for id in ids {
            let response = self.client.delete(self.gateway.url(&format!("/registrations/{id}"))).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::ACCEPTED, "DELETE {id}");
        }
    }

    /// The partition each request's record landed on.
    async fn partitions(&self, expected: usize) -> HashMap<Uuid, i32> {
        let records = self.env.read_topic(&self.topic, expected, Duration::from_secs(30)).await;
        records
            .iter()
            .filter_map(|d| {
                let id = d.headers.iter().find(|h| h.key == REQUEST_ID_HEADER)?.value.as_ref()?;
                Some((Uuid::parse_str(std::str::from_utf8(id).ok()?).ok()?, d.partition))
            })
            .collect()
    }

    async fn stored(&self, id: &Uuid) -> bool {
        self.db.count(&format!("SELECT COUNT(*) FROM users WHERE request_id = X'{}'", id.simple())).await == 1
    }

    async fn parked(&self) -> i64 {
        self.db.count("SELECT COUNT(*) FROM parked_messages").await
    }

    async fn stop(self) {
        self.gateway.stop(Duration::from_secs(10)).await;
        self.worker.stop().await;
    }
}

async fn readyz(url: &str) -> (StatusCode, String) {
    match reqwest::get(url).await {
        Ok(r) => (r.status(), r.text().await.unwrap_or_default()),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

/// Gateway first. `park` runs the negative control. Returns the rig for the final checks.
async fn gateway_first(park: bool) -> (Rig, Vec<Expected>, Vec<Uuid>, ServiceProcess) {
    let rig = Rig::start().await;
    let mut args = vec!["--max-schema-version", "1"];
    if park {
        args.extend(["--newer-events", "park"]);
    }
    let (old, old_ready) = rig.consumer(&args);
    assert!(ready_within(&old_ready, Duration::from_secs(60)).await, "the old consumer started: {}", old.log());
    let first = rig.sign_up(12).await;
    let on = rig.partitions(first.len()).await;
    // Withdrawals of the sign-ups on partition 0 only: the other partitions must keep flowing.
    let withdrawn: Vec<Uuid> = first.iter().map(|e| e.request_id).filter(|id| on[id] == 0).collect();
    assert!(!withdrawn.is_empty(), "12 sign-ups over {PARTITIONS} partitions put some on partition 0");
    let (rig_ref, first_ref) = (&rig, &first);
    wait::until(Duration::from_secs(60), "the old consumer stores the first sign-ups", || async move {
        let mut all = true;
        for e in first_ref {
            all &= rig_ref.stored(&e.request_id).await;
        }
        all
    })
    .await;
    rig.withdraw(&withdrawn).await;
    let later = rig.sign_up(12).await;
    let accepted: Vec<Expected> = first.iter().chain(&later).cloned().collect();
    let on = rig.partitions(first.len() + withdrawn.len() + later.len()).await;
    if !park {
        // Not ready, with the reason, while the sign-ups of the other partitions are stored.
        let waiting = wait::within(Duration::from_secs(30), || async {
            let (status, body) = readyz(&old_ready).await;
            status == StatusCode::SERVICE_UNAVAILABLE && body.contains("needs a newer registration-service")
        })
        .await;
        assert!(waiting, "readyz never said what is needed: {:?}", readyz(&old_ready).await);
        let flowing: Vec<&Expected> = later.iter().filter(|e| on[&e.request_id] != 0).collect();
        assert!(!flowing.is_empty());
        wait::until(Duration::from_secs(30), "sign-ups of the other partitions are stored meanwhile", || async {
            let mut all = true;
            for e in &flowing {
                all &= rig.stored(&e.request_id).await;
            }
            all
        })
        .await;
        for id in &withdrawn {
            assert!(rig.stored(id).await, "the old consumer cannot have applied a withdrawal");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(rig.parked().await, 0, "nothing is parked while the old consumer waits");
        assert!(rig.env.end_offsets(&dead_letter_topic(&rig.topic)).values().all(|&n| n == 0), "nothing dead-lettered");
    }
    (rig, accepted, withdrawn, old)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_first_the_old_consumer_waits_and_a_new_one_applies_everything_in_order() {
    let (rig, accepted, withdrawn, mut old) = gateway_first(false).await;
    // The upgrade: a new instance joins, the old one leaves (its partitions move to the new one).
    let (mut new, new_ready) = rig.consumer(&[]);
    assert!(ready_within(&new_ready, Duration::from_secs(60)).await, "the new consumer: {}", new.log());
    assert!(old.terminate(Duration::from_secs(30)).await, "the old consumer stops cleanly: {}", old.log());
    let rig_ref = &rig;
    let withdrawn_ref = &withdrawn;
    wait::until(Duration::from_secs(60), "the new consumer applies the withdrawals", || async move {
        let mut none = true;
        for id in withdrawn_ref {
            none &= !rig_ref.stored(id).await;
        }
        none
    })
    .await;
    wait::until(Duration::from_secs(60), "the new consumer catches up", || async {
        rig.env.group_caught_up(&rig.group, &rig.topic)
    })
    .await;
    assert!(ready_within(&new_ready, Duration::from_secs(10)).await, "the new consumer is ready");
    assert!(new.terminate(Duration::from_secs(30)).await, "{}", new.log());
    assert_eq!(rig.parked().await, 0, "nothing parked across the rollout");
    let kept: Vec<Expected> = accepted.iter().filter(|e| !withdrawn.contains(&e.request_id)).cloned().collect();
    let report = ledger::check(&rig.db, &kept).await;
    report.assert_clean();
    assert_eq!(report.stored, kept.len(), "{report}");
    let tombstones = rig.db.count("SELECT COUNT(*) FROM registration_tombstones WHERE kind = 'withdrawn'").await;
    assert_eq!(tombstones, withdrawn.len() as i64);
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_first_then_the_gateway_every_event_is_applied_at_once() {
    let rig = Rig::start().await;
    let (mut new, new_ready) = rig.consumer(&[]);
    assert!(ready_within(&new_ready, Duration::from_secs(60)).await, "{}", new.log());
    let accepted = rig.sign_up(10).await;
    let rig_ref = &rig;
    let accepted_ref = &accepted;
    wait::until(Duration::from_secs(60), "the sign-ups are stored", || async move {
        let mut all = true;
        for e in accepted_ref {
            all &= rig_ref.stored(&e.request_id).await;
        }
        all
    })
    .await;
    let withdrawn: Vec<Uuid> = accepted.iter().take(4).map(|e| e.request_id).collect();
    rig.withdraw(&withdrawn).await;
    let later = rig.sign_up(5).await;
    wait::until(Duration::from_secs(60), "everything is consumed", || async {
        rig.env.group_caught_up(&rig.group, &rig.topic)
    })
    .await;
    assert!(ready_within(&new_ready, Duration::from_secs(5)).await, "ready throughout");
    assert!(new.terminate(Duration::from_secs(30)).await, "{}", new.log());
    for id in &withdrawn {
        assert!(!rig.stored(id).await, "{id} withdrawn");
    }
    assert_eq!(rig.parked().await, 0);
    let kept: Vec<Expected> =
        accepted.iter().chain(&later).filter(|e| !withdrawn.contains(&e.request_id)).cloned().collect();
    let report = ledger::check(&rig.db, &kept).await;
    report.assert_clean();
    assert_eq!(report.stored, kept.len(), "{report}");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negative_control_an_old_consumer_that_parks_newer_events_is_caught_parking_withdrawals() {
    let (rig, _, withdrawn, mut old) = gateway_first(true).await;
    let rig_ref = &rig;
    let expected = withdrawn.len() as i64;
    let parked = wait::within(Duration::from_secs(60), || async move { rig_ref.parked().await == expected }).await;
    assert!(parked, "the control must see every withdrawal parked: {} of {}", rig.parked().await, withdrawn.len());
    let reasons: Vec<String> =
        sqlx::query_scalar("SELECT error_message FROM parked_messages").fetch_all(&rig.db.pool).await.unwrap();
    assert!(reasons.iter().all(|r| r.contains("schema version 2")), "{reasons:?}");
    for id in &withdrawn {
        assert!(rig.stored(id).await, "a parked withdrawal is a lost one: {id} is still stored");
    }
    assert!(old.terminate(Duration::from_secs(30)).await, "{}", old.log());
    rig.stop().await;
}

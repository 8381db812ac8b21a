//! Idempotency-Key reuse across a gateway restart and across two gateway instances: a key
//! reused with another body is refused with 409, a retry of the same body keeps its request
//! id, and the ledger (which compares content) finds every accepted sign-up stored as sent.
//!
//! Its negative control replays what the gateway did before request ids were bound to the
//! body and claims were shared: after a restart, the other body was answered 202 under the
//! first body's request id, and the registration-service counted the first row as its
//! success. The control produces exactly those records and fails unless the ledger catches
//! every one of them as "mismatched".

use std::time::Duration;

use integration_tests::cluster::{Cluster, ClusterConfig};
use integration_tests::ledger::{Expected, PasswordEvidence};
use integration_tests::registrations::produce_events;
use registration_events::RegistrationRequested;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::report::ScenarioResult;
use crate::Options;

const PASSWORD: &str = "correct horse battery";

/// The sign-up a key is first used for, and the other one it is then reused with.
struct KeyedPair {
    key: String,
    first: Value,
    other: Value,
}

fn pairs(n: usize) -> Vec<KeyedPair> {
    (0..n)
        .map(|_| {
            let id = Uuid::new_v4().simple().to_string();
            KeyedPair {
                key: format!("key-{id}"),
                first: json!({"email": format!("first-{id}@example.com"), "name": "First Body", "password": PASSWORD}),
                other: json!({"email": format!("other-{id}@example.com"), "name": "Other Body", "password": PASSWORD}),
            }
        })
        .collect()
}

fn expected(request_id: Uuid, body: &Value) -> Expected {
    Expected {
        request_id,
        email: body["email"].as_str().unwrap_or_default().to_owned(),
        name: body["name"].as_str().unwrap_or_default().to_owned(),
        password: PasswordEvidence::Plaintext(body["password"].as_str().unwrap_or_default().to_owned()),
    }
}

/// POSTs until the gateway answers something other than 503 (at most ~30 s); returns the
/// status and body.
async fn post(client: &reqwest::Client, base: &str, key: &str, body: &Value) -> (u16, Value) {
    for _ in 0..60 {
        let response =
            client.post(format!("{base}/registrations")).header("Idempotency-Key", key).json(body).send().await;
        match response {
            Ok(r) if r.status().as_u16() != 503 => {
                let status = r.status().as_u16();
                return (status, r.json().await.unwrap_or(Value::Null));
            }
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
    (503, Value::Null)
}

fn request_id(body: &Value) -> Option<Uuid> {
    body["request_id"].as_str().and_then(|s| Uuid::parse_str(s).ok())
}

pub async fn key_reuse(o: Options) -> ScenarioResult {
    let mut cluster = Cluster::start(ClusterConfig::default()).await;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().expect("client");
    let pairs = pairs(if o.short { 30 } else { 200 });
    let mut accepted = Vec::new();
    let mut violations = Vec::new();

    let mut first_ids = Vec::new();
    for pair in &pairs {
        match post(&client, &cluster.gateway_url, &pair.key, &pair.first).await {
            (202, body) if request_id(&body).is_some() => {
                let id = request_id(&body).expect("checked");
                accepted.push(expected(id, &pair.first));
                first_ids.push(Some(id));
            }
            (status, body) => {
                violations.push(format!("first use of {}: {status} {body}", pair.key));
                first_ids.push(None);
            }
        }
    }

    // Fault 1: the gateway restarts and forgets everything it held in memory.
    let clean_restart = cluster.restart_gateway().await;
    // Fault 2: a second instance serves half of the reuses.
    let second = cluster.add_gateway_instance().await;
    for (i, (pair, first_id)) in pairs.iter().zip(&first_ids).enumerate() {
        let base = if i % 2 == 0 { cluster.gateway_url.clone() } else { second.clone() };
        let (status, body) = post(&client, &base, &pair.key, &pair.other).await;
        if status != 409 {
            violations.push(format!("{} reused with another body at {base}: {status} {body}", pair.key));
            if let (202, Some(id)) = (status, request_id(&body)) {
                accepted.push(expected(id, &pair.other));
            }
        }
        // The same body again, at the other instance: the same request id.
        let other_base = if i % 2 == 0 { second.clone() } else { cluster.gateway_url.clone() };
        match post(&client, &other_base, &pair.key, &pair.first).await {
            (202, body) if request_id(&body) == *first_id => {
                accepted.push(expected(request_id(&body).expect("checked"), &pair.first))
            }
            (status, body) => violations
                .push(format!("retry of {} at {other_base}: {status} {body}, first id {first_id:?}", pair.key)),
        }
    }

    let ledger = cluster.settle(&accepted, Duration::from_secs(90)).await;
    let mut result = ScenarioResult::new("idempotency-key-reuse", ledger, 2, 0);
    result.require_clean_ledger();
    result.require(clean_restart, "the gateway did not stop cleanly for its restart");
    result.require(
        violations.is_empty(),
        format!("{} wrong answers, e.g. {:?}", violations.len(), violations.iter().take(3).collect::<Vec<_>>()),
    );
    let unclean = cluster.stop().await;
    result.require(unclean.is_empty(), format!("did not exit cleanly on SIGTERM: {unclean:?}"));
    result
}

/// The negative control: the records the old gateway produced for a reused key (the other
/// body, under the first body's request id, each answered 202) must be caught by the ledger.
pub async fn key_reuse_negative_control(o: Options) -> ScenarioResult {
    let cluster = Cluster::start(ClusterConfig::default()).await;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().expect("client");
    let pairs = pairs(if o.short { 10 } else { 50 });
    let mut accepted = Vec::new();
    let mut replayed = Vec::new();
    for pair in &pairs {
        let (status, body) = post(&client, &cluster.gateway_url, &pair.key, &pair.first).await;
        let Some(id) = request_id(&body).filter(|_| status == 202) else {
            continue;
        };
        accepted.push(expected(id, &pair.first));
        // What the old gateway did after a restart: 202 for the other body, same id.
        accepted.push(expected(id, &pair.other));
        replayed.push(RegistrationRequested {
            schema_version: RegistrationRequested::VERSION,
            request_id: id,
            email: pair.other["email"].as_str().unwrap_or_default().to_owned(),
            name: "Other Body".to_owned(),
            password_hash: "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".to_owned(),
            requested_at: chrono::Utc::now(),
        });
    }
    produce_events(cluster.env, &cluster.topic, &replayed).await;
    let ledger = cluster.settle(&accepted, Duration::from_secs(60)).await;
    let caught = ledger.mismatched.len();
    let mut result = ScenarioResult::new("negative-control-idempotency-key-reuse", ledger, replayed.len() as u32, 0);
    result.require(!replayed.is_empty(), "nothing was accepted, so nothing was tested");
    result.require(
        caught == replayed.len(),
        format!("the ledger caught {caught} of {} sign-ups hidden behind another body's success", replayed.len()),
    );
    if caught == replayed.len() && caught > 0 {
        result.note = format!("hidden sign-ups detected as they must be ({caught} mismatched)");
    }
    let unclean = cluster.stop().await;
    result.require(unclean.is_empty(), format!("did not exit cleanly on SIGTERM: {unclean:?}"));
    result
}

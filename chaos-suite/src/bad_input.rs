//! Bad input never costs a request and never takes a service down.
//!
//! * HTTP: a corpus of malformed requests, plus requests generated from the gateway's own
//!   OpenAPI document (each property valid, at a violated bound, of a wrong type, or missing).
//!   Every answer must be a 202 or a 4xx problem document, the verdict must match what the
//!   schema says about the request, and no connection may be dropped.
//! * Kafka: poison records written straight onto the topic and onto its DLQ. Each must be
//!   parked with a readable reason while the good records behind them are stored.

use std::time::Duration;

use integration_tests::ledger::{expected_from_events, Expected, PasswordEvidence};
use integration_tests::registrations::{produce_events, sample_event};
use integration_tests::wait;
use rand::seq::SliceRandom;
use rand::Rng;
use reliable_messaging::dead_letter::dead_letter_topic;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::report::ScenarioResult;
use crate::Options;
use integration_tests::cluster::{Cluster, ClusterConfig};

/// One request and what the gateway must answer.
struct Probe {
    method: reqwest::Method,
    path: String,
    content_type: Option<&'static str>,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    /// `Some(true)`: must be 202; `Some(false)`: must be a 4xx problem; `None`: either.
    valid: Option<bool>,
}

impl Probe {
    fn post(content_type: Option<&'static str>, body: impl Into<Vec<u8>>, valid: Option<bool>) -> Probe {
        Probe {
            method: reqwest::Method::POST,
            path: "/registrations".into(),
            content_type,
            headers: vec![],
            body: body.into(),
            valid,
        }
    }
}

fn good_body() -> Value {
    json!({"email": format!("fuzz-{}@example.com", Uuid::new_v4().simple()), "name": "Fuzzy", "password": "long enough password"})
}

fn corpus() -> Vec<Probe> {
    let json_ct = Some("application/json");
    let mut probes = vec![
        Probe::post(json_ct, "", Some(false)),
        Probe::post(json_ct, "{", Some(false)),
        Probe::post(json_ct, "null", Some(false)),
        Probe::post(json_ct, "[]", Some(false)),
        Probe::post(json_ct, "\"just a string\"", Some(false)),
        Probe::post(json_ct, "{\"email\": 1, \"name\": [], \"password\": {}}", Some(false)),
        Probe::post(json_ct, vec![0xff, 0xfe, b'{', b'}'], Some(false)),
        Probe::post(json_ct, "[".repeat(10_000), Some(false)),
        Probe::post(json_ct, format!("{{\"email\": \"{}\"}}", "a".repeat(20_000)), Some(false)),
        Probe::post(Some("text/plain"), good_body().to_string(), Some(false)),
        Probe::post(Some("application/xml"), "<registration/>", Some(false)),
        Probe::post(None, good_body().to_string(), Some(false)),
        Probe::post(Some("application/json; charset=utf-8"), good_body().to_string(), Some(true)),
        Probe::post(json_ct, json!({"email": "not-an-email", "name": "", "password": "short"}).to_string(), Some(false)),
        Probe::post(json_ct, json!({"email": "x@example.com", "name": "Bell\u{7}", "password": "long enough password"}).to_string(), Some(false)),
        Probe::post(json_ct, json!({"email": format!("{}@example.com", "a".repeat(250)), "name": "Long", "password": "long enough password"}).to_string(), Some(false)),
    ];
    for key in ["", "ключ", &"k".repeat(300), "tab\tkey"] {
        let mut p = Probe::post(json_ct, good_body().to_string(), Some(false));
        p.headers.push(("Idempotency-Key", key.to_owned()));
        probes.push(p);
    }
    for (method, path) in [
        (reqwest::Method::GET, "/registrations/not-a-uuid".to_owned()),
        (reqwest::Method::GET, format!("/registrations/{}", Uuid::new_v4())),
        (reqwest::Method::PUT, "/registrations".to_owned()),
        (reqwest::Method::DELETE, "/registrations".to_owned()),
        (reqwest::Method::POST, "/registrations/extra".to_owned()),
        (reqwest::Method::GET, "/does-not-exist".to_owned()),
    ] {
        probes.push(Probe { method, path, content_type: None, headers: vec![], body: vec![], valid: Some(false) });
    }
    probes
}

/// Whether `s` satisfies the string constraints of `schema` (lengths and `pattern`, which the
/// served document uses for rules a length cannot say, such as the display name's).
fn conforms(schema: &Value, s: &str) -> bool {
    let chars = s.chars().count() as u64;
    let min_ok = schema["minLength"].as_u64().is_none_or(|min| chars >= min);
    let max_ok = schema["maxLength"].as_u64().is_none_or(|max| chars <= max);
    let pattern_ok =
        schema["pattern"].as_str().is_none_or(|p| regex::Regex::new(p).map(|re| re.is_match(s)).unwrap_or(true));
    min_ok && max_ok && pattern_ok
}

/// A value for `property` (a JSON schema) that is valid or not, and which. Strings are judged
/// by the schema itself ([`conforms`]), so a bound the schema states as a pattern counts too.
fn fuzz_value(name: &str, schema: &Value, rng: &mut impl Rng) -> (Option<Value>, bool) {
    let min = schema["minLength"].as_u64().unwrap_or(0) as usize;
    // Past any limit the schema might state as a pattern (the display name's is 100).
    let max = schema["maxLength"].as_u64().unwrap_or(300) as usize;
    let valid_string = || match name {
        "email" => format!("fuzz-{}@example.com", Uuid::new_v4().simple()),
        _ => "v".repeat(min.max(1).max(8).min(max)),
    };
    let judged = |s: String| {
        let ok = conforms(schema, &s);
        (Some(Value::String(s)), ok)
    };
    match rng.gen_range(0..8) {
        0..=2 => (Some(Value::String(valid_string())), true),
        3 => (None, false),
        4 => (
            Some([json!(42), json!(true), Value::Null, json!([]), json!({})].choose(rng).cloned().expect("non-empty")),
            false,
        ),
        5 => judged("x".repeat(max + 1)),
        6 if min > 0 => judged("x".repeat(min - 1)),
        _ if name == "email" => (
            Some(Value::String(
                ["plainaddress", "@no-local", "two@@example.com", ""].choose(rng).expect("non-empty").to_string(),
            )),
            false,
        ),
        _ => (Some(Value::String(valid_string())), true),
    }
}

/// Requests generated from the `RegistrationRequest` schema of the served OpenAPI document.
async fn schema_probes(gateway_url: &str, count: usize) -> Result<Vec<Probe>, String> {
    let doc: Value = reqwest::get(format!("{gateway_url}/openapi.json"))
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let schema = &doc["components"]["schemas"]["RegistrationRequest"];
    let properties = schema["properties"].as_object().ok_or("RegistrationRequest has no properties")?.clone();
    let required: Vec<String> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    let mut rng = rand::thread_rng();
    let mut probes = Vec::with_capacity(count);
    for _ in 0..count {
        let mut body = serde_json::Map::new();
        let mut valid = true;
        for (name, property) in &properties {
            let (value, ok) = fuzz_value(name, property, &mut rng);
            let ok = ok || (value.is_none() && !required.contains(name));
            valid &= ok;
            if let Some(v) = value {
                body.insert(name.clone(), v);
            }
        }
        if rng.gen_bool(0.1) {
            body.insert("unexpected_field".into(), json!("ignored or refused"));
            // Unknown fields may be ignored or refused; the schema does not say.
            probes.push(Probe::post(
                Some("application/json"),
                Value::Object(body).to_string(),
                if valid { None } else { Some(false) },
            ));
            continue;
        }
        probes.push(Probe::post(Some("application/json"), Value::Object(body).to_string(), Some(valid)));
    }
    Ok(probes)
}

fn random_garbage(count: usize) -> Vec<Probe> {
    let mut rng = rand::thread_rng();
    (0..count)
        .map(|_| {
            let len = rng.gen_range(0..2_048);
            let bytes: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            Probe::post(Some("application/json"), bytes, Some(false))
        })
        .collect()
}

/// Checks one answer; returns the request id of a 202, or the violation.
async fn send(client: &reqwest::Client, base: &str, probe: &Probe) -> Result<Option<Expected>, String> {
    let mut request = client.request(probe.method.clone(), format!("{base}{}", probe.path)).body(probe.body.clone());
    if let Some(ct) = probe.content_type {
        request = request.header("content-type", ct);
    }
    for (k, v) in &probe.headers {
        request = request.header(*k, v.as_str());
    }
    let what = format!(
        "{} {} {:?}",
        probe.method,
        probe.path,
        String::from_utf8_lossy(&probe.body).chars().take(60).collect::<String>()
    );
    let response = request.send().await.map_err(|e| format!("{what}: connection failed: {e}"))?;
    let status = response.status();
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if status.is_server_error() {
        return Err(format!("{what}: {status}"));
    }
    if status.as_u16() == 202 {
        if probe.valid == Some(false) {
            return Err(format!("{what}: accepted an invalid request"));
        }
        let Some(request_id) = body["request_id"].as_str().and_then(|s| Uuid::parse_str(s).ok()) else {
            return Err(format!("{what}: 202 without a request_id"));
        };
        // What was accepted, for the ledger to hold the stored row to.
        let sent: Value = serde_json::from_slice(&probe.body).unwrap_or(Value::Null);
        let field = |name: &str| sent[name].as_str().unwrap_or_default().to_owned();
        return Ok(Some(Expected {
            request_id,
            email: field("email"),
            name: field("name"),
            password: PasswordEvidence::Plaintext(field("password")),
        }));
    }
    if status.is_client_error() {
        if probe.valid == Some(true) {
            return Err(format!("{what}: refused a valid request with {status}: {body}"));
        }
        if !content_type.starts_with("application/problem+json")
            || body["status"].as_u64() != Some(u64::from(status.as_u16()))
        {
            return Err(format!("{what}: {status} is not a problem document ({content_type})"));
        }
        return Ok(None);
    }
    if probe.method == reqwest::Method::GET && status.is_success() {
        return Ok(None);
    }
    Err(format!("{what}: unexpected {status}"))
}

pub async fn http(o: Options) -> ScenarioResult {
    let mut cluster = Cluster::start(ClusterConfig::default()).await;
    let fuzz = if o.short { 300 } else { 3_000 };
    let mut probes = corpus();
    match schema_probes(&cluster.gateway_url, fuzz).await {
        Ok(p) => probes.extend(p),
        Err(e) => return ScenarioResult::failed("bad-input-http", format!("no OpenAPI document to fuzz from: {e}")),
    }
    probes.extend(random_garbage(fuzz / 3));
    let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().expect("client");
    let mut accepted = Vec::new();
    let mut violations = Vec::new();
    for probe in &probes {
        match send(&client, &cluster.gateway_url, probe).await {
            Ok(Some(id)) => accepted.push(id),
            Ok(None) => {}
            Err(v) => violations.push(v),
        }
    }
    let ledger = cluster.settle(&accepted, Duration::from_secs(60)).await;
    let mut result = ScenarioResult::new("bad-input-http", ledger, probes.len() as u32, 0);
    result.require_clean_ledger();
    result.require(
        violations.is_empty(),
        format!("{} bad answers, e.g. {:?}", violations.len(), violations.iter().take(3).collect::<Vec<_>>()),
    );
    let alive = cluster.gateway_is_running();
    result.require(alive, "the gateway died");
    let finished = finish_cluster(result, cluster).await;
    finished
}

async fn finish_cluster(mut result: ScenarioResult, cluster: Cluster) -> ScenarioResult {
    let unclean = cluster.stop().await;
    result.require(unclean.is_empty(), format!("did not exit cleanly on SIGTERM: {unclean:?}"));
    result
}

pub async fn kafka(_o: Options) -> ScenarioResult {
    let cluster = Cluster::start(ClusterConfig { retry_backoff: ("constant", 300), ..ClusterConfig::default() }).await;
    let env = cluster.env;
    let topic = cluster.topic.clone();
    let dlq = dead_letter_topic(&topic);
    let good: Vec<_> = (0..60).map(|_| sample_event()).collect();
    let valid_json = |e: &registration_events::RegistrationRequested| e.to_json();
    let huge = json!({"schema_version": 1, "blob": "x".repeat(500_000)}).to_string();
    let mut wrong_fields = sample_event();
    wrong_fields.password_hash = "plaintext-password".into();
    let valid_but_bad_headers = sample_event();
    let nested = sample_event();

    produce_events(env, &topic, &good[..20]).await;
    // Poison on the topic itself.
    let key: &[u8] = b"poison";
    env.produce(&topic, Some(key), Some(b"\x00\x01 not json at all"), &[]).await;
    env.produce(&topic, Some(key), Some(br#"{"hello": "world"}"#), &[]).await;
    env.produce(
        &topic,
        Some(key),
        // Version 0 never existed: poison. (A version above the consumer's is not poison since
        // issue 22: the consumer waits for a newer build instead, see tests/tests/rollout.rs.)
        Some(br#"{"schema_version": 0, "request_id": "00000000-0000-0000-0000-000000000001"}"#),
        &[],
    )
    .await;
    env.produce(&topic, Some(key), Some(huge.as_bytes()), &[]).await;
    env.produce(&topic, Some(key), Some(&valid_json(&wrong_fields)), &[]).await;
    env.produce(&topic, Some(key), Some(&valid_json(&valid_but_bad_headers)), &[("x-retry-count", b"three")]).await;
    env.produce(&topic, Some(key), Some(&valid_json(&valid_but_bad_headers)), &[("x-retry-count", b"-1")]).await;
    produce_events(env, &topic, &good[20..40]).await;
    // Poison on the DLQ.
    env.produce(&dlq, Some(key), Some(&valid_json(&nested)), &[("x-retry-count", b"NaN")]).await;
    let wrapper_negative =
        format!(r#"{{"retryCount": -1, "message": {}}}"#, String::from_utf8_lossy(&valid_json(&nested)));
    env.produce(&dlq, Some(key), Some(wrapper_negative.as_bytes()), &[]).await;
    env.produce(&dlq, Some(key), Some(br#"{"retryCount": 1}"#), &[]).await;
    env.produce(
        &dlq,
        Some(key),
        Some(&valid_json(&nested)),
        &[("x-original-topic", format!("no-such-topic-{}", Uuid::new_v4().simple()).as_bytes())],
    )
    .await;
    // No metadata at all: origin from the DLQ's name, re-sent, fails again as poison, parked.
    env.produce(&dlq, Some(key), Some(b"<xml>not json</xml>"), &[]).await;
    produce_events(env, &topic, &good[40..]).await;
    const POISON: i64 = 12;

    let db = &cluster.db;
    let settled = wait::within(Duration::from_secs(90), || async move {
        db.count("SELECT COUNT(*) FROM parked_messages").await >= POISON
            && db.count("SELECT COUNT(*) FROM users").await >= 60
    })
    .await;
    let ledger = cluster.settle(&expected_from_events(&good), Duration::from_secs(10)).await;
    let mut result = ScenarioResult::new("bad-input-kafka", ledger, POISON as u32, 0);
    result.require(settled, "poison was not all parked, or good records stopped flowing");
    result.require_clean_ledger();
    let parked = db.count("SELECT COUNT(*) FROM parked_messages").await;
    result.require(parked == POISON, format!("{parked} parked, expected {POISON}"));
    let unreadable = db
        .count("SELECT COUNT(*) FROM parked_messages WHERE error_message IS NULL OR CHAR_LENGTH(error_message) < 10")
        .await;
    result.require(unreadable == 0, format!("{unreadable} parked without a readable reason"));
    let reasons: Vec<String> = sqlx::query_scalar(
        "SELECT CONCAT(park_reason, ': ', LEFT(error_message, 60)) FROM parked_messages ORDER BY id",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap_or_default();
    eprintln!("    parked reasons:\n      {}", reasons.join("\n      "));
    if result.note.is_empty() {
        result.note = format!("{parked} poison records parked with reasons");
    }
    finish_cluster(result, cluster).await
}

//! The gateway's HTTP contract for sign-ups, against a real Kafka broker and a real
//! MySQL/MariaDB: what is accepted and published, what is refused as a problem document, the
//! Idempotency-Key, a broker that is away, the time limit, and the API document against the
//! router. The status route is in `gateway_status`.
//!
//! Each test runs its own gateway in-process on a random port, with its own topic and its own
//! database. No registration-service runs here.

use std::collections::BTreeSet;
use std::time::Duration;

use gateway::configuration::HashingSettings;
use integration_tests::gateway_client::{
    accepted_id, closed_port, expect_problem, spawn_gateway, unique_email, valid_body, PASSWORD,
};
use integration_tests::test_env;
use registration_events::RegistrationRequested;
use reqwest::header::{CONTENT_TYPE, LOCATION, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

#[tokio::test]
async fn accepted_registration_is_on_the_topic_with_a_hash_and_never_the_password() {
    let env = test_env().await;
    // OWASP defaults here (19 MiB, t=2, p=1): the one test that pays for real hashing.
    let gateway = spawn_gateway(env, |s| s.hashing = HashingSettings::owasp()).await;
    let body = json!({"email": "  Ada.Lovelace@Example.COM ", "name": " Ada Lovelace ", "password": PASSWORD});

    let response = gateway.register(&body, None).await;

    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let location = response.headers().get(LOCATION).expect("Location").to_str().unwrap().to_owned();
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["status"], "pending");
    let request_id = Uuid::parse_str(answer["request_id"].as_str().unwrap()).unwrap();
    assert_eq!(location, format!("/registrations/{request_id}"));
    assert_eq!(request_id.get_version_num(), 8);

    // The 202 came after the broker's acknowledgement, so the record is in the log already.
    // (A 202 sent before the acknowledgement is caught by the broker-down test below.)
    assert_eq!(gateway.records_on_topic(env), 1, "202 before the record was stored");
    let records = env.read_topic(&gateway.topic, 1, Duration::from_secs(10)).await;
    assert_eq!(records.len(), 1, "exactly one record on the topic");
    let record = &records[0];
    assert_eq!(record.key.as_deref(), Some(b"ada.lovelace@example.com".as_slice()));
    assert_eq!(record.header("x-request-id"), Some(request_id.to_string().as_bytes()));
    let payload = record.payload.as_deref().expect("payload");
    assert!(!String::from_utf8_lossy(payload).contains(PASSWORD), "plaintext password on Kafka");
    let event = RegistrationRequested::parse(Some(payload)).expect("a valid RegistrationRequested");
    assert_eq!(event.request_id, request_id);
    assert_eq!(event.email, "ada.lovelace@example.com");
    assert_eq!(event.name, "Ada Lovelace");
    assert!(event.password_hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{}", event.password_hash);

    gateway.stop().await;
}

#[tokio::test]
async fn every_bad_registration_is_a_problem_document_and_publishes_nothing() {
    let env = test_env().await;
    let gateway = spawn_gateway(env, |_| {}).await;
    let post = || gateway.client.post(gateway.url("/registrations"));

    let malformed = post().header(CONTENT_TYPE, "application/json").body("{\"email\": ").send().await.unwrap();
    let problem = expect_problem(malformed, StatusCode::BAD_REQUEST).await;
    assert_eq!(problem["type"], "/problems/malformed-json");

    let no_content_type = post().body(valid_body(&unique_email()).to_string()).send().await.unwrap();
    expect_problem(no_content_type, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    let form = post().header(CONTENT_TYPE, "application/x-www-form-urlencoded").body("email=a").send().await.unwrap();
    expect_problem(form, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;

    let huge = json!({"email": unique_email(), "name": "x".repeat(17 * 1024), "password": PASSWORD});
    let too_large = post().json(&huge).send().await.unwrap();
    expect_problem(too_large, StatusCode::PAYLOAD_TOO_LARGE).await;

    let invalid = gateway.register(&json!({"email": "not-an-address", "name": "  ", "password": "short"}), None).await;
    let problem = expect_problem(invalid, StatusCode::UNPROCESSABLE_ENTITY).await;
    let fields: Vec<&str> =
        problem["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["email", "name", "password"], "{problem}");
    assert!(problem["errors"].as_array().unwrap().iter().all(|e| e["message"].as_str().is_some_and(|m| !m.is_empty())));
    assert!(!problem.to_string().contains("short"), "the password is not echoed back");

    let missing = gateway.register(&json!({"email": unique_email(), "password": 12345678}), None).await;
    let problem = expect_problem(missing, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(
        problem["errors"],
        json!([
            {"field": "name", "message": "is required"},
            {"field": "password", "message": "must be a string"}
        ])
    );

    let not_an_object = gateway.register(&json!(["ada@example.com"]), None).await;
    expect_problem(not_an_object, StatusCode::UNPROCESSABLE_ENTITY).await;

    let long_key = "k".repeat(256);
    let bad_key = gateway.register(&valid_body(&unique_email()), Some(&long_key)).await;
    let problem = expect_problem(bad_key, StatusCode::BAD_REQUEST).await;
    assert_eq!(problem["type"], "/problems/invalid-idempotency-key");

    let wrong_method = gateway.client.delete(gateway.url("/registrations")).send().await.unwrap();
    expect_problem(wrong_method, StatusCode::METHOD_NOT_ALLOWED).await;
    expect_problem(gateway.get("/no-such-route").await, StatusCode::NOT_FOUND).await;

    assert_eq!(gateway.records_on_topic(env), 0, "a refused registration must not be published");

    let metrics = gateway.internal_get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("gateway_registrations_rejected_total{reason=\"invalid_fields\"} 3\n"), "{metrics}");
    assert!(metrics.contains("gateway_registrations_rejected_total{reason=\"malformed_json\"} 1\n"), "{metrics}");
    assert!(metrics.contains("gateway_registrations_rejected_total{reason=\"unsupported_media_type\"} 2\n"));
    assert!(metrics.contains("gateway_registrations_rejected_total{reason=\"payload_too_large\"} 1\n"));
    assert!(metrics.contains("gateway_registrations_accepted_total 0\n"), "{metrics}");
    gateway.stop().await;
}

#[tokio::test]
async fn same_idempotency_key_gets_the_same_request_id() {
    let env = test_env().await;
    let gateway = spawn_gateway(env, |_| {}).await;
    let body = valid_body(&unique_email());

    let first = gateway.register(&body, Some("signup-7f3a")).await;
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let first_id = accepted_id(first).await;
    let retry = gateway.register(&body, Some("signup-7f3a")).await;
    assert_eq!(retry.status(), StatusCode::ACCEPTED);
    assert_eq!(accepted_id(retry).await, first_id);

    // The retry was published again under the same id; the consumer's upsert makes it one user.
    let records = env.read_topic(&gateway.topic, 2, Duration::from_secs(10)).await;
    assert_eq!(records.len(), 2);
    for record in &records {
        assert_eq!(record.header("x-request-id"), Some(first_id.to_string().as_bytes()));
    }

    let other_key = gateway.register(&valid_body(&unique_email()), Some("signup-other")).await;
    assert_eq!(other_key.status(), StatusCode::ACCEPTED);
    assert_ne!(accepted_id(other_key).await, first_id);
    let no_key = gateway.register(&body, None).await;
    assert_eq!(no_key.status(), StatusCode::ACCEPTED);
    assert_ne!(accepted_id(no_key).await, first_id, "without a key every request is new");
}

#[tokio::test]
async fn same_idempotency_key_with_a_different_request_is_409() {
    let env = test_env().await;
    let gateway = spawn_gateway(env, |_| {}).await;
    let email = unique_email();
    let first = gateway.register(&valid_body(&email), Some("signup-42")).await;
    assert_eq!(first.status(), StatusCode::ACCEPTED);

    let other_name = json!({"email": email, "name": "Someone Else", "password": PASSWORD});
    let problem = expect_problem(gateway.register(&other_name, Some("signup-42")).await, StatusCode::CONFLICT).await;
    assert_eq!(problem["title"], "Idempotency-Key reused with a different request");
    let other_password = json!({"email": email, "name": "Ada Lovelace", "password": "another password"});
    expect_problem(gateway.register(&other_password, Some("signup-42")).await, StatusCode::CONFLICT).await;
    // Normalisation makes these the same request, not a different one.
    let same_normalised = json!({"email": email.to_uppercase(), "name": " Ada Lovelace", "password": PASSWORD});
    assert_eq!(gateway.register(&same_normalised, Some("signup-42")).await.status(), StatusCode::ACCEPTED);

    assert_eq!(gateway.records_on_topic(env), 2, "the conflicting requests were not published");
    let metrics = gateway.internal_get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("gateway_registrations_rejected_total{reason=\"idempotency_conflict\"} 2\n"), "{metrics}");
}

#[tokio::test]
async fn broker_unavailable_is_503_with_retry_after_never_202() {
    let env = test_env().await;
    let dead_broker = format!("127.0.0.1:{}", closed_port());
    let gateway = spawn_gateway(env, |s| {
        s.kafka.bootstrap_servers = dead_broker;
        s.publish_timeout = Duration::from_millis(1500);
    })
    .await;

    for key in [None, Some("signup-while-down")] {
        let started = std::time::Instant::now();
        let response = gateway.register(&valid_body(&unique_email()), key).await;
        let elapsed = started.elapsed();
        assert!(response.headers().get(RETRY_AFTER).is_some(), "Retry-After on 503");
        let location = response.headers().get(LOCATION).map(|v| v.to_str().unwrap().to_owned());
        let problem = expect_problem(response, StatusCode::SERVICE_UNAVAILABLE).await;
        assert_eq!(problem["type"], "/problems/not-accepted");
        // The record may still land: the client gets the id it would have had, and where to
        // ask, instead of signing up again and being told its own email is taken.
        let id = Uuid::parse_str(problem["request_id"].as_str().expect("request_id in the 503")).expect("uuid");
        assert_eq!(location, Some(format!("/registrations/{id}")));
        let status: Value = gateway.get(&format!("/registrations/{id}")).await.json().await.unwrap();
        assert_eq!(status["status"], "pending", "an issued id, not yet stored: {status}");
        assert!(elapsed >= Duration::from_millis(1000), "waited for the acknowledgement: {elapsed:?}");
        assert!(elapsed < Duration::from_secs(10), "bounded by the publish timeout: {elapsed:?}");
    }

    let ready = gateway.internal_get("/readyz").await;
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(gateway.internal_get("/healthz").await.status(), StatusCode::OK, "alive, just not ready");
    let metrics = gateway.internal_get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("gateway_publish_failures_total 2\n"), "{metrics}");
    assert!(metrics.contains("gateway_registrations_accepted_total 0\n"), "{metrics}");
    gateway.stop().await;
}

#[tokio::test]
async fn openapi_document_and_router_list_the_same_routes_and_all_answer() {
    let env = test_env().await;
    let gateway = spawn_gateway(env, |_| {}).await;
    let response = gateway.get("/openapi.json").await;
    assert_eq!(response.status(), StatusCode::OK);
    let doc: Value = response.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));

    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| item.as_object().unwrap().keys().map(move |m| (m.to_uppercase(), path.clone())))
        .collect();
    let served: BTreeSet<(String, String)> =
        gateway.routes.iter().map(|r| (r.method.clone(), r.path.clone())).collect();
    assert_eq!(documented, served, "the OpenAPI document and the public router disagree");
    for route in [("POST", "/registrations"), ("GET", "/registrations/{request_id}"), ("GET", "/openapi.json")] {
        assert!(documented.contains(&(route.0.to_owned(), route.1.to_owned())), "{route:?} is documented");
    }
    // The operator surfaces are the internal listener's, and not in the public contract.
    let internal: BTreeSet<&str> = gateway.internal_routes.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(internal, BTreeSet::from(INTERNAL), "the internal listener serves the probes and /metrics");
    assert!(INTERNAL.iter().all(|p| doc["paths"].get(*p).is_none()), "internal routes are not documented publicly");
    let post = &doc["paths"]["/registrations"]["post"]["responses"];
    for code in ["202", "400", "409", "413", "415", "422", "429", "503"] {
        assert!(post.get(code).is_some(), "POST /registrations documents {code}");
    }
    assert_eq!(post["422"]["content"]["application/problem+json"]["schema"]["$ref"], "#/components/schemas/Problem");
    assert!(doc["components"]["schemas"]["Problem"]["properties"]["errors"].is_object());

    // Every documented route exists and answers (a 404 or 405 would mean it does not).
    let issued = gateway.register_ok().await;
    for (method, path) in &documented {
        let concrete = path.replace("{request_id}", &issued.to_string());
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = gateway.client.request(method.clone(), gateway.url(&concrete));
        if method == Method::POST {
            request = request.json(&valid_body(&unique_email()));
        }
        let status = request.send().await.unwrap().status();
        assert!(status.is_success(), "{method} {concrete} answered {status}");
    }
    for path in INTERNAL {
        let status = gateway.internal_get(path).await.status();
        assert!(status.is_success(), "{path} on the internal listener answered {status}");
    }
    // ... and the probe can tell: an undocumented route is 404.
    assert_eq!(gateway.get("/registrations/x/y").await.status(), StatusCode::NOT_FOUND);
    // Each listener serves only its own routes: no counters or probes on the public one, no
    // sign-up on the internal one.
    for path in INTERNAL {
        assert_eq!(gateway.get(path).await.status(), StatusCode::NOT_FOUND, "{path} on the public listener");
    }
    for path in ["/registrations/00000000-0000-0000-0000-000000000000", "/openapi.json"] {
        assert_eq!(gateway.internal_get(path).await.status(), StatusCode::NOT_FOUND, "{path} on the internal one");
    }
}

/// The routes of the internal listener.
const INTERNAL: [&str; 3] = ["/metrics", "/healthz", "/readyz"];

#[tokio::test]
async fn a_request_over_the_time_limit_is_a_503_problem_not_a_202() {
    let env = test_env().await;
    // Hashing alone (64 MiB, 4 passes) cannot fit in 5 ms: the limit passes before the record
    // reaches the producer, so "not accepted" is true. (Past that point the limit no longer
    // cuts a request: tests/tests/overload_answers.rs.)
    let gateway = spawn_gateway(env, |s| {
        s.request_timeout = Duration::from_millis(5);
        s.hashing.memory_kib = 64 * 1024;
        s.hashing.iterations = 4;
    })
    .await;

    let response = gateway.register(&valid_body(&unique_email()), None).await;

    assert!(response.headers().get(RETRY_AFTER).is_some(), "Retry-After on 503");
    let problem = expect_problem(response, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(problem["type"], "/problems/timed-out");
    gateway.stop().await;
}

//! The gateway as its HTTP contract tests (`gateway_api`, `gateway_status`) talk to it: a
//! gateway of one test from the harness with a client, valid and unique request bodies, and the
//! checks of an accepted answer and of a problem document.

use std::time::Duration;

use crate::harness::free_port;
use crate::harness::gateway::InProcessGateway;
use crate::TestEnv;
use gateway::configuration::Settings;
use reqwest::header::CONTENT_TYPE;
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

pub const PASSWORD: &str = "correct horse battery staple";

/// A gateway of one test (the harness's, with its own topic and database), and a client.
pub struct TestGateway {
    gateway: InProcessGateway,
    pub client: reqwest::Client,
}

/// The harness gateway's topic, database, routes and URLs, as `gateway.db` and so on.
impl std::ops::Deref for TestGateway {
    type Target = InProcessGateway;

    fn deref(&self) -> &InProcessGateway {
        &self.gateway
    }
}

/// A gateway with cheap argon2 so tests stay fast (`test_settings`); one test keeps the OWASP
/// defaults.
pub async fn spawn_gateway(env: &TestEnv, customise: impl FnOnce(&mut Settings)) -> TestGateway {
    TestGateway { gateway: InProcessGateway::start(env, customise).await, client: reqwest::Client::new() }
}

impl TestGateway {
    pub async fn register(&self, body: &Value, idempotency_key: Option<&str>) -> reqwest::Response {
        let mut request = self.client.post(self.url("/registrations")).json(body);
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        request.send().await.expect("POST /registrations")
    }

    /// Registers a valid unique user and returns its request id (asserting the 202).
    pub async fn register_ok(&self) -> Uuid {
        let response = self.register(&valid_body(&unique_email()), None).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        accepted_id(response).await
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    /// `GET path` on the internal listener (`/metrics`, `/healthz`, `/readyz`).
    pub async fn internal_get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.internal_url(path)).send().await.expect("GET")
    }

    /// Graceful stop; asserts the server shut down cleanly.
    pub async fn stop(self) {
        self.gateway.stop(Duration::from_secs(20)).await;
    }
}

pub fn unique_email() -> String {
    format!("user-{}@example.com", Uuid::new_v4().simple())
}

pub fn valid_body(email: &str) -> Value {
    json!({"email": email, "name": "Ada Lovelace", "password": PASSWORD})
}

pub async fn accepted_id(response: reqwest::Response) -> Uuid {
    let body: Value = response.json().await.expect("JSON body");
    Uuid::parse_str(body["request_id"].as_str().expect("request_id")).expect("UUID")
}

/// Asserts an RFC 9457 problem document with `status`, and returns it.
pub async fn expect_problem(response: reqwest::Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status, "status of {}", response.url());
    let content_type = response.headers().get(CONTENT_TYPE).expect("Content-Type").to_str().unwrap().to_owned();
    assert_eq!(content_type, "application/problem+json");
    let problem: Value = response.json().await.expect("problem is JSON");
    assert_eq!(problem["status"], status.as_u16(), "{problem}");
    assert!(problem["type"].is_string() && problem["title"].is_string(), "{problem}");
    problem
}

/// A port nothing listens on: bound, then released.
pub fn closed_port() -> u16 {
    free_port()
}

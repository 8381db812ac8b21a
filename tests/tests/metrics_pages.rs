//! The `/metrics` page of each service as a running process serves it: one content type
//! (OpenMetrics text) for all three, every series name operators already query (the names
//! the hand-written pages had, with their `_total` suffixes and labels), and the standard
//! process metrics and a build-info metric on each.

use std::time::Duration;

use integration_tests::cluster::{Cluster, ClusterConfig};
use integration_tests::ledger::{Expected, PasswordEvidence};
use integration_tests::wait;
use reliable_messaging::parking::ParkReason;
use reliable_messaging::service::endpoints::metrics::CONTENT_TYPE;
use serde_json::{json, Value};
use uuid::Uuid;

/// The page at `base/metrics`, checked for the one content type and the OpenMetrics end marker.
async fn page(base: &str) -> String {
    let response = reqwest::get(format!("{base}/metrics")).await.expect("GET /metrics");
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
    assert_eq!(content_type.as_deref(), Some(CONTENT_TYPE), "{base}");
    let text = response.text().await.expect("body");
    assert!(text.ends_with("# EOF\n"), "{text}");
    text
}

/// Asserts a sample line starting with each of `series` (name and labels), plus the process
/// and build-info metrics every service serves.
fn assert_serves(text: &str, prefix: &str, series: &[String]) {
    let common = [format!("{prefix}_build_info{{version=\""), "process_resident_memory_bytes ".to_owned()];
    for name in series.iter().chain(&common) {
        assert!(text.lines().any(|l| l.starts_with(name.as_str())), "{name} missing from:\n{text}");
    }
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_serves_the_old_names_and_process_and_build_info_in_one_content_type() {
    let cluster = Cluster::start(ClusterConfig::default()).await;
    let email = format!("metrics-{}@example.com", Uuid::new_v4().simple());
    let response = reqwest::Client::new()
        .post(format!("{}/registrations", cluster.gateway_url))
        .json(&json!({"email": email, "name": "Metrics Page", "password": "a fine passphrase"}))
        .send()
        .await
        .expect("POST /registrations");
    assert_eq!(response.status().as_u16(), 202);
    let body: Value = response.json().await.expect("json");
    let accepted = Expected {
        request_id: Uuid::parse_str(body["request_id"].as_str().expect("request_id")).expect("uuid"),
        email,
        name: "Metrics Page".to_owned(),
        password: PasswordEvidence::Plaintext("a fine passphrase".to_owned()),
    };
    cluster.settle(&[accepted], Duration::from_secs(60)).await.assert_clean();
    // The consumer lag is exposed once first computed (refreshed every second, and only once
    // the group's committed offsets answer): wait for it rather than for a fixed time, which
    // lost the race in 2 runs of 5.
    let registration_base = format!("http://127.0.0.1:{}", cluster.registration_port(0));
    wait::until(Duration::from_secs(15), "the registration-service serves its consumer lag", || async {
        page(&registration_base).await.lines().any(|l| l.starts_with("registration_service_consumer_lag "))
    })
    .await;

    let mut gateway = names(&[
        "gateway_registrations_accepted_total 1",
        "gateway_publish_failures_total 0",
        "gateway_idempotency_claims_total{source=\"shared\"} ",
        "gateway_idempotency_claims_total{source=\"local_fallback\"} ",
        "gateway_registration_accept_duration_seconds_bucket{le=\"0.005\"} ",
        "gateway_registration_accept_duration_seconds_bucket{le=\"+Inf\"} 1",
        "gateway_registration_accept_duration_seconds_sum ",
        "gateway_registration_accept_duration_seconds_count 1",
        "gateway_stage_seconds_total{stage=\"hash\"} ",
        "gateway_stage_calls_total{stage=\"publish\"} 1",
    ]);
    gateway.extend(
        [
            "malformed_json",
            "unsupported_media_type",
            "payload_too_large",
            "invalid_fields",
            "invalid_idempotency_key",
            "idempotency_conflict",
            "overloaded",
            "rate_limited",
            "hashing_failed",
            "not_acknowledged",
        ]
        .map(|r| format!("gateway_registrations_rejected_total{{reason=\"{r}\"}} ")),
    );
    assert_serves(&page(&cluster.gateway_internal_url).await, "gateway", &gateway);

    let registration = names(&[
        "registration_service_consumed_total ",
        "registration_service_done_total ",
        "registration_service_rejected_total ",
        "registration_service_dead_lettered_transient_total 0",
        "registration_service_dead_lettered_permanent_total 0",
        "registration_service_in_place_retries_total ",
        "registration_service_commits_total ",
        "registration_service_assigned_partitions ",
        "registration_service_in_flight ",
        "registration_service_paused 0",
        "registration_service_outage_seconds ",
        "registration_service_outages_total 0",
        "registration_service_halted 0",
        "registration_service_consumer_lag ",
        "registration_service_stage_seconds_total{stage=\"poll\"} ",
        "registration_service_stage_calls_total{stage=\"handle\"} ",
    ]);
    let registration_page = page(&registration_base).await;
    assert_serves(&registration_page, "registration_service", &registration);

    let mut dlq = names(&[
        "dlq_consumed_total ",
        "dlq_redriven_total ",
        "dlq_resend_failures_total ",
        "dlq_parking_failures_total ",
        "dlq_operator_actions_total{action=\"redrive\"} ",
        "dlq_operator_actions_total{action=\"discard\"} ",
        "dlq_commits_total ",
        "dlq_scheduled ",
        "dlq_in_flight ",
        "dlq_paused_partitions ",
        "dlq_pauses_total ",
        "dlq_resends_held ",
        "dlq_database_outages_total ",
        "dlq_halted ",
        "dlq_assigned_partitions ",
    ]);
    dlq.extend(ParkReason::ALL.map(|r| format!("dlq_parked_total{{reason=\"{}\"}} ", r.as_str())));
    assert_serves(&page(&format!("http://127.0.0.1:{}", cluster.dlq_worker_port())).await, "dlq", &dlq);

    assert!(cluster.stop().await.is_empty(), "every service exits cleanly on SIGTERM");
}

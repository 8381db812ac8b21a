//! What the gateway's `/metrics` page holds: every name operators already use, and the
//! process and build-info metrics every service serves.

use super::*;

fn page(m: &Metrics) -> String {
    m.registry().encode().expect("encodes")
}

#[test]
fn counts_and_observes_into_a_cumulative_histogram() {
    let m = Metrics::new();
    m.accepted(Duration::from_millis(30));
    m.accepted(Duration::from_secs(60));
    m.rejected(RejectReason::InvalidFields);
    m.rejected(RejectReason::InvalidFields);
    m.publish_failed();
    m.idempotency_claim(ClaimSource::LocalFallback);
    let text = page(&m);
    for line in [
        "gateway_registrations_accepted_total 2",
        "gateway_registrations_rejected_total{reason=\"invalid_fields\"} 2",
        "gateway_registrations_rejected_total{reason=\"malformed_json\"} 0",
        "gateway_publish_failures_total 1",
        "gateway_idempotency_claims_total{source=\"local_fallback\"} 1",
        "gateway_idempotency_claims_total{source=\"shared\"} 0",
        "gateway_registration_accept_duration_seconds_bucket{le=\"0.025\"} 0",
        "gateway_registration_accept_duration_seconds_bucket{le=\"0.05\"} 1",
        "gateway_registration_accept_duration_seconds_bucket{le=\"30.0\"} 1",
        "gateway_registration_accept_duration_seconds_bucket{le=\"+Inf\"} 2",
        "gateway_registration_accept_duration_seconds_count 2",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing from:\n{text}");
    }
    let sum = text.lines().find_map(|l| l.strip_prefix("gateway_registration_accept_duration_seconds_sum "));
    assert!((sum.expect("a sum").parse::<f64>().unwrap() - 60.03).abs() < 1e-9, "{text}");
}

/// Every series the hand-written page had, by name and labels, still served.
#[test]
fn keeps_every_name_operators_use() {
    let m = Metrics::new();
    m.stages.record("hash", Duration::from_millis(40));
    let text = page(&m);
    let mut expected: Vec<String> = vec![
        "gateway_registrations_accepted_total ".into(),
        "gateway_publish_failures_total ".into(),
        "gateway_idempotency_claims_total{source=\"shared\"} ".into(),
        "gateway_idempotency_claims_total{source=\"local_fallback\"} ".into(),
        "gateway_registration_accept_duration_seconds_sum ".into(),
        "gateway_registration_accept_duration_seconds_count ".into(),
        "gateway_registration_accept_duration_seconds_bucket{le=\"+Inf\"} ".into(),
        "gateway_stage_seconds_total{stage=\"hash\"} ".into(),
        "gateway_stage_calls_total{stage=\"hash\"} ".into(),
        "gateway_build_info{version=\"".into(),
    ];
    expected.extend(
        RejectReason::ALL.iter().map(|r| format!("gateway_registrations_rejected_total{{reason=\"{}\"}} ", r.label())),
    );
    #[cfg(target_os = "linux")]
    expected.push("process_resident_memory_bytes ".into());
    for name in &expected {
        assert!(text.lines().any(|l| l.starts_with(name.as_str())), "{name} missing from:\n{text}");
    }
    // The same bucket boundaries; whole seconds are now written as OpenMetrics floats ("1.0").
    let bounds: Vec<f64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("gateway_registration_accept_duration_seconds_bucket{le=\""))
        .filter_map(|rest| rest.split('"').next()?.parse().ok())
        .filter(|le: &f64| le.is_finite())
        .collect();
    assert_eq!(bounds, BUCKETS);
}

//! The registration-service against a real broker and a real database: every event becomes
//! exactly one row, duplicates and taken emails are absorbed, failures reach the DLQ.

use std::time::Duration;

use integration_tests::harness::registration::{service_settings, InProcessService};
use integration_tests::ledger;
use integration_tests::registrations::{produce_events, sample_event};
use integration_tests::tcp_proxy::{database_socket_addr, TcpProxy};
use integration_tests::{test_env, wait};
use reliable_messaging::dead_letter::dead_letter_topic;
use reliable_messaging::message::retry_metadata::header;

async fn topic_pair(prefix: &str) -> (String, String) {
    let env = test_env().await;
    let topic = env.unique_topic(prefix);
    let dlq = dead_letter_topic(&topic);
    env.create_topics(&[&topic, &dlq], 3).await;
    (topic, dlq)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_becomes_exactly_one_row() {
    let env = test_env().await;
    let db = env.fresh_database().await;
    let (topic, _) = topic_pair("registrations").await;
    let events: Vec<_> = (0..300).map(|_| sample_event()).collect();
    produce_events(env, &topic, &events).await;

    let service = InProcessService::start(service_settings(env, &topic, "registration-service", &db.url)).await;
    let db_ref = &db;
    wait::until(Duration::from_secs(60), "300 users are stored", || async move {
        db_ref.count("SELECT COUNT(*) FROM users").await == 300
    })
    .await;
    service.stop().await;

    let report = ledger::check(&db, &ledger::expected_from_events(&events)).await;
    report.assert_clean();
    assert_eq!(report.stored, 300, "{report}");
    assert!(env.group_caught_up("registration-service", &topic), "offsets are committed after a graceful stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_event_never_makes_a_second_row() {
    let env = test_env().await;
    let db = env.fresh_database().await;
    let (topic, _) = topic_pair("registrations").await;
    let event = sample_event();
    // Twice in one batch, then once more after the first copies were committed.
    produce_events(env, &topic, &[event.clone(), event.clone()]).await;
    let service = InProcessService::start(service_settings(env, &topic, "registration-service", &db.url)).await;
    let db_ref = &db;
    wait::until(Duration::from_secs(30), "the user is stored", || async move {
        db_ref.count("SELECT COUNT(*) FROM users").await == 1
    })
    .await;
    produce_events(env, &topic, std::slice::from_ref(&event)).await;
    wait::until(Duration::from_secs(30), "all three copies are consumed", || async {
        env.group_caught_up("registration-service", &topic)
    })
    .await;
    service.stop().await;
    assert_eq!(db.count("SELECT COUNT(*) FROM users").await, 1);
    assert_eq!(db.count("SELECT COUNT(*) FROM request_status").await, 0, "a duplicate is not a rejection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_request_for_a_registered_email_is_rejected_not_retried() {
    let env = test_env().await;
    let db = env.fresh_database().await;
    let (topic, dlq) = topic_pair("registrations").await;
    let first = sample_event();
    let mut second = sample_event();
    second.email = first.email.clone();
    produce_events(env, &topic, &[first.clone(), second.clone()]).await;

    let service = InProcessService::start(service_settings(env, &topic, "registration-service", &db.url)).await;
    let db_ref = &db;
    wait::until(Duration::from_secs(30), "the rejection is recorded", || async move {
        db_ref.count("SELECT COUNT(*) FROM request_status WHERE status = 'rejected'").await == 1
    })
    .await;
    service.stop().await;

    let report = ledger::check(&db, &ledger::expected_from_events(&[first.clone(), second.clone()])).await;
    report.assert_clean();
    assert_eq!((report.stored, report.rejected), (1, 1), "{report}");
    let reason: String = sqlx::query_scalar("SELECT reason FROM request_status WHERE request_id = ?")
        .bind(second.request_id.as_bytes().to_vec())
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(reason, "email already registered");
    assert!(env.read_topic(&dlq, 1, Duration::from_secs(2)).await.is_empty(), "a business rejection is never retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_goes_to_the_dlq_as_permanent_and_the_next_one_is_stored() {
    let env = test_env().await;
    let db = env.fresh_database().await;
    let (topic, dlq) = topic_pair("registrations").await;
    let good = sample_event();
    // Same key, so both land on one partition, poison first.
    env.produce(&topic, Some(good.email.as_bytes()), Some(b"{not json"), &[("traceparent", b"00-1")]).await;
    produce_events(env, &topic, std::slice::from_ref(&good)).await;

    let service = InProcessService::start(service_settings(env, &topic, "registration-service", &db.url)).await;
    let db_ref = &db;
    wait::until(Duration::from_secs(30), "the good user is stored", || async move {
        db_ref.count("SELECT COUNT(*) FROM users").await == 1
    })
    .await;
    let dead = env.read_topic(&dlq, 1, Duration::from_secs(20)).await;
    service.stop().await;

    assert_eq!(dead.len(), 1);
    let d = &dead[0];
    assert_eq!(d.payload.as_deref(), Some(&b"{not json"[..]), "payload is preserved");
    assert_eq!(d.key.as_deref(), Some(good.email.as_bytes()), "key is preserved");
    assert_eq!(d.header_str("traceparent"), Some("00-1"), "foreign headers are preserved");
    assert_eq!(d.header_str(header::ERROR_KIND), Some("permanent"));
    assert_eq!(d.header_str(header::ORIGINAL_TOPIC), Some(topic.as_str()));
    assert!(
        d.header_str(header::ERROR_MESSAGE).unwrap().contains("not JSON"),
        "{:?}",
        d.header_str(header::ERROR_MESSAGE)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_the_dead_letter_outage_policy_a_down_database_sends_messages_to_the_dlq_and_commits() {
    let env = test_env().await;
    let db = env.fresh_database().await;
    let (topic, dlq) = topic_pair("registrations").await;
    let proxy = TcpProxy::start(database_socket_addr(&db.url)).await;
    let mut settings = service_settings(env, &topic, "registration-service", &proxy.rewrite_url(&db.url));
    settings.service.consumer.in_place_retries = 2;
    // The article's original path, still available: an outage is an ordinary transient
    // failure. (The default pauses instead: tests/tests/dependency_outage.rs.)
    settings.service.consumer.outage_policy = reliable_messaging::consumer::OutagePolicy::DeadLetter;
    let service = InProcessService::start(settings).await;
    // Let the service migrate and join the group, then take the database away.
    wait::until(Duration::from_secs(30), "partitions are assigned", || async {
        reqwest::get(format!("http://127.0.0.1:{}/readyz", service.http_port))
            .await
            .map(|r| r.status().is_success())
            .unwrap_or(false)
    })
    .await;
    proxy.cut();
    let events: Vec<_> = (0..5).map(|_| sample_event()).collect();
    produce_events(env, &topic, &events).await;

    let dead = env.read_topic(&dlq, 5, Duration::from_secs(60)).await;
    assert_eq!(dead.len(), 5, "every event reaches the DLQ");
    for d in &dead {
        assert_eq!(d.header_str(header::ERROR_KIND), Some("transient"));
        assert_eq!(d.header_str(header::RETRY_COUNT), Some("0"));
        assert_eq!(d.header_str(header::ORIGINAL_TOPIC), Some(topic.as_str()));
        assert!(d.header_str(header::NOT_BEFORE).is_some());
    }
    wait::until(Duration::from_secs(20), "the source offsets are committed", || async {
        env.group_caught_up("registration-service", &topic)
    })
    .await;
    proxy.restore();
    service.stop().await;
    assert_eq!(db.count("SELECT COUNT(*) FROM users").await, 0);
}

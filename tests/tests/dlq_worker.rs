//! The dlq-worker against a real broker and a real database: re-sends with the count
//! incremented, parks at the threshold, at once for permanent failures and poison, derives the
//! origin from the DLQ name or foreign headers, never creates a missing topic, and never lets a
//! late message hold up an early one.

use std::time::{Duration, Instant};

use chrono::Utc;
use integration_tests::dead_letters::{topic_exists, topic_pair, wait_parked};
use integration_tests::harness::dlq_worker::{settings, RunningWorker, Scope};
use integration_tests::{test_env, wait};
use reliable_messaging::dead_letter::dead_letter_topic;
use reliable_messaging::message::retry_metadata::{header, MetadataFormat, MetadataSource};
use reliable_messaging::message::REQUEST_ID_HEADER;
use reliable_messaging::request_status;
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failure_is_resent_to_its_origin_with_the_count_incremented() {
    let env = test_env().await;
    let db = env.fresh_database().await;
    let scope = Scope::new(env);
    let (origin, dlq) = topic_pair(&scope, "orders", 3).await;
    let request_id = Uuid::new_v4();
    let last_failure = reliable_messaging::message::retry_metadata::rfc3339(Utc::now());
    env.produce(
        &dlq,
        Some(b"customer-7"),
        Some(br#"{"order": 7}"#),
        &[
            ("traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            (REQUEST_ID_HEADER, request_id.to_string().as_bytes()),
            (header::RETRY_COUNT, b"1"),
            (header::ORIGINAL_TOPIC, origin.as_bytes()),
            (header::ORIGINAL_PARTITION, b"2"),
            (header::ORIGINAL_OFFSET, b"17"),
            (header::FIRST_FAILURE_AT, b"2026-11-26T10:00:00.000Z"),
            (header::LAST_FAILURE_AT, last_failure.as_bytes()),
            (header::ERROR_KIND, b"transient"),
            (header::ERROR_MESSAGE, b"database unreachable"),
        ],
    )
    .await;

    let worker = RunningWorker::start(settings(env, &scope, &db.url)).await;
    let resent = env.read_topic(&origin, 1, Duration::from_secs(30)).await;
    assert_eq!(resent.len(), 1, "the message is back on {origin}");
    let r = &resent[0];
    assert_eq!(r.key.as_deref(), Some(&b"customer-7"[..]));
    assert_eq!(r.payload.as_deref(), Some(&br#"{"order": 7}"#[..]));
    assert_eq!(r.header_str(header::RETRY_COUNT), Some("2"));
    assert_eq!(r.headers.iter().filter(|h| h.key == header::RETRY_COUNT).count(), 1, "one count, not appended");
    assert_eq!(r.header_str("traceparent"), Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
    assert_eq!(r.header_str(REQUEST_ID_HEADER), Some(request_id.to_string().as_str()));
    assert_eq!(r.header_str(header::ORIGINAL_PARTITION), Some("2"));
    assert_eq!(r.header_str(header::ORIGINAL_OFFSET), Some("17"));
    assert_eq!(r.header_str(header::FIRST_FAILURE_AT), Some("2026-11-26T10:00:00.000Z"));
    assert_eq!(r.header_str(header::ERROR_MESSAGE), Some("database unreachable"));
    assert_eq!(r.header_str(header::NOT_BEFORE), None, "a re-sent message is due at once");

    let pool = &db.pool;
    wait::until(Duration::from_secs(10), "the request shows retrying, attempt 2", || async move {
        request_status::fetch(pool, request_id)
            .await
            .unwrap()
            .is_some_and(|s| s.status == "retrying" && s.retry_count == 2)
    })
    .await;
    wait::until(Duration::from_secs(10), "the DLQ offset is committed", || async {
        env.group_caught_up(&scope.group, &dlq)
    })
    .await;
    worker.stop().await;
    assert!(integration_tests::dead_letters::parked(&db.pool).await.is_empty(), "nothing parked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_retry_budget_is_parked_with_its_history_and_one_below_is_resent() {
    let env = test_env().await;
    let db = env.fresh_database().await;
    let scope = Scope::new(env);
    let (origin, dlq) = topic_pair(&scope, "orders", 1).await;
    let request_id = Uuid::new_v4();
    let common = |count: &'static [u8]| {
        vec![
            (header::RETRY_COUNT, count),
            (header::ORIGINAL_TOPIC, origin.as_bytes()),
            (header::ORIGINAL_PARTITION, b"1"),
            (header::ORIGINAL_OFFSET, b"99"),
            (header::FIRST_FAILURE_AT, b"2026-11-26T10:00:00.000Z"),
            (header::LAST_FAILURE_AT, b"2026-11-26T10:05:00.000Z"),
            (header::ERROR_KIND, b"transient"),
            (header::ERROR_MESSAGE, b"lock wait timeout"),
        ]
    };
    let mut exhausted = common(b"5");
    let id_text = request_id.to_string();
    exhausted.push((REQUEST_ID_HEADER, id_text.as_bytes()));
    env.produce(&dlq, Some(b"k5"), Some(b"five"), &exhausted).await;
    env.produce(&dlq, Some(b"k4"), Some(b"four"), &common(b"4")).await;

    let worker = RunningWorker::start(settings(env, &scope, &db.url)).await;
    let rows = wait_parked(&db.pool, 1, Duration::from_secs(30)).await;
    let p = &rows[0];
    assert_eq!(p.payload.as_deref(), Some(&b"five"[..]));
    assert_eq!(p.retry_count, 5);
    assert_eq!(p.source_topic, origin);
    assert_eq!((p.original_partition, p.original_offset), (Some(1), Some(99)));
    assert_eq!((p.dlq_topic.as_str(), p.dlq_partition, p.dlq_offset), (dlq.as_str(), 0, 0));
    assert_eq!(p.reason, "retries_exhausted");
    assert_eq!(p.error_kind, "transient");
    assert_eq!(p.error_message.as_deref(), Some("lock wait timeout; retry budget of 5 exhausted"));
    assert_eq!(p.first_failure_at.map(|t| t.to_rfc3339()), Some("2026-11-26T10:00:00+00:00".to_owned()));
    assert_eq!(p.request_id, Some(request_id));
    let status = request_status::fetch(&db.pool, request_id).await.unwrap().expect("status recorded with the parking");
    assert_eq!((status.status.as_str(), status.retry_count), ("parked", 5));

    let resent = env.read_topic(&origin, 2, Duration::from_secs(5)).await;
    assert_eq!(resent.len(), 1, "only the message below the threshold goes back");
    assert_eq!(resent[0].payload.as_deref(), Some(&b"four"[..]));
    assert_eq!(resent[0].header_str(header::RETRY_COUNT), Some("5"));
    wait::until(Duration::from_secs(10), "both DLQ offsets are committed", || async {
        env.group_caught_up(&scope.group, &dlq)
    })
    .await;
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_failure_is_parked_at_once() {
    let env = test_env().await;
    let db = env.fresh_database().await;
    let scope = Scope::new(env);
    let (origin, dlq) = topic_pair(&scope, "orders", 1).await;
    env.produce(
        &dlq,
        Some(b"k"),
        Some(b"not json"),
        &[
            (header::RETRY_COUNT, b"0"),
            (header::ORIGINAL_TOPIC, origin.as_bytes()),
            (header::ERROR_KIND, b"permanent"),
            (header::ERROR_MESSAGE, b"payload is not JSON: expected value at line 1 column 1"),
        ],
    )
    .await;
    let worker = RunningWorker::start(settings(env, &scope, &db.url)).await;
    let rows = wait_parked(&db.pool, 1, Duration::from_secs(30)).await;
    assert_eq!(rows[0].reason, "permanent");
    assert_eq!(rows[0].retry_count, 0, "parked without a single retry");
    assert_eq!(rows[0].error_message.as_deref(), Some("payload is not JSON: expected value at line 1 column 1"));
    wait::until(Duration::from_secs(10), "the DLQ offset is committed", || async {
        env.group_caught_up(&scope.group, &dlq)
    })
    .await;
    assert!(env.read_topic(&origin, 1, Duration::from_secs(2)).await.is_empty(), "never re-sent");
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_records_are_parked_with_a_readable_reason_and_the_next_record_still_flows() {
    let env = test_env().await;
    let db = env.fresh_database().await;
    let scope = Scope::new(env);
    let (origin, dlq) = topic_pair(&scope, "orders", 1).await;
    env.produce(&dlq, Some(b"a"), Some(b"{}"), &[(header::RETRY_COUNT, b"abc")]).await;
    env.produce(&dlq, Some(b"b"), Some(b"{}"), &[(header::RETRY_COUNT, b"-1")]).await;
    env.produce(&dlq, Some(b"c"), Some(br#"{"retryCount": "three", "message": {"x": 1}}"#), &[]).await;
    env.produce(&dlq, Some(b"good"), Some(br#"{"ok": true}"#), &[(header::RETRY_COUNT, b"0")]).await;

    let worker = RunningWorker::start(settings(env, &scope, &db.url)).await;
    let resent = env.read_topic(&origin, 1, Duration::from_secs(30)).await;
    assert_eq!(resent.len(), 1, "the good record behind three poison ones flows");
    assert_eq!(resent[0].key.as_deref(), Some(&b"good"[..]));
    let mut rows = wait_parked(&db.pool, 3, Duration::from_secs(30)).await;
    // Parkings run concurrently: order by DLQ position, not by parking order.
    rows.sort_by_key(|r| r.dlq_offset);
    let reasons: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| {
            (r.key.as_deref().map(|k| std::str::from_utf8(k).unwrap()).unwrap(), r.error_message.as_deref().unwrap())
        })
        .collect();
    assert!(rows.iter().all(|r| r.reason == "poison" && r.source_topic == origin), "{rows:#?}");
    assert!(reasons[0].1.contains("\"abc\" is not a number"), "{reasons:?}");
    assert!(reasons[1].1.contains("negative retry count -1"), "{reasons:?}");
    assert!(reasons[2].1.contains("retry wrapper is malformed"), "{reasons:?}");
    assert_eq!(
        rows[2].payload.as_deref(),
        Some(&br#"{"retryCount": "three", "message": {"x": 1}}"#[..]),
        "a poison wrapper is kept as it came"
    );
    wait::until(Duration::from_secs(10), "all four DLQ offsets are committed", || async {
        env.group_caught_up(&scope.group, &dlq)
    })
    .await;
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_is_derived_from_the_dlq_name_when_no_header_names_it() {
    let env = test_env().await;
    let db = env.fresh_database().await;
    let scope = Scope::new(env);
    let (origin, dlq) = topic_pair(&scope, "payments", 1).await;
    // A record a foreign producer dead-lettered without any retry metadata.
    env.produce(&dlq, Some(b"p-1"), Some(b"pay 10"), &[("source", b"legacy-app")]).await;
    let worker = RunningWorker::start(settings(env, &scope, &db.url)).await;
    let resent = env.read_topic(&origin, 1, Duration::from_secs(30)).await;
    assert_eq!(resent.len(), 1, "re-sent to {origin}, derived from {dlq}");
    assert_eq!(resent[0].payload.as_deref(), Some(&b"pay 10"[..]));
    assert_eq!(resent[0].header_str("source"), Some("legacy-app"));
    assert_eq!(resent[0].header_str(header::RETRY_COUNT), Some("1"));
    assert_eq!(resent[0].header_str(header::ORIGINAL_TOPIC), Some(origin.as_str()));
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_wrapper_format_round_trips_through_the_worker() {
    let env = test_env().await;
    let db = env.fresh_database().await;
    let scope = Scope::new(env);
    let (origin, dlq) = topic_pair(&scope, "orders", 1).await;
    let inner = r#"{"email": "a@example.com",  "items": [1, 2]}"#;
    let wrapped = format!(
        r#"{{"retryCount": 1, "originalTopic": "{origin}", "errorKind": "transient", "errorMessage": "db down", "message": {inner}}}"#
    );
    env.produce(&dlq, Some(b"w"), Some(wrapped.as_bytes()), &[("traceparent", b"00-ab")]).await;
    let mut config = settings(env, &scope, &db.url);
    config.metadata_format = MetadataFormat::Wrapper;
    let worker = RunningWorker::start(config).await;

    let resent = env.read_topic(&origin, 1, Duration::from_secs(30)).await;
    assert_eq!(resent.len(), 1);
    let r = &resent[0];
    let m = r.retry.as_ref().expect("the re-sent record carries a wrapper");
    assert_eq!(m.source, MetadataSource::Wrapper);
    assert_eq!(m.retry_count, 2);
    assert_eq!(m.original_topic.as_deref(), Some(origin.as_str()));
    assert_eq!(m.error_message.as_deref(), Some("db down"));
    assert_eq!(r.payload.as_deref(), Some(inner.as_bytes()), "the inner message is byte-for-byte the original");
    assert_eq!(r.header(header::RETRY_COUNT), None, "wrapper format writes no retry headers");
    assert_eq!(r.header_str("traceparent"), Some("00-ab"));
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spring_dead_letter_record_is_redriven_to_the_origin_its_headers_name() {
    let env = test_env().await;
    let db = env.fresh_database().await;
    let scope = Scope::new(env);
    // Spring names its dead-letter topics `<topic>.DLT`: the name alone says nothing to our rule,
    // so the origin must come from the kafka_dlt-original-* headers.
    let origin = scope.topic("spring-orders");
    let dlt = format!("{origin}.DLT");
    env.create_topics(&[&origin, &dlt], 2).await;
    env.produce(
        &dlt,
        Some(b"s-1"),
        Some(br#"{"spring": true}"#),
        &[
            ("kafka_dlt-original-topic", origin.as_bytes()),
            ("kafka_dlt-original-partition", &1i32.to_be_bytes()),
            ("kafka_dlt-original-offset", &42i64.to_be_bytes()),
            ("kafka_dlt-exception-fqcn", b"org.springframework.dao.TransientDataAccessResourceException"),
            ("kafka_dlt-exception-message", b"connection refused"),
        ],
    )
    .await;
    let mut config = settings(env, &scope, &db.url);
    config.topic_pattern = format!("^{}-.*(-dlq|\\.DLT)$", scope.prefix);
    let worker = RunningWorker::start(config).await;

    let resent = env.read_topic(&origin, 1, Duration::from_secs(30)).await;
    assert_eq!(resent.len(), 1, "redriven to {origin}");
    let r = &resent[0];
    assert_eq!(r.payload.as_deref(), Some(&br#"{"spring": true}"#[..]));
    assert_eq!(r.header_str(header::RETRY_COUNT), Some("1"));
    assert_eq!(r.header_str(header::ORIGINAL_TOPIC), Some(origin.as_str()));
    assert_eq!(r.header_str(header::ORIGINAL_PARTITION), Some("1"));
    assert_eq!(r.header_str(header::ORIGINAL_OFFSET), Some("42"));
    assert_eq!(
        r.header_str(header::ERROR_MESSAGE),
        Some("org.springframework.dao.TransientDataAccessResourceException: connection refused")
    );
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_target_topic_is_parked_and_never_created() {
    let env = test_env().await;
    let db = env.fresh_database().await;
    let scope = Scope::new(env);
    let ghost = scope.topic("ghost");
    let dlq = dead_letter_topic(&ghost);
    env.create_topics(&[&dlq], 1).await;
    env.produce(&dlq, Some(b"g"), Some(b"boo"), &[(header::RETRY_COUNT, b"0"), (header::ERROR_KIND, b"transient")])
        .await;
    let worker = RunningWorker::start(settings(env, &scope, &db.url)).await;
    let rows = wait_parked(&db.pool, 1, Duration::from_secs(30)).await;
    assert_eq!(rows[0].reason, "missing_topic");
    assert_eq!(rows[0].source_topic, ghost);
    assert_eq!(rows[0].error_message.as_deref(), Some(format!("target topic {ghost} does not exist").as_str()));
    wait::until(Duration::from_secs(10), "the DLQ offset is committed", || async {
        env.group_caught_up(&scope.group, &dlq)
    })
    .await;
    worker.stop().await;
    assert!(!topic_exists(env, &ghost), "the worker must not create {ghost}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_due_sooner_is_not_held_up_by_an_earlier_one_on_the_same_partition() {
    let env = test_env().await;
    let db = env.fresh_database().await;
    let scope = Scope::new(env);
    let (origin, dlq) = topic_pair(&scope, "orders", 1).await;
    let worker = RunningWorker::start(settings(env, &scope, &db.url)).await;
    // Let the worker join its group so timing below measures scheduling, not start-up.
    wait::until(Duration::from_secs(30), "the worker has its partition", || async {
        worker.metrics.group.assigned_partitions.load(std::sync::atomic::Ordering::Relaxed) == 1
    })
    .await;

    let start = Instant::now();
    let now_ms = Utc::now().timestamp_millis();
    let slow = (now_ms + 20_000).to_string();
    let fast = (now_ms + 1_000).to_string();
    for (key, not_before) in [(&b"slow"[..], &slow), (&b"fast"[..], &fast)] {
        let headers = [
            (header::RETRY_COUNT, &b"0"[..]),
            (header::ORIGINAL_TOPIC, origin.as_bytes()),
            (header::NOT_BEFORE, not_before.as_bytes()),
        ];
        env.produce(&dlq, Some(key), Some(b"payload"), &headers).await;
    }

    let first = env.read_topic(&origin, 1, Duration::from_secs(5)).await;
    let elapsed = start.elapsed();
    assert_eq!(first.len(), 1, "the message due in 1 s arrived within 5 s");
    assert_eq!(first[0].key.as_deref(), Some(&b"fast"[..]), "the fast one came first");
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    assert!(elapsed >= Duration::from_millis(500), "not before its x-not-before: {elapsed:?}");
    // The slow one still waits, so nothing may be committed yet: offset 0 blocks the prefix.
    let committed = env.committed_offsets(&scope.group, &dlq);
    assert!(committed.get(&0).copied().unwrap_or(0) == 0, "committed past a waiting message: {committed:?}");

    let both = env.read_topic(&origin, 2, Duration::from_secs(30)).await;
    assert_eq!(both.len(), 2, "the slow one is sent when due");
    assert!(start.elapsed() >= Duration::from_secs(18), "the slow one waited its time: {:?}", start.elapsed());
    wait::until(Duration::from_secs(10), "both offsets are committed", || async {
        env.group_caught_up(&scope.group, &dlq)
    })
    .await;
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_topic_created_after_start_is_drained_within_seconds() {
    let env = test_env().await;
    let db = env.fresh_database().await;
    let scope = Scope::new(env);
    let worker = RunningWorker::start(settings(env, &scope, &db.url)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let (origin, dlq) = topic_pair(&scope, "late-comer", 2).await;
    env.produce(&dlq, Some(b"k"), Some(b"new topic"), &[(header::RETRY_COUNT, b"0")]).await;
    let started = Instant::now();
    let resent = env.read_topic(&origin, 1, Duration::from_secs(30)).await;
    assert_eq!(resent.len(), 1, "the new {dlq} is subscribed by pattern");
    assert!(started.elapsed() < Duration::from_secs(15), "picked up within seconds: {:?}", started.elapsed());
    worker.stop().await;
}

//! Dead letters written by others, against a real broker and a real database: the article's
//! reference implementation (`retryCount` / `originalTopic` headers) gets its count and origin
//! honoured, and a Kafka Connect sink that copies the original timestamp and appends its error
//! headers on every hop still gets the backoff between hops, with bounded headers.

use std::time::{Duration, Instant};

use integration_tests::dead_letters::{topic_pair, wait_parked};
use integration_tests::harness::dlq_worker::{settings, RunningWorker, Scope};
use integration_tests::test_env;
use rdkafka::message::{Header as KafkaHeader, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use reliable_messaging::dead_letter::Backoff;
use reliable_messaging::message::retry_metadata::header;
use reliable_messaging::parking::ParkReason;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_articles_retry_headers_are_honoured_count_and_origin() {
    let env = test_env().await;
    let db = env.fresh_database().await;
    let scope = Scope::new(env);
    let (registrations, dlq) = topic_pair(&scope, "registrations", 1).await;
    let (elsewhere, _) = topic_pair(&scope, "elsewhere", 1).await;

    // Count 2, origin as the DLQ's name says: re-sent as attempt 3, not 1.
    env.produce(
        &dlq,
        Some(b"k1"),
        Some(b"{\"n\":1}"),
        &[("originalTopic", registrations.as_bytes()), ("retryCount", b"2")],
    )
    .await;
    // An origin the DLQ's name does not say: honoured.
    env.produce(
        &dlq,
        Some(b"k2"),
        Some(b"{\"n\":2}"),
        &[("originalTopic", elsewhere.as_bytes()), ("retryCount", b"0")],
    )
    .await;
    // At the threshold: parked, not given two more attempts.
    env.produce(
        &dlq,
        Some(b"k3"),
        Some(b"{\"n\":3}"),
        &[("originalTopic", registrations.as_bytes()), ("retryCount", b"5")],
    )
    .await;

    let worker = RunningWorker::start(settings(env, &scope, &db.url)).await;
    let resent = env.read_topic(&registrations, 1, Duration::from_secs(30)).await;
    assert_eq!(resent.len(), 1, "one re-send to {registrations}");
    assert_eq!(resent[0].key.as_deref(), Some(&b"k1"[..]));
    assert_eq!(resent[0].header_str(header::RETRY_COUNT), Some("3"), "the article's count is continued");
    let moved = env.read_topic(&elsewhere, 1, Duration::from_secs(30)).await;
    assert_eq!(moved.len(), 1, "the named origin, not the DLQ's name");
    assert_eq!(moved[0].key.as_deref(), Some(&b"k2"[..]));
    assert_eq!(moved[0].header_str(header::RETRY_COUNT), Some("1"));
    let parked = wait_parked(&db.pool, 1, Duration::from_secs(30)).await;
    assert_eq!(parked[0].key.as_deref(), Some(&b"k3"[..]));
    assert_eq!(parked[0].reason, ParkReason::RetriesExhausted.as_str());
    assert_eq!(parked[0].retry_count, 5);
    worker.stop().await;
}

/// Plays a Kafka Connect sink with a dead-letter queue (default settings, no context headers
/// of ours updated): every record it gets from the original topic fails, and it writes it to
/// the DLQ with the *original record's timestamp* and the headers it got, plus its own error
/// headers appended (a stack trace of ~4.5 KB each time). The worker must still wait its
/// backoff between hops and carry bounded headers; the record is parked after 5 re-sends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_sink_that_copies_timestamps_still_gets_the_backoff_between_hops() {
    const DELAY: Duration = Duration::from_millis(1_000);
    let env = test_env().await;
    let db = env.fresh_database().await;
    let scope = Scope::new(env);
    let (origin, dlq) = topic_pair(&scope, "connect-sink", 1).await;
    let mut worker_settings = settings(env, &scope, &db.url);
    worker_settings.retry_schedule = Backoff::constant(DELAY);
    let worker = RunningWorker::start(worker_settings).await;

    let producer = env.producer();
    let an_hour_ago = chrono::Utc::now().timestamp_millis() - 3_600_000;
    let stack_trace =
        "\tat org.apache.kafka.connect.runtime.WorkerSinkTask.deliver(WorkerSinkTask.java:1)\n".repeat(55);
    let mut headers: Vec<(String, Vec<u8>)> = Vec::new();
    let mut dead_lettered_at = Vec::new();
    let mut resends = 0usize;
    for hop in 0..=5 {
        // Connect appends its error context to whatever headers the record had.
        headers.push(("__connect.errors.topic".into(), origin.clone().into_bytes()));
        headers.push((
            "__connect.errors.exception.class.name".into(),
            b"org.apache.kafka.connect.errors.DataException".to_vec(),
        ));
        headers
            .push(("__connect.errors.exception.stacktrace".into(), format!("hop {hop}\n{stack_trace}").into_bytes()));
        let mut owned = OwnedHeaders::new();
        for (k, v) in &headers {
            owned = owned.insert(KafkaHeader { key: k, value: Some(v) });
        }
        let record = FutureRecord::<[u8], [u8]>::to(&dlq)
            .key(b"sink-key")
            .payload(b"{\"row\": 1}")
            .headers(owned)
            .timestamp(an_hour_ago);
        producer.send(record, Duration::from_secs(10)).await.map_err(|(e, _)| e).expect("dead-letter");
        dead_lettered_at.push(Instant::now());
        if hop == 5 {
            break;
        }
        // The re-send the worker makes; the sink fails it again.
        let got = env.read_topic(&origin, hop + 1, Duration::from_secs(30)).await;
        assert_eq!(got.len(), hop + 1, "re-send {} arrived", hop + 1);
        let waited = dead_lettered_at[hop].elapsed();
        // Connect's timestamp says the failure was an hour ago; the worker must not believe it.
        assert!(
            waited >= DELAY - Duration::from_millis(100),
            "hop {hop} re-sent after {waited:?}, before the {DELAY:?} backoff"
        );
        resends += 1;
        let latest = got.last().expect("one");
        let size: usize = latest.headers.iter().map(|h| h.key.len() + h.value.as_ref().map_or(0, Vec::len)).sum();
        assert!(size < 6_000, "hop {hop}: {size} bytes of headers carried forward");
        headers = latest.headers.iter().map(|h| (h.key.clone(), h.value.clone().unwrap_or_default())).collect();
    }
    assert_eq!(resends, 5);
    let parked = wait_parked(&db.pool, 1, Duration::from_secs(30)).await;
    assert_eq!(parked[0].reason, ParkReason::RetriesExhausted.as_str());
    assert_eq!(parked[0].retry_count, 5);
    worker.stop().await;
}

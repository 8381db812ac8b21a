//! The dlq-worker when things keep going wrong: a message that fails after every redrive ends in
//! the parking lot again (never a loop), a database outage delays parking without losing the
//! message or holding up re-sends, and a large backlog pauses the partitions instead of filling
//! memory.

use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::Utc;
use integration_tests::dead_letters::{topic_pair, wait_parked};
use integration_tests::harness::dlq_worker::{settings, RunningWorker, Scope};
use integration_tests::kafka::produce_with;
use integration_tests::tcp_proxy::{database_socket_addr, TcpProxy};
use integration_tests::{test_env, wait};
use reliable_messaging::consumer::{ConsumerSettings, ReliableConsumer};
use reliable_messaging::dead_letter::Backoff;
use reliable_messaging::dead_letter::DeadLetterPublisher;
use reliable_messaging::message::retry_metadata::{header, MetadataFormat};
use reliable_messaging::message::REQUEST_ID_HEADER;
use reliable_messaging::parking::{ParkedState, ParkingLot, RedriveOutcome, Redriver};
use reliable_messaging::producer::DurableProducer;
use reliable_messaging::{Delivery, Handler, KafkaSettings, Outcome};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// A consumer whose every attempt fails transiently, as with a dependency that never recovers.
struct AlwaysFailing;

impl Handler for AlwaysFailing {
    async fn handle(&self, _delivery: &Delivery) -> Outcome {
        Outcome::transient("dependency still down")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_keeps_failing_is_parked_again_after_a_redrive_and_never_loops() {
    let env = test_env().await;
    let db = env.fresh_database().await;
    let scope = Scope::new(env);
    let (origin, dlq) = topic_pair(&scope, "orders", 1).await;

    let kafka = KafkaSettings::new(env.kafka_bootstrap.clone(), "failing-consumer");
    let producer = DurableProducer::new(&kafka, Duration::from_secs(10)).unwrap();
    let dead_letters = DeadLetterPublisher::new(
        producer.clone(),
        MetadataFormat::Headers,
        Backoff::constant(Duration::from_millis(200)),
    );
    let mut consumer_settings = ConsumerSettings::new(format!("{}-consumer", scope.prefix), &[origin.as_str()]);
    consumer_settings.in_place_retries = 0;
    let consumer = ReliableConsumer::new(&kafka, consumer_settings, AlwaysFailing, dead_letters).unwrap();
    let consumer_stop = CancellationToken::new();
    let consumer_task = tokio::spawn(consumer.run(consumer_stop.clone()));
    let worker = RunningWorker::start(settings(env, &scope, &db.url)).await;

    let request_id = Uuid::new_v4().to_string();
    env.produce(&origin, Some(b"k"), Some(b"order 1"), &[(REQUEST_ID_HEADER, request_id.as_bytes())]).await;
    // First attempt + 5 re-sends fail, the sixth DLQ record (count 5) is parked.
    let rows = wait_parked(&db.pool, 1, Duration::from_secs(60)).await;
    assert_eq!((rows[0].retry_count, rows[0].reason.as_str()), (5, "retries_exhausted"));
    assert_eq!(rows[0].error_message.as_deref(), Some("dependency still down; retry budget of 5 exhausted"));

    let lot = ParkingLot::new(db.pool.clone());
    let redriver = Redriver::new(lot.clone(), producer, MetadataFormat::Headers);
    let redriven = redriver.redrive(rows[0].id, "test", Some("dependency fixed (it was not)")).await.unwrap();
    assert!(matches!(redriven, RedriveOutcome::Redriven { .. }), "{redriven:?}");

    // The redriven copy gets a fresh budget, fails 6 more times, and is parked again as a new row.
    let rows = wait_parked(&db.pool, 2, Duration::from_secs(60)).await;
    assert_eq!(rows[0].state, ParkedState::Redriven);
    assert_eq!(rows[1].state, ParkedState::Parked);
    assert_eq!(rows[1].retry_count, 5);
    assert_eq!(rows[1].first_failure_at, rows[0].first_failure_at, "the failure history survives the redrive");
    assert_eq!(lot.audit_trail(rows[0].id).await.unwrap().len(), 1);

    // And then it stays quiet: no loop between the topic, the DLQ and the worker.
    let written = |t: &str| env.end_offsets(t).values().sum::<i64>();
    let (origin_before, dlq_before) = (written(&origin), written(&dlq));
    assert_eq!(origin_before, 12, "1 original + 5 re-sends, 1 redrive + 5 re-sends");
    assert_eq!(dlq_before, 12, "6 failures before each parking");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!((written(&origin), written(&dlq)), (origin_before, dlq_before), "nothing moves any more");

    worker.stop().await;
    consumer_stop.cancel();
    consumer_task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_holds_re_sends_and_delays_parking_without_losing_either() {
    let env = test_env().await;
    let db = env.fresh_database().await;
    let scope = Scope::new(env);
    let (origin, dlq) = topic_pair(&scope, "orders", 1).await;
    let proxy = TcpProxy::start(database_socket_addr(&db.url)).await;
    let worker = RunningWorker::start(settings(env, &scope, &proxy.rewrite_url(&db.url))).await;

    proxy.cut();
    let request_id = Uuid::new_v4().to_string();
    env.produce(&dlq, Some(b"poison"), Some(b"x"), &[(header::RETRY_COUNT, b"0"), (header::ERROR_KIND, b"permanent")])
        .await;
    env.produce(
        &dlq,
        Some(b"retry-me"),
        Some(b"y"),
        &[(header::RETRY_COUNT, b"0"), (header::ERROR_KIND, b"transient"), (REQUEST_ID_HEADER, request_id.as_bytes())],
    )
    .await;

    // The consumers a re-send would go to are paused for the same outage: re-sending now
    // would only spend one of the message's retries. The worker holds it instead.
    wait::until(Duration::from_secs(15), "parking has failed and is being retried", || async {
        worker.metrics.parking_failures.load(Ordering::Relaxed) >= 2
    })
    .await;
    assert!(worker.metrics.database_down.load(Ordering::Relaxed), "the worker's probe sees the outage");
    assert!(
        env.read_topic(&origin, 1, Duration::from_secs(3)).await.is_empty(),
        "no re-send, no retry spent, while the database is down"
    );
    assert!(integration_tests::dead_letters::parked(&db.pool).await.is_empty());
    let committed = env.committed_offsets(&scope.group, &dlq);
    assert_eq!(committed.get(&0).copied().unwrap_or(0), 0, "the unparked message blocks the commit: {committed:?}");

    proxy.restore();
    let resent = env.read_topic(&origin, 1, Duration::from_secs(30)).await;
    assert_eq!(resent.len(), 1, "re-sent once the database answers");
    assert_eq!(resent[0].header_str(header::RETRY_COUNT), Some("1"), "one retry, not one per probe");
    let rows = wait_parked(&db.pool, 1, Duration::from_secs(30)).await;
    assert_eq!(rows[0].key.as_deref(), Some(&b"poison"[..]));
    wait::until(Duration::from_secs(10), "both offsets are committed", || async {
        env.group_caught_up(&scope.group, &dlq)
    })
    .await;
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_backlog_pauses_the_partitions_until_it_drains() {
    let env = test_env().await;
    let db = env.fresh_database().await;
    let scope = Scope::new(env);
    let (origin, dlq) = topic_pair(&scope, "orders", 2).await;
    let due = (Utc::now().timestamp_millis() + 10_000).to_string();
    let producer = env.producer();
    for i in 0..40 {
        let key = format!("k-{i}");
        let headers = [(header::RETRY_COUNT, &b"0"[..]), (header::NOT_BEFORE, due.as_bytes())];
        produce_with(&producer, &dlq, Some(key.as_bytes()), Some(b"backlog"), &headers).await;
    }
    let mut config = settings(env, &scope, &db.url);
    config.max_scheduled = 10;
    config.resume_below = 5;
    let worker = RunningWorker::start(config).await;
    wait::until(Duration::from_secs(30), "the partitions are paused", || async {
        worker.metrics.paused_partitions.load(Ordering::Relaxed) > 0
    })
    .await;
    // While paused (everything waits for its due time), nothing more is read.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let waiting = worker.metrics.scheduled.load(Ordering::Relaxed);
    eprintln!("waiting while paused: {waiting}");
    assert!(waiting < 40, "pausing bounds what is held in memory: {waiting} waiting");
    assert!(worker.metrics.paused_partitions.load(Ordering::Relaxed) > 0, "still paused until the backlog drains");

    let resent = env.read_topic(&origin, 40, Duration::from_secs(60)).await;
    assert_eq!(resent.len(), 40, "everything is re-sent once the backlog drains");
    wait::until(Duration::from_secs(10), "the partitions are resumed and all is committed", || async {
        worker.metrics.paused_partitions.load(Ordering::Relaxed) == 0 && env.group_caught_up(&scope.group, &dlq)
    })
    .await;
    assert!(worker.metrics.pauses.load(Ordering::Relaxed) >= 1);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebalance_hands_waiting_messages_to_the_new_owner_without_losing_any() {
    let env = test_env().await;
    let db = env.fresh_database().await;
    let scope = Scope::new(env);
    let (origin, dlq) = topic_pair(&scope, "orders", 4).await;
    let due = (Utc::now().timestamp_millis() + 8_000).to_string();
    let producer = env.producer();
    for i in 0..20 {
        let (key, payload) = (format!("k-{i}"), format!("m-{i}"));
        let headers = [(header::RETRY_COUNT, &b"0"[..]), (header::NOT_BEFORE, due.as_bytes())];
        produce_with(&producer, &dlq, Some(key.as_bytes()), Some(payload.as_bytes()), &headers).await;
    }
    let first = RunningWorker::start(settings(env, &scope, &db.url)).await;
    wait::until(Duration::from_secs(30), "the first worker holds all 20", || async {
        first.metrics.scheduled.load(Ordering::Relaxed) == 20
    })
    .await;

    let second = RunningWorker::start(settings(env, &scope, &db.url)).await;
    wait::until(Duration::from_secs(30), "the partitions are shared", || async {
        let (a, b) = (
            first.metrics.group.assigned_partitions.load(Ordering::Relaxed),
            second.metrics.group.assigned_partitions.load(Ordering::Relaxed),
        );
        a > 0 && b > 0 && a + b == 4
    })
    .await;
    assert!(first.metrics.scheduled.load(Ordering::Relaxed) < 20, "revoked partitions' waiting messages were dropped");

    let resent = env.read_topic(&origin, 20, Duration::from_secs(60)).await;
    let distinct: std::collections::BTreeSet<_> = resent.iter().filter_map(|r| r.payload.clone()).collect();
    assert_eq!(distinct.len(), 20, "every message is re-sent by one owner or the other");
    wait::until(Duration::from_secs(15), "every DLQ offset is committed", || async {
        env.group_caught_up(&scope.group, &dlq)
    })
    .await;
    first.stop().await;
    second.stop().await;
}

//! The dlq-worker's flood limit on parking, against a real broker and database: a bad deploy
//! upstream that makes every message fail permanently must not fill the parking lot. At most
//! the limit is parked in a row, the worker halts and says why, and a restart after the fix
//! (here: the limit raised) parks the rest, each record once.

use std::sync::atomic::Ordering;
use std::time::Duration;

use integration_tests::dead_letters::{topic_pair, wait_parked};
use integration_tests::harness::dlq_worker::{settings, RunningWorker, Scope};
use integration_tests::{test_env, wait};
use reliable_messaging::dead_letter::DeadLetterLimit;
use reliable_messaging::message::retry_metadata::header;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_permanent_failures_parks_at_most_the_limit_then_halts() {
    const FLOOD: usize = 150;
    const LIMIT: u32 = 100;
    let env = test_env().await;
    let db = env.fresh_database().await;
    let scope = Scope::new(env);
    let (_origin, dlq) = topic_pair(&scope, "flooded", 1).await;
    let producer = env.producer();
    let payloads: Vec<String> = (0..FLOOD).map(|i| format!("{{\"n\": {i}}}")).collect();
    let headers: [(&str, &[u8]); 2] = [(header::RETRY_COUNT, b"0"), (header::ERROR_KIND, b"permanent")];
    futures::future::join_all(
        payloads
            .iter()
            .map(|p| integration_tests::kafka::produce_with(&producer, &dlq, Some(b"k"), Some(p.as_bytes()), &headers)),
    )
    .await;

    let mut worker_settings = settings(env, &scope, &db.url);
    worker_settings.park_limit = DeadLetterLimit { max_consecutive: LIMIT, ..DeadLetterLimit::default() };
    let worker = RunningWorker::start(worker_settings.clone()).await;
    let halted = worker.metrics.clone();
    wait::until(Duration::from_secs(60), "the worker halts", || {
        let halted = halted.halted.lock().unwrap().is_some();
        async move { halted }
    })
    .await;
    let ready = reqwest::get(worker.url("/readyz")).await.unwrap();
    assert_eq!(ready.status().as_u16(), 503);
    let body = ready.text().await.unwrap();
    assert!(body.contains("halted") && body.contains("consecutive"), "{body}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let parked = integration_tests::dead_letters::parked(&db.pool).await.len();
    assert_eq!(parked, LIMIT as usize, "the limit, not the flood, reached the parking lot");
    assert_eq!(worker.metrics.consumed.load(Ordering::Relaxed), u64::from(LIMIT));
    worker.stop().await;
    let committed: i64 = env.committed_offsets(&scope.group, &dlq).values().sum();
    assert_eq!(committed, i64::from(LIMIT), "nothing past the tripping record is committed");

    worker_settings.park_limit = DeadLetterLimit::disabled();
    let restarted = RunningWorker::start(worker_settings).await;
    let rows = wait_parked(&db.pool, FLOOD, Duration::from_secs(60)).await;
    assert_eq!(rows.len(), FLOOD, "the rest is parked after the restart, each record once");
    restarted.stop().await;
}

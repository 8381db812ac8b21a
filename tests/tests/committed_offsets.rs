//! A group's committed offsets never move backwards: two registration-service instances share
//! a topic, partitions move between them under load, both are stopped gracefully, and every
//! partition's committed offset is its end offset, so the next start redelivers nothing.
//!
//! The defect this catches: an instance that remembered every partition it had ever committed
//! wrote those stale offsets again in its final commit, over the newer ones of the instance that
//! had taken the partitions over (committed 100 went back to 50, and 50 records came again).

use std::collections::HashMap;
use std::time::Duration;

use integration_tests::harness::registration::{service_process_env, spawn_service_process};
use integration_tests::harness::{free_port, ServiceProcess};
use integration_tests::registrations::{produce_events, sample_event};
use integration_tests::{test_env, wait, TestEnv};
use reliable_messaging::dead_letter::dead_letter_topic;

const PARTITIONS: i32 = 4;
const GROUP: &str = "registration-service";

/// One counter or gauge of a service's `/metrics`, `None` while it does not answer.
async fn metric(port: u16, name: &str) -> Option<u64> {
    integration_tests::metrics::read(port, name).await.map(|v| v as u64)
}

async fn assigned(port: u16) -> u64 {
    metric(port, "registration_service_assigned_partitions").await.unwrap_or(0)
}

/// An instance on a port known in advance, so the test can read its metrics.
fn start_instance(base: &[(&'static str, String)], port: u16) -> ServiceProcess {
    let addr = format!("127.0.0.1:{port}");
    // Small batches: more commits, so more chances for a commit to race a rebalance.
    spawn_service_process(base, &[("REGISTRATION_SERVICE_ADDR", addr.as_str()), ("BATCH_SIZE", "25")])
}

fn describe(env: &TestEnv, topic: &str) -> String {
    let mut ends: Vec<_> = env.end_offsets(topic).into_iter().collect();
    ends.sort();
    let committed = env.committed_offsets(GROUP, topic);
    ends.iter()
        .map(|(p, end)| format!("p{p}: end {end}, committed {:?}", committed.get(p)))
        .collect::<Vec<_>>()
        .join("; ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_equal_end_offsets_after_rebalances_and_graceful_stops() {
    let env = test_env().await;
    let db = env.fresh_database().await;
    let topic = env.unique_topic("registrations");
    env.create_topics(&[&topic, &dead_letter_topic(&topic)], PARTITIONS).await;
    let base = service_process_env(env, &topic, GROUP, &db.url);

    // A alone drains a first load, committing every partition.
    produce_events(env, &topic, &(0..400).map(|_| sample_event()).collect::<Vec<_>>()).await;
    let (port_a, port_b, port_c) = (free_port(), free_port(), free_port());
    let mut a = start_instance(&base, port_a);
    wait::until(Duration::from_secs(60), "A drained the first load", || async { env.group_caught_up(GROUP, &topic) })
        .await;

    // B joins while records keep arriving, and takes partitions over from A.
    let mut b = start_instance(&base, port_b);
    let producing = {
        let topic = topic.clone();
        tokio::spawn(async move {
            for _ in 0..20 {
                produce_events(env, &topic, &(0..20).map(|_| sample_event()).collect::<Vec<_>>()).await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    wait::until(Duration::from_secs(60), "B owns partitions", || async { assigned(port_b).await > 0 }).await;
    producing.await.expect("producer task");
    // More load once B surely owns its partitions: they move past what A last committed.
    produce_events(env, &topic, &(0..400).map(|_| sample_event()).collect::<Vec<_>>()).await;
    wait::until(Duration::from_secs(60), "A and B drained everything", || async { env.group_caught_up(GROUP, &topic) })
        .await;
    println!("drained by A and B: {}", describe(env, &topic));

    // Graceful stops: B first (A gets its partitions back), then A.
    assert!(b.terminate(Duration::from_secs(30)).await, "B stops cleanly\n{}", b.log());
    wait::until(Duration::from_secs(60), "A owns every partition again", || async {
        assigned(port_a).await == PARTITIONS as u64
    })
    .await;
    assert!(a.terminate(Duration::from_secs(30)).await, "A stops cleanly\n{}", a.log());

    let ends = env.end_offsets(&topic);
    let committed = env.committed_offsets(GROUP, &topic);
    let behind: HashMap<i32, (Option<i64>, i64)> = ends
        .iter()
        .filter(|(p, end)| committed.get(p) != Some(end))
        .map(|(p, end)| (*p, (committed.get(p).copied(), *end)))
        .collect();
    assert!(
        behind.is_empty(),
        "committed offsets moved backwards after the graceful stops (partition: (committed, end)): {behind:?}\n\
         state: {}",
        describe(env, &topic)
    );

    // A third start finds nothing to redeliver.
    let mut c = start_instance(&base, port_c);
    wait::until(Duration::from_secs(60), "C owns every partition", || async {
        assigned(port_c).await == PARTITIONS as u64
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let redelivered = metric(port_c, "registration_service_consumed_total").await.expect("C's metrics answer");
    assert!(c.terminate(Duration::from_secs(30)).await, "C stops cleanly\n{}", c.log());
    assert_eq!(redelivered, 0, "a start after graceful stops redelivered {redelivered} records");
}

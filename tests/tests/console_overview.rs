//! The console's overview in a real headless Chromium, against the real broker, database and
//! registration-service: consumer lag per partition, compared with Kafka's own end offsets
//! minus the group's committed offsets while the consumer is paused on a database cut (and 0
//! once it drains; "unknown" for a service that does not answer), and the hourly chart of
//! dead letters and parkings, whose current hour must hold exactly what the test dead-lettered
//! and what of that was parked; and the dlq-worker's own lag on its dead-letter topics.
//!
//! Needs `chromium` and `chromium-driver` (scripts/ensure-chromium.sh, run by scripts/test.sh).
//! With `CONSOLE_SCREENSHOTS_DIR` set it saves the README's overview screenshot there.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{Timelike, Utc};
use integration_tests::harness::dlq_worker::{settings, RunningWorker, Scope};
use integration_tests::harness::free_port;
use integration_tests::harness::registration::{service_settings, InProcessService};
use integration_tests::registrations::sample_event;
use integration_tests::tcp_proxy::{database_socket_addr, TcpProxy};
use integration_tests::webdriver::Browser;
use integration_tests::{test_env, wait, TestEnv};
use rdkafka::producer::FutureRecord;
use reliable_messaging::dead_letter::dead_letter_topic;
use reliable_messaging::message::retry_metadata::header;
use reliable_messaging::service::Secret;

const ALICE: &str = "alice-token-0123456789abcdef";

/// The lag rows the overview shows for `topic`: partition -> lag.
async fn lag_on_page(browser: &Browser, topic: &str) -> HashMap<i32, i64> {
    let mut shown = HashMap::new();
    for row in browser.find_all(&format!("tr.lag[data-topic='{topic}']")).await.unwrap() {
        let partition = row.attribute("data-partition").await.unwrap().unwrap().parse().unwrap();
        let lag = row.find("td.lag-value").await.unwrap().text().await.unwrap().parse().unwrap();
        shown.insert(partition, lag);
    }
    shown
}

/// What Kafka says: end offset minus the group's committed offset (0 where none is committed:
/// a new topic starts at 0), per partition.
fn lag_in_kafka(env: &TestEnv, group: &str, topic: &str) -> HashMap<i32, i64> {
    let committed = env.committed_offsets(group, topic);
    env.end_offsets(topic).into_iter().map(|(p, end)| (p, end - committed.get(&p).copied().unwrap_or(0))).collect()
}

/// The `data-count` of the chart's bars of `series`, oldest hour first.
async fn bars(browser: &Browser, series: &str) -> Vec<u64> {
    let mut counts = Vec::new();
    for bar in browser.find_all(&format!("#chart rect.bar.{series}")).await.unwrap() {
        counts.push(bar.attribute("data-count").await.unwrap().unwrap().parse().unwrap());
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_overview_shows_true_lag_per_partition_and_charts_this_hours_dead_letters_and_parkings() {
    assert!(Browser::available(), "chromium and chromedriver are needed: run scripts/ensure-chromium.sh");
    let env = test_env().await;
    let db = env.fresh_database().await;
    let scope = Scope::new(env);
    let topic = scope.topic("registrations");
    env.create_topics(&[&topic, &dead_letter_topic(&topic)], 2).await;
    let proxy = TcpProxy::start(database_socket_addr(&db.url)).await;
    let group = format!("{}-rs", scope.prefix);
    let service = InProcessService::start(service_settings(env, &topic, &group, &proxy.rewrite_url(&db.url))).await;
    let mut ws = settings(env, &scope, &db.url);
    ws.operator.named_tokens = Some(Secret::new(format!("alice:{ALICE}")));
    ws.operator.readyz_urls = vec![
        ("registration-service".into(), format!("http://127.0.0.1:{}/readyz", service.http_port)),
        // Nothing listens here: its lag is unknown, not 0.
        ("gone".into(), format!("http://127.0.0.1:{}/readyz", free_port())),
    ];
    let worker = RunningWorker::start(ws).await;
    let base = worker.url("");
    let overview = format!("{base}/console");

    let browser = Browser::start().await.expect("headless chromium");
    browser.goto(&overview).await.unwrap();
    browser.find("#token").await.unwrap().send_keys(ALICE).await.unwrap();
    browser.find("#login").await.unwrap().click().await.unwrap();
    browser.wait_for_text("#actor", "alice", Duration::from_secs(30)).await.expect("logged in as alice");

    // Both partitions assigned and the lag computed: the page lists them, at 0.
    let b = &browser;
    let idle = wait::within(Duration::from_secs(60), || async {
        b.goto(&overview).await.unwrap();
        lag_on_page(b, &topic).await == HashMap::from([(0, 0), (1, 0)])
    })
    .await;
    assert!(idle, "the overview never listed both partitions at lag 0: {:?}", lag_on_page(b, &topic).await);
    let gone = browser.find("tr.lag-unknown[data-service='gone']").await.expect("the silent service's row");
    assert!(gone.text().await.unwrap().contains("unknown"), "a service that does not answer has unknown lag");

    // A backlog behind a paused consumer: the database is cut, then 3 sign-ups land on
    // partition 0 and 5 on partition 1. Nothing drains, so page and Kafka can be compared.
    proxy.cut();
    let producer = env.producer();
    for (partition, n) in [(0, 3), (1, 5)] {
        for _ in 0..n {
            let event = sample_event();
            let payload = event.to_json();
            let record = FutureRecord::to(&topic).partition(partition).key(event.email.as_bytes()).payload(&payload);
            producer.send(record, Duration::from_secs(10)).await.map_err(|(e, _)| e).expect("produce");
        }
    }
    // (page, Kafka) at the last look, for the failure message.
    let last = std::sync::Mutex::new((HashMap::new(), HashMap::new()));
    let shown_true = wait::within(Duration::from_secs(60), || {
        let (topic, group, overview, last) = (&topic, &group, &overview, &last);
        async move {
            b.goto(overview).await.unwrap();
            let paused = b.find("#services").await.unwrap().text().await.unwrap().contains("paused: database down");
            let page = lag_on_page(b, topic).await;
            let kafka = lag_in_kafka(env, group, topic);
            let matches = paused && page == kafka && kafka.values().all(|l| *l > 0);
            *last.lock().unwrap() = (page, kafka);
            matches
        }
    })
    .await;
    let last = last.into_inner().unwrap();
    assert!(shown_true, "the page's lag (left) is not Kafka's (right) while paused: {last:?}");
    assert_eq!(last.1.values().sum::<i64>(), 8, "the backlog is the 8 sign-ups: {last:?}");
    browser.save_screenshot("overview-lag").await;

    // The database is back: the consumer drains, commits, and the page says 0 again.
    proxy.restore();
    let drained = wait::within(Duration::from_secs(90), || async {
        b.goto(&overview).await.unwrap();
        env.group_caught_up(&group, &topic) && lag_on_page(b, &topic).await == HashMap::from([(0, 0), (1, 0)])
    })
    .await;
    assert!(drained, "after the drain the page shows {:?}", lag_on_page(b, &topic).await);
    assert_eq!(db.count("SELECT COUNT(*) FROM users").await, 8, "the backlog was stored");

    // Dead letters: 4 the worker re-sends (retry 1 of 5) and 3 it parks (retries spent).
    let origin = scope.topic("orders");
    let dlq = dead_letter_topic(&origin);
    env.create_topics(&[&origin, &dlq], 1).await;
    let hour_before = Utc::now().hour();
    for (n, retries) in [(4, b"1"), (3, b"5")] {
        for _ in 0..n {
            let headers: [(&str, &[u8]); 2] = [("originalTopic", origin.as_bytes()), ("retryCount", retries)];
            env.produce(&dlq, Some(b"k"), Some(b"{}"), &headers).await;
        }
    }
    let settled = wait::within(Duration::from_secs(60), || async {
        db.count("SELECT COUNT(*) FROM parked_messages").await == 3
            && env.end_offsets(&origin).values().sum::<i64>() == 4
            && env.group_caught_up(&scope.group, &dlq)
    })
    .await;
    assert!(settled, "the worker did not re-send 4 and park 3");

    // The worker's own lag: 2 dead letters due in an hour wait uncommitted on their topic, so
    // its row must show Kafka's 2 there (and 0 on the drained one). They are not re-sent yet,
    // so the chart does not count them.
    let later = scope.topic("later");
    let later_dlq = dead_letter_topic(&later);
    env.create_topics(&[&later, &later_dlq], 1).await;
    let due = (Utc::now() + chrono::TimeDelta::hours(1)).timestamp_millis().to_string();
    for _ in 0..2 {
        let headers: [(&str, &[u8]); 3] = [
            (header::ORIGINAL_TOPIC, later.as_bytes()),
            (header::RETRY_COUNT, b"1"),
            (header::NOT_BEFORE, due.as_bytes()),
        ];
        env.produce(&later_dlq, Some(b"k"), Some(b"{}"), &headers).await;
    }
    let worker_lag = |topic: String| async move {
        let mut shown = HashMap::new();
        for row in b.find_all(&format!("tr.lag[data-service='dlq-worker'][data-topic='{topic}']")).await.unwrap() {
            let lag: i64 = row.find("td.lag-value").await.unwrap().text().await.unwrap().parse().unwrap();
            shown.insert(row.attribute("data-partition").await.unwrap().unwrap().parse::<i32>().unwrap(), lag);
        }
        shown
    };
    let own_true = wait::within(Duration::from_secs(60), || async {
        b.goto(&overview).await.unwrap();
        let waiting = worker_lag(later_dlq.clone()).await;
        waiting == HashMap::from([(0, 2)])
            && waiting == lag_in_kafka(env, &scope.group, &later_dlq)
            && worker_lag(dlq.clone()).await == HashMap::from([(0, 0)])
    })
    .await;
    assert!(
        own_true,
        "the worker's lag on the page {:?} is not Kafka's {:?}",
        worker_lag(later_dlq.clone()).await,
        lag_in_kafka(env, &scope.group, &later_dlq)
    );

    browser.goto(&overview).await.unwrap();
    let hour_after = Utc::now().hour();
    let (dead, parked) = (bars(&browser, "dead-lettered").await, bars(&browser, "parked").await);
    assert_eq!((dead.len(), parked.len()), (12, 12), "twelve hours of two series");
    let counts = browser.find("#counts").await.unwrap().text().await.unwrap();
    let counts: Vec<&str> = counts.split_whitespace().collect();
    assert_eq!(counts, ["parked", "redriven", "discarded", "3", "0", "0"], "every state, 0 included");
    // The hour may have turned while the test ran: then the 7 are in the last two buckets.
    let recent = if hour_before == hour_after { 1 } else { 2 };
    let sum_recent = |v: &[u64]| v[v.len() - recent..].iter().sum::<u64>();
    assert_eq!((sum_recent(&dead), sum_recent(&parked)), (7, 3), "dead-lettered {dead:?}, parked {parked:?}");
    assert_eq!((dead.iter().sum::<u64>(), parked.iter().sum::<u64>()), (7, 3), "nothing in earlier hours");
    if recent == 1 {
        let bar = browser.find_all("#chart rect.bar.dead-lettered").await.unwrap().pop().unwrap();
        let title = bar.find("title").await.unwrap().property("textContent").await.unwrap();
        assert!(title.ends_with(": 7 dead-lettered"), "the bar's text alternative: {title}");
        let row = browser.find_all("#chart-data tr").await.unwrap().pop().unwrap();
        let row = row.property("textContent").await.unwrap();
        assert!(row.ends_with("UTC73"), "the table's current hour: 7 dead-lettered, 3 parked: {row}");
        // The parked bar opens the hour's parked messages: the three, in the time window.
        let link = browser.find_all("#chart a.hour-messages").await.unwrap().pop().expect("a link on the parked bar");
        let href = link.attribute("href").await.unwrap().unwrap();
        assert!(href.contains("since=") && href.contains("until="), "{href}");
        browser.goto(&format!("{base}{href}")).await.unwrap();
        let rows = browser.find_all("#messages tr").await.unwrap().len();
        assert_eq!(rows, 1 + 3, "the header and the three parked this hour ({href})");
        browser.goto(&overview).await.unwrap();
    }
    browser.scroll_to("#lag").await.unwrap();
    browser.save_screenshot("overview").await;

    browser.close().await;
    worker.stop().await;
    service.stop().await;
}

/// The chart's count is exact across a crash: a dead letter logged, then redelivered (the
/// worker died before committing its offset) and logged again, counts once, in its own hour.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_dead_letter_counts_once_in_the_hour_it_was_written() {
    let env = test_env().await;
    let db = env.fresh_database().await;
    let written = Utc::now() - chrono::TimeDelta::hours(2);
    let delivery = |offset| reliable_messaging::Delivery {
        topic: "orders-dlq".into(),
        partition: 0,
        offset,
        key: None,
        payload: None,
        headers: vec![],
        timestamp_ms: Some(written.timestamp_millis()),
        retry: None,
        retry_metadata_error: None,
    };
    for offset in [7, 7, 8] {
        dlq_worker::dead_letter_log::record(&db.pool, &delivery(offset)).await.expect("log the dead letter");
    }
    let first = dlq_worker::dead_letter_log::first_hour(Utc::now(), 12);
    let hours = dlq_worker::dead_letter_log::per_hour(&db.pool, first, 12).await.unwrap();
    let mut expected = vec![0; 12];
    // Two hours ago is bucket 9 of 12 (the last, 11, is the current hour).
    expected[9] = 2;
    assert_eq!(hours, expected, "offsets 7 (twice) and 8: two dead letters, two hours ago");
}

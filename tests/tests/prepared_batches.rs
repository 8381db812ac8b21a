//! A handler's preparation step: what `Handler::prepare` makes of a batch reaches
//! `Handler::handle_prepared` for exactly that batch, every message is handled once and in its
//! partition's order, and a message retried in place goes through `handle_batch` again (its
//! preparation was for the whole batch, not for the retry).

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use integration_tests::kafka::produce_with;
use integration_tests::{test_env, wait};
use reliable_messaging::consumer::{ConsumerSettings, Prepared, ReliableConsumer};
use reliable_messaging::dead_letter::Backoff;
use reliable_messaging::dead_letter::DeadLetterPublisher;
use reliable_messaging::message::retry_metadata::MetadataFormat;
use reliable_messaging::producer::DurableProducer;
use reliable_messaging::{Delivery, Handler, KafkaSettings, Outcome};
use tokio_util::sync::CancellationToken;

/// Records what it was asked to do. `prepare` keeps the batch's offsets; `handle_prepared`
/// checks them against the batch it is given. The payload `fail-once` fails transiently the
/// first time it is handled.
#[derive(Default, Clone)]
struct Recording {
    handled: Arc<Mutex<Vec<i64>>>,
    prepared_calls: Arc<AtomicUsize>,
    prepared_mismatches: Arc<AtomicUsize>,
    unprepared_calls: Arc<AtomicUsize>,
    failed_once: Arc<Mutex<HashSet<i64>>>,
}

impl Recording {
    fn outcomes(&self, batch: &[Delivery]) -> Vec<Outcome> {
        let mut handled = self.handled.lock().unwrap();
        batch
            .iter()
            .map(|d| {
                if d.payload.as_deref() == Some(b"fail-once") && self.failed_once.lock().unwrap().insert(d.offset) {
                    return Outcome::transient("first attempt fails");
                }
                handled.push(d.offset);
                Outcome::Done
            })
            .collect()
    }
}

impl Handler for Recording {
    async fn handle(&self, delivery: &Delivery) -> Outcome {
        self.handle_batch(std::slice::from_ref(delivery)).await.remove(0)
    }

    async fn handle_batch(&self, batch: &[Delivery]) -> Vec<Outcome> {
        self.unprepared_calls.fetch_add(1, Ordering::Relaxed);
        self.outcomes(batch)
    }

    fn prepare(&self, batch: &[Delivery]) -> Prepared {
        Prepared::new(batch.iter().map(|d| d.offset).collect::<Vec<i64>>())
    }

    async fn handle_prepared(&self, batch: &[Delivery], prepared: Prepared) -> Vec<Outcome> {
        self.prepared_calls.fetch_add(1, Ordering::Relaxed);
        let offsets: Vec<i64> = batch.iter().map(|d| d.offset).collect();
        if prepared.take::<Vec<i64>>().as_ref() != Some(&offsets) {
            self.prepared_mismatches.fetch_add(1, Ordering::Relaxed);
        }
        self.outcomes(batch)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_work_reaches_its_own_batch_and_retries_go_through_handle_batch() {
    let env = test_env().await;
    let topic = env.unique_topic("prepared");
    env.create_topics(&[topic.as_str(), format!("{topic}-dlq").as_str()], 1).await;
    const MESSAGES: i64 = 2_000;
    let failing_offset = 1_234;
    let producer = env.producer();
    for i in 0..MESSAGES {
        let payload = if i == failing_offset { "fail-once".to_owned() } else { format!("m{i}") };
        produce_with(&producer, &topic, Some(b"k"), Some(payload.as_bytes()), &[]).await;
    }

    let kafka = KafkaSettings::new(env.kafka_bootstrap.clone(), "prepared-batches");
    let producer = DurableProducer::new(&kafka, Duration::from_secs(10)).unwrap();
    let dead_letters =
        DeadLetterPublisher::new(producer, MetadataFormat::Headers, Backoff::constant(Duration::from_millis(100)));
    let mut settings = ConsumerSettings::new(format!("{topic}-group"), &[topic.as_str()]);
    settings.max_batch_size = 100;
    settings.in_place_backoff = Backoff::constant(Duration::from_millis(10));
    let handler = Recording::default();
    let consumer = ReliableConsumer::new(&kafka, settings, handler.clone(), dead_letters).unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(consumer.run(stop.clone()));

    wait::until(Duration::from_secs(60), "every message is handled", || async {
        handler.handled.lock().unwrap().len() >= MESSAGES as usize
    })
    .await;
    stop.cancel();
    task.await.unwrap().unwrap();

    let handled = handler.handled.lock().unwrap().clone();
    let expected: Vec<i64> = (0..MESSAGES).filter(|&o| o != failing_offset).collect();
    let without_retry: Vec<i64> = handled.iter().copied().filter(|&o| o != failing_offset).collect();
    assert_eq!(without_retry.len(), expected.len(), "each message handled once");
    assert_eq!(without_retry, expected, "in the partition's order");
    assert_eq!(handled.iter().filter(|&&o| o == failing_offset).count(), 1, "the failed message succeeded once");
    assert!(handler.prepared_calls.load(Ordering::Relaxed) >= (MESSAGES / 100) as usize, "batches were prepared");
    assert_eq!(handler.prepared_mismatches.load(Ordering::Relaxed), 0, "a preparation reached another batch");
    assert_eq!(
        handler.unprepared_calls.load(Ordering::Relaxed),
        1,
        "only the in-place retry of the failed message skips the preparation"
    );
}

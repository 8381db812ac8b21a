//! Decides the outcome of each `RegistrationRequested` event.

use registration_events::RegistrationRequested;
use reliable_messaging::consumer::sql_failures;
use reliable_messaging::consumer::Prepared;
use reliable_messaging::message::FailureKind;
use reliable_messaging::{Delivery, Handler, Outcome};

use crate::user_store::{PreparedInsert, Stored, UserStore};

/// A batch decoded, and the fast path's statement for its valid events built, while the
/// previous batch was still being written.
struct DecodedBatch {
    parsed: Vec<Result<RegistrationRequested, Outcome>>,
    insert: PreparedInsert,
}

/// Parses events (malformed ones are permanent failures: poison, parked at once) and stores
/// the rest in one transaction per batch.
pub struct RegistrationHandler {
    store: UserStore,
}

impl RegistrationHandler {
    pub fn new(store: UserStore) -> Self {
        Self { store }
    }

    /// Parses every event of `batch` (a malformed one is poison: a permanent failure) and
    /// builds the statement for the valid ones.
    fn decode(&self, batch: &[Delivery]) -> DecodedBatch {
        let started = std::time::Instant::now();
        let parsed: Vec<Result<RegistrationRequested, Outcome>> = batch
            .iter()
            .map(|d| RegistrationRequested::parse(d.payload.as_deref()).map_err(|e| Outcome::permanent(e.to_string())))
            .collect();
        let valid: Vec<&RegistrationRequested> = parsed.iter().filter_map(|p| p.as_ref().ok()).collect();
        let insert = PreparedInsert::of(&valid);
        self.store.stages().record("decode", started.elapsed());
        DecodedBatch { parsed, insert }
    }

    /// Stores the valid events of a decoded batch; one outcome per delivery, in order.
    async fn store_decoded(&self, DecodedBatch { parsed, insert }: DecodedBatch) -> Vec<Outcome> {
        let valid: Vec<&RegistrationRequested> = parsed.iter().filter_map(|p| p.as_ref().ok()).collect();
        let mut stored = self.store(&valid, Some(insert)).await.into_iter();
        parsed
            .into_iter()
            .map(|p| match p {
                Ok(_) => stored.next().expect("one outcome per stored event"),
                Err(poison) => poison,
            })
            .collect()
    }

    /// `insert`, when given, is the fast path's statement for exactly `events`.
    async fn store(&self, events: &[&RegistrationRequested], insert: Option<PreparedInsert>) -> Vec<Outcome> {
        let insert = insert.unwrap_or_else(|| PreparedInsert::of(events));
        match self.store.store_batch(events, insert).await {
            Ok(results) => results.into_iter().map(to_outcome).collect(),
            Err(e) if sql_failures::is_dependency_down(&e) => {
                // The database, not these events: the consumer pauses and tries them again
                // when it answers; none of them is dead-lettered or spends a retry.
                let message = format!("database unavailable: {e}");
                events.iter().map(|_| Outcome::dependency_down("database", message.clone())).collect()
            }
            Err(e) => {
                let kind = sql_failures::classify(&e);
                if events.len() > 1 {
                    // One bad or locked row fails the whole statement; store one by one so
                    // only that event fails (poison, or a row another transaction holds) and
                    // the rest go through.
                    tracing::warn!(error = %e, %kind, "batch failed on one event's account; isolating it");
                    let mut outcomes = Vec::with_capacity(events.len());
                    for event in events {
                        outcomes.push(Box::pin(self.store(std::slice::from_ref(event), None)).await.remove(0));
                    }
                    return outcomes;
                }
                let message = format!("storing the user failed: {e}");
                events
                    .iter()
                    .map(|_| match kind {
                        FailureKind::Transient => Outcome::transient(message.clone()),
                        FailureKind::Permanent => Outcome::permanent(message.clone()),
                    })
                    .collect()
            }
        }
    }
}

fn to_outcome(stored: Stored) -> Outcome {
    match stored.rejection_reason() {
        None => Outcome::Done,
        Some(reason) => Outcome::rejected(reason),
    }
}

impl Handler for RegistrationHandler {
    async fn handle(&self, delivery: &Delivery) -> Outcome {
        self.handle_batch(std::slice::from_ref(delivery)).await.remove(0)
    }

    async fn handle_batch(&self, batch: &[Delivery]) -> Vec<Outcome> {
        self.store_decoded(self.decode(batch)).await
    }

    fn prepare(&self, batch: &[Delivery]) -> Prepared {
        Prepared::new(self.decode(batch))
    }

    async fn handle_prepared(&self, batch: &[Delivery], prepared: Prepared) -> Vec<Outcome> {
        match prepared.take::<DecodedBatch>() {
            Some(decoded) => self.store_decoded(decoded).await,
            None => self.handle_batch(batch).await,
        }
    }
}

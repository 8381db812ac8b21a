//! Decides the outcome of each event on the topic: sign-ups are stored in batches, withdrawals
//! and erasures applied one by one (their tombstones make the order between them and the
//! sign-ups they concern irrelevant), and an event for a newer build waits for one.

use std::collections::HashSet;

use registration_events::{RegistrationEvent, RegistrationRequested, Unreadable};
use reliable_messaging::consumer::sql_failures;
use reliable_messaging::consumer::Prepared;
use reliable_messaging::message::FailureKind;
use reliable_messaging::{Delivery, Handler, Outcome};

use crate::configuration::{NewerEvents, NAME};
use crate::user_store::{PreparedInsert, Stored, UserStore};

/// One record of a batch, decoded.
enum Decoded {
    SignUp(RegistrationRequested),
    /// A withdrawal or an erasure, applied on its own.
    Tombstone(RegistrationEvent),
    /// Its outcome is known without the database (poison, or for a newer build).
    Decided(Outcome),
}

/// A batch decoded, and the fast path's statement for its valid sign-ups built, while the
/// previous batch was still being written.
struct DecodedBatch {
    parsed: Vec<Decoded>,
    insert: PreparedInsert,
}

/// Parses events (malformed ones are permanent failures: poison, parked at once) and stores
/// the rest in one transaction per batch.
pub struct RegistrationHandler {
    store: UserStore,
    /// The newest schema version read; events of later ones are for a newer build.
    understood: u32,
    newer_events: NewerEvents,
}

impl RegistrationHandler {
    pub fn new(store: UserStore) -> Self {
        Self { store, understood: registration_events::SCHEMA_VERSION, newer_events: NewerEvents::Wait }
    }

    /// Reads schema versions up to `understood` only, and treats newer events as `newer_events`
    /// says (tests rehearse rollouts with this; the service reads everything its build knows).
    pub fn reading(mut self, understood: u32, newer_events: NewerEvents) -> Self {
        self.understood = understood;
        self.newer_events = newer_events;
        self
    }

    /// What an event that is not a stored sign-up becomes. Behind an event for a newer build,
    /// the rest of its partition waits too: order within a partition is kept.
    fn decode_one(&self, delivery: &Delivery, waiting: &mut HashSet<(String, i32)>) -> Decoded {
        let partition = (delivery.topic.clone(), delivery.partition);
        if self.newer_events == NewerEvents::Wait && waiting.contains(&partition) {
            return Decoded::Decided(Outcome::newer_than_consumer(format!(
                "needs a newer {NAME}: waits behind an event it cannot read"
            )));
        }
        match RegistrationEvent::parse(delivery.payload.as_deref(), self.understood) {
            Ok(RegistrationEvent::Requested(event)) => Decoded::SignUp(event),
            Ok(event) => Decoded::Tombstone(event),
            Err(newer @ Unreadable::Newer { .. }) if self.newer_events == NewerEvents::Wait => {
                waiting.insert(partition);
                Decoded::Decided(Outcome::newer_than_consumer(format!("needs a newer {NAME}: {newer}")))
            }
            Err(e) => Decoded::Decided(Outcome::permanent(e.to_string())),
        }
    }

    /// Applies a withdrawal or an erasure; a database failure is classified as a sign-up's is.
    async fn apply(&self, event: &RegistrationEvent) -> Outcome {
        let result = match event {
            RegistrationEvent::Withdrawn(w) => self.store.withdraw(w).await.map(|()| {
                tracing::info!(request_id = %w.request_id, "sign-up withdrawn");
            }),
            RegistrationEvent::Erased(e) => self.store.erase(e).await.map(|deleted| {
                tracing::info!(erasure_id = %e.erasure_id, deleted, "address erased");
            }),
            RegistrationEvent::Requested(_) => unreachable!("sign-ups are stored in batches"),
        };
        match result {
            Ok(()) => Outcome::Done,
            Err(e) if sql_failures::is_dependency_down(&e) => {
                Outcome::dependency_down("database", format!("database unavailable: {e}"))
            }
            Err(e) => match sql_failures::classify(&e) {
                FailureKind::Transient => Outcome::transient(format!("applying the tombstone failed: {e}")),
                FailureKind::Permanent => Outcome::permanent(format!("applying the tombstone failed: {e}")),
            },
        }
    }

    /// Parses every event of `batch` (a malformed one is poison: a permanent failure) and
    /// builds the statement for the valid ones.
    fn decode(&self, batch: &[Delivery]) -> DecodedBatch {
        let started = std::time::Instant::now();
        let mut waiting = HashSet::new();
        let parsed: Vec<Decoded> = batch.iter().map(|d| self.decode_one(d, &mut waiting)).collect();
        let valid = sign_ups(&parsed);
        let insert = PreparedInsert::of(&valid);
        self.store.stages().record("decode", started.elapsed());
        DecodedBatch { parsed, insert }
    }

    /// Stores the valid events of a decoded batch; one outcome per delivery, in order.
    async fn store_decoded(&self, DecodedBatch { parsed, insert }: DecodedBatch) -> Vec<Outcome> {
        // Tombstones first: a sign-up of the same batch they concern is then refused.
        let mut applied = Vec::new();
        for decoded in &parsed {
            if let Decoded::Tombstone(event) = decoded {
                applied.push(self.apply(event).await);
            }
        }
        let valid = sign_ups(&parsed);
        let mut stored = self.store(&valid, Some(insert)).await.into_iter();
        let mut applied = applied.into_iter();
        parsed
            .into_iter()
            .map(|p| match p {
                Decoded::SignUp(_) => stored.next().expect("one outcome per stored event"),
                Decoded::Tombstone(_) => applied.next().expect("one outcome per tombstone"),
                Decoded::Decided(outcome) => outcome,
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

fn sign_ups(parsed: &[Decoded]) -> Vec<&RegistrationRequested> {
    parsed
        .iter()
        .filter_map(|p| match p {
            Decoded::SignUp(event) => Some(event),
            _ => None,
        })
        .collect()
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

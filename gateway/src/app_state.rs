//! What every request handler shares.

use std::sync::Arc;
use std::time::Duration;

use reliable_messaging::producer::DurableProducer;
use sqlx::MySqlPool;

use crate::configuration::RequestIdSecret;
use crate::idempotency::IdempotencyClaims;
use crate::metrics::Metrics;
use crate::password_hashing::PasswordHasher;
use crate::request_id::RequestIds;

#[derive(Clone)]
pub struct AppState {
    /// Where accepted registrations go next: the registrations topic.
    pub producer: DurableProducer,
    pub registrations_topic: Arc<str>,
    pub publish_timeout: Duration,
    pub hasher: Arc<PasswordHasher>,
    pub request_ids: RequestIds,
    /// Also keys the idempotency fingerprints.
    pub secret: RequestIdSecret,
    pub idempotency: Arc<IdempotencyClaims>,
    /// Lazily connected: the status route and the shared Idempotency-Key claims use it;
    /// accepting a sign-up never waits for it longer than the claim timeout.
    pub db: MySqlPool,
    pub metrics: Arc<Metrics>,
}

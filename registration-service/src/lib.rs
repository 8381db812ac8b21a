//! The registration-service: consumes `user-registrations` and stores each user in MySQL,
//! exactly once per request, without ever losing an accepted registration.
//!
//! * [`registration_handler`] decides what each event means (stored, rejected, failed);
//! * [`user_store`] is the idempotent MySQL write;
//! * [`tombstones`] applies withdrawals and erasures and keeps them applied;
//! * [`configuration`] reads the settings (`registration-service --help` lists them);
//! * [`startup`] hands the handler to the service kit (`reliable_messaging::service`), whose
//!   consumer commits offsets only after the outcome is durable and routes failures to
//!   `user-registrations-dlq`.

pub mod configuration;
pub mod database_grants;
pub mod registration_handler;
pub mod startup;
pub mod tombstones;
pub mod user_store;

//! The registration gateway: the HTTP front door of sign-up.
//!
//! A `POST /registrations` is parsed into valid [`domain`] values, its password hashed
//! ([`password_hashing`]), and the resulting `RegistrationRequested` event published to the
//! registrations topic; the client gets 202 only once the broker has acknowledged it. The
//! registration-service takes it from there. `GET /registrations/{id}` reports the outcome
//! from the database the downstream services write.
//!
//! Start with [`startup::Application`]; the routes are in [`routes`].

pub mod app_state;
pub mod client_budget;
pub mod configuration;
pub mod database_grants;
pub mod domain;
pub mod http_server;
pub mod idempotency;
pub mod json_body;
pub mod metrics;
pub mod openapi;
pub mod password_hashing;
pub mod problem;
pub mod request_deadline;
pub mod request_id;
pub mod routes;
pub mod startup;

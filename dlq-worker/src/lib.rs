//! The dlq-worker: drains every `*-dlq` topic, re-sends each message to its original topic
//! after a backoff with its retry count incremented, and parks the messages that must not be
//! retried any more (retry budget exhausted, permanent failure, unreadable metadata, origin
//! topic gone) in the parking lot, where operators list, redrive or discard them.
//!
//! Where a message goes next, by module:
//!
//! * [`worker`] reads dead-letter records, tracks offsets, schedules and commits;
//! * [`triage`] decides: re-send (when) or park (why);
//! * [`schedule`] holds waiting messages by due time, so none blocks another;
//! * [`actions`] re-sends to the original topic or parks, each logged in [`dead_letter_log`];
//! * [`rebalance`] commits and drops partition state when partitions move;
//! * [`operations`] are what an operator does to the parking lot, for its three clients:
//!   [`admin`] (HTTP, JSON), [`console`] (HTML, in a browser) and [`cli`];
//! * [`admin_tokens`] says who may, under which name; [`canary_judge`] what became of a redrive;
//! * [`startup`] wires it all; [`configuration`] reads the environment.

pub mod actions;
pub mod admin;
pub mod admin_tokens;
pub mod canary_judge;
pub mod cli;
pub mod configuration;
pub mod console;
pub mod database_grants;
pub mod dead_letter_log;
pub mod erasure;
pub mod http;
pub mod metrics;
pub mod operations;
pub mod problem;
pub mod rebalance;
pub mod schedule;
pub mod startup;
pub mod topics;
pub mod triage;
pub mod worker;

pub use configuration::Settings;
pub use startup::Application;

//! The HTTP routes, one module per resource, and the table that records what the router
//! serves (so the OpenAPI document can be checked against it).

mod metrics;
mod openapi;
mod registrations;
mod status;
mod table;
mod withdrawal;

pub use metrics::metrics;
pub use openapi::openapi;
pub use registrations::register;
pub use status::{registration_status, RegistrationStatus};
pub use table::{RouteTable, ServedRoute};
pub use withdrawal::withdraw;

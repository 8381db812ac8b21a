//! The service's logic as a library, so that its tests call the handler directly; `main.rs`
//! only wires it to the service kit.

pub mod handler;

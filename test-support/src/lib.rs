//! Support that every harness of the workspace shares: the integration tests (`tests/`), the
//! chaos suite and the benchmark. Each runs the real service binaries as OS processes
//! ([`process`], [`memory`]), drives the machine's Kafka and MariaDB through
//! `scripts/local-services.sh` ([`local_services`]), reads the services' `/metrics`
//! ([`prometheus`]) and cuts database connections on demand ([`tcp_proxy`]).
//!
//! It depends on no service library and no container engine: what needs those (the test
//! environment, the ledger, spawning a service with its settings) lives in `integration-tests`.

pub mod local_services;
pub mod memory;
pub mod process;
pub mod prometheus;
pub mod tcp_proxy;

/// A free loopback port (bound, read, released: a tiny race, acceptable on a test machine).
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

//! Tracing set-up shared by the binaries.

use tracing_subscriber::{fmt, prelude::*, EnvFilter};

/// Installs a global subscriber. `RUST_LOG` filters (default `info`), `LOG_FORMAT=json`
/// switches to one JSON object per line for log shippers such as Filebeat or Splunk.
pub fn init(service: &str) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("info,rdkafka=warn,sqlx=warn,{}=info", service.replace('-', "_"))));
    let json = std::env::var("LOG_FORMAT").map(|v| v == "json").unwrap_or(false);
    let registry = tracing_subscriber::registry().with(filter);
    // `try_init` so tests that build several applications in one process do not panic.
    let _ = if json {
        registry.with(fmt::layer().json().flatten_event(true).with_current_span(false)).try_init()
    } else {
        registry.with(fmt::layer().with_target(false)).try_init()
    };
}

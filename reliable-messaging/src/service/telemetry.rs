//! Logging and distributed tracing set-up shared by the binaries.
//!
//! * Logs: `RUST_LOG` filters (default `info`), `LOG_FORMAT=json` switches to one JSON object
//!   per line for log shippers such as Filebeat or Splunk. With tracing on, every JSON line
//!   logged inside a span carries `trace_id` and `span_id`, so logs and traces join.
//! * Traces: when the standard `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//!   `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, `tracing` spans are exported as OpenTelemetry
//!   spans over OTLP/HTTP (protobuf), batched (`OTEL_BSP_*` tune the batching), with
//!   `service.name` = the binary (or `OTEL_SERVICE_NAME`). Unset, nothing is exported and
//!   [`enabled`] is false: the library then creates no spans of its own and only passes the
//!   trace headers a record already carries along (see [`crate::kafka::trace_context`]).

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{Format, Json, JsonFields, Writer};
use tracing_subscriber::fmt::{self, FmtContext, FormatEvent};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{prelude::*, EnvFilter};

static ENABLED: AtomicBool = AtomicBool::new(false);
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Turns the library's spans on without an exporter, for tests that install their own
/// OpenTelemetry layer.
#[cfg(test)]
pub(crate) fn enable_for_tests() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Whether spans are exported (an OTLP endpoint is configured and [`init`] installed it).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// `make()` when tracing is on, else [`tracing::Span::none`]: spans that exist only for the
/// trace cost nothing with tracing off.
pub fn span(make: impl FnOnce() -> tracing::Span) -> tracing::Span {
    if enabled() {
        make()
    } else {
        tracing::Span::none()
    }
}

/// The OTLP endpoint from the environment, if tracing is wanted.
fn otlp_endpoint() -> Option<String> {
    ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
}

/// Installs the global subscriber (logs, and traces when an OTLP endpoint is configured).
pub fn init(service: &str) {
    let filter = || {
        EnvFilter::try_from_default_env().unwrap_or_else(|_| {
            EnvFilter::new(format!("info,rdkafka=warn,sqlx=warn,{}=info", service.replace('-', "_")))
        })
    };
    let json = std::env::var("LOG_FORMAT").map(|v| v == "json").unwrap_or(false);
    let otel = otlp_endpoint().and_then(|endpoint| match tracer_provider(service) {
        Ok(provider) => Some(provider),
        Err(e) => {
            // Tracing is an aid, never a reason not to serve: log (once logging is up) and go on.
            let _ = writeln!(std::io::stderr(), "OTLP exporter for {endpoint} could not be built, traces are off: {e}");
            None
        }
    });
    let otel_layer = otel.as_ref().map(|provider| {
        tracing_opentelemetry::layer().with_tracer(provider.tracer(service.to_owned())).with_tracked_inactivity(false)
    });
    let registry = tracing_subscriber::registry().with(filter()).with(otel_layer);
    // `try_init` so tests that build several applications in one process do not panic.
    let installed = if json {
        registry.with(fmt::layer().json().event_format(TraceIds::json())).try_init()
    } else {
        registry.with(fmt::layer().with_target(false)).try_init()
    };
    if let (Ok(()), Some(provider)) = (installed, otel) {
        opentelemetry::global::set_tracer_provider(provider.clone());
        let _ = PROVIDER.set(provider);
        ENABLED.store(true, Ordering::Relaxed);
        tracing::info!(service, "exporting traces over OTLP/HTTP");
    }
}

fn tracer_provider(service: &str) -> Result<SdkTracerProvider, opentelemetry_otlp::ExporterBuildError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder().with_http().build()?;
    let mut resource = opentelemetry_sdk::Resource::builder();
    if std::env::var("OTEL_SERVICE_NAME").is_err() {
        resource = resource.with_service_name(service.to_owned());
    }
    Ok(SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource.build()).build())
}

/// Exports the spans still buffered; call before the process exits (a SIGKILL loses at most
/// one batch, `OTEL_BSP_SCHEDULE_DELAY`, 5 s by default).
pub fn shutdown() {
    if let Some(provider) = PROVIDER.get() {
        let _ = provider.force_flush();
        let _ = provider.shutdown();
    }
}

/// The JSON event format with `trace_id` and `span_id` of the current span added, when it
/// belongs to an exported trace.
struct TraceIds {
    inner: Format<Json>,
}

impl TraceIds {
    fn json() -> Self {
        Self { inner: Format::default().json().flatten_event(true).with_current_span(false) }
    }
}

impl<S> FormatEvent<S, JsonFields> for TraceIds
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let mut line = String::with_capacity(256);
        self.inner.format_event(ctx, Writer::new(&mut line), event)?;
        let ids = if enabled() { ctx.lookup_current().and_then(|span| ids_of(&span.id())) } else { None };
        match (ids, line.trim_end().strip_suffix('}')) {
            (Some((trace_id, span_id)), Some(object)) => {
                writeln!(writer, "{object},\"trace_id\":\"{trace_id}\",\"span_id\":\"{span_id}\"}}")
            }
            _ => writer.write_str(&line),
        }
    }
}

/// The OpenTelemetry ids of span `id` (starting its OpenTelemetry span if need be).
fn ids_of(id: &tracing::span::Id) -> Option<(String, String)> {
    tracing::dispatcher::get_default(|dispatch| {
        let cx = tracing_opentelemetry::get_otel_context(id, dispatch)?;
        let span = cx.span();
        let sc = span.span_context();
        sc.is_valid().then(|| (sc.trace_id().to_string(), sc.span_id().to_string()))
    })
}

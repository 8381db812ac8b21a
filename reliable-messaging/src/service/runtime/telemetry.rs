//! Logging and distributed tracing set-up shared by the binaries, from the service's
//! [`TelemetryArgs`] (which the binary parses with the rest of its arguments; nothing here reads
//! the environment).
//!
//! * Logs: `RUST_LOG` filters (default `info`, rdkafka and sqlx at `warn`), `LOG_FORMAT=json`
//!   switches to one JSON object per line for log shippers such as Filebeat or Splunk. With
//!   tracing on, every JSON line logged inside a span carries `trace_id` and `span_id`, so logs
//!   and traces join.
//! * Traces: when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is
//!   given, `tracing` spans are exported as OpenTelemetry spans over OTLP/HTTP (protobuf) to
//!   that endpoint, batched, with `service.name` = the binary (or `OTEL_SERVICE_NAME`). The
//!   SDK itself still reads what its specification gives it (`OTEL_BSP_*` tune the batching,
//!   `OTEL_EXPORTER_OTLP_HEADERS` adds headers). Unset, nothing is exported and [`trace_context::enabled`](crate::kafka::trace_context::enabled) is
//!   false: the library then creates no spans of its own and only passes the trace headers a
//!   record already carries along (see [`crate::kafka::trace_context`]).

use std::io::Write as _;
use std::sync::OnceLock;

use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{Format, Json, JsonFields, Writer};
use tracing_subscriber::fmt::{self, FmtContext, FormatEvent};
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;

use crate::kafka::trace_context;
use crate::service::configuration::{LogFormat, TelemetryArgs};

static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// `make()` when tracing is on, else [`tracing::Span::none`]: spans that exist only for the
/// trace cost nothing with tracing off.
pub fn span(make: impl FnOnce() -> tracing::Span) -> tracing::Span {
    if trace_context::enabled() {
        make()
    } else {
        tracing::Span::none()
    }
}

/// Installs the global subscriber: logs on stdout, and traces when `args` give an OTLP
/// endpoint. `service` names the traces and sets the default filter
/// (`info,rdkafka=warn,sqlx=warn,<service>=info`).
pub fn init(service: &str, args: &TelemetryArgs) {
    let default_filter = format!("info,rdkafka=warn,sqlx=warn,{}=info", service.replace('-', "_"));
    let otel = args.traces_endpoint().and_then(|endpoint| match tracer_provider(service, &endpoint, args) {
        Ok(provider) => Some(provider),
        Err(e) => {
            // Tracing is an aid, never a reason not to serve: say so and go on.
            let _ = writeln!(std::io::stderr(), "OTLP exporter for {endpoint} could not be built, traces are off: {e}");
            None
        }
    });
    let otel_layer = otel.as_ref().map(|provider| {
        tracing_opentelemetry::layer().with_tracer(provider.tracer(service.to_owned())).with_tracked_inactivity(false)
    });
    let registry = tracing_subscriber::registry().with(args.filter(&default_filter)).with(otel_layer);
    // `try_init` so tests that build several applications in one process do not panic.
    let installed = match args.log_format {
        LogFormat::Json => registry.with(fmt::layer().json().event_format(TraceIds::json())).try_init(),
        LogFormat::Text => registry.with(fmt::layer().with_target(false)).try_init(),
    };
    if let (Ok(()), Some(provider)) = (installed, otel) {
        opentelemetry::global::set_tracer_provider(provider.clone());
        let _ = PROVIDER.set(provider);
        trace_context::switch_on();
        tracing::info!(service, "exporting traces over OTLP/HTTP");
    }
}

/// Installs logs on stderr alone, for a command-line tool whose results go to stdout (e.g.
/// `dlq-worker parked ...`): `RUST_LOG` filters (else `default_filter`), `LOG_FORMAT` applies,
/// and nothing is exported.
pub fn init_stderr(args: &TelemetryArgs, default_filter: &str) {
    let registry = tracing_subscriber::registry().with(args.filter(default_filter));
    let _ = match args.log_format {
        LogFormat::Json => {
            registry.with(fmt::layer().json().event_format(TraceIds::json()).with_writer(std::io::stderr)).try_init()
        }
        LogFormat::Text => registry.with(fmt::layer().with_writer(std::io::stderr)).try_init(),
    };
}

/// The provider exporting to `endpoint`, the full URL of the traces receiver: given to the
/// exporter explicitly, so a flag works as well as the variable.
fn tracer_provider(
    service: &str,
    endpoint: &str,
    args: &TelemetryArgs,
) -> Result<SdkTracerProvider, opentelemetry_otlp::ExporterBuildError> {
    use opentelemetry_otlp::WithExportConfig as _;
    let exporter = opentelemetry_otlp::SpanExporter::builder().with_http().with_endpoint(endpoint).build()?;
    let resource = opentelemetry_sdk::Resource::builder().with_service_name(args.service_name(service).to_owned());
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
        let ids =
            if trace_context::enabled() { ctx.lookup_current().and_then(|span| ids_of(&span.id())) } else { None };
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

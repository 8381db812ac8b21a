//! W3C trace context (`traceparent`, `tracestate`) carried in Kafka headers, so one trace
//! follows a message across every hop: gateway → topic → consumer → DLQ → dlq-worker →
//! re-send → consumer → stored (or parked).
//!
//! * [`crate::producer::DurableProducer::send`] writes the current span's context into the
//!   record's headers, replacing any it carried (each hop names its own parent span).
//! * Consumers continue the context a record carries: [`continue_span`] for one message,
//!   [`batch_span`] for a batch (one parent when the batch shares a trace, span links when it
//!   mixes traces).
//!
//! With tracing off ([`enabled`] false) none of this creates a span: the
//! headers a record carries pass through unchanged, so a downstream service with tracing on
//! still joins the caller's trace, and the only cost is the headers themselves.

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::message::Delivery;
use crate::message::Header;

/// Whether spans are exported. Switched on by the service kit once it has installed an
/// exporter; read by every client, so a process without tracing pays nothing for spans.
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported (an OTLP endpoint is configured and an exporter installed).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Turns the clients' spans on: called once an exporter (or a test's own layer) is installed.
pub(crate) fn switch_on() {
    ENABLED.store(true, Ordering::Relaxed);
}

pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

/// At most this many links on a batch span (a batch of 500 distinct traces would otherwise
/// make one span of 500 links).
const MAX_LINKS: usize = 128;

struct HeadersIn<'a>(&'a [Header]);

impl Extractor for HeadersIn<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev() // the newest value wins if a foreign writer appended instead of replacing
            .find(|h| h.key.eq_ignore_ascii_case(key))
            .and_then(|h| h.value.as_deref())
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|h| h.key.as_str()).collect()
    }
}

struct HeadersOut<'a>(&'a mut Vec<Header>);

impl Injector for HeadersOut<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.retain(|h| !h.key.eq_ignore_ascii_case(key));
        self.0.push(Header { key: key.to_owned(), value: Some(value.into_bytes()) });
    }
}

/// The trace context `headers` carry (an empty context when none, or when it is malformed).
pub fn extract(headers: &[Header]) -> opentelemetry::Context {
    TraceContextPropagator::new().extract(&HeadersIn(headers))
}

/// The trace context in a `(name, value)` list, e.g. HTTP headers.
pub fn extract_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> opentelemetry::Context {
    let headers: Vec<Header> = pairs
        .into_iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(TRACEPARENT) || k.eq_ignore_ascii_case(TRACESTATE))
        .map(|(k, v)| Header { key: k.to_ascii_lowercase(), value: Some(v.to_vec()) })
        .collect();
    extract(&headers)
}

/// Makes `span` continue the trace of `(name, value)` headers, e.g. an HTTP request's
/// `traceparent` (no-op with tracing off, or without one).
pub fn set_parent_from_pairs<'a>(span: &Span, pairs: impl IntoIterator<Item = (&'a str, &'a [u8])>) {
    if !enabled() {
        return;
    }
    let cx = extract_pairs(pairs);
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

/// Writes `span`'s context into `headers` as `traceparent`/`tracestate`, replacing what was
/// there. Does nothing when tracing is off (the headers pass through) or the span is not
/// part of an exported trace.
pub fn inject(span: &Span, headers: &mut Vec<Header>) {
    if !enabled() {
        return;
    }
    let cx = span.context();
    if cx.span().span_context().is_valid() {
        // A tracestate of the previous hop must not outlive its traceparent.
        headers.retain(|h| !h.key.eq_ignore_ascii_case(TRACESTATE));
        TraceContextPropagator::new().inject_context(&cx, &mut HeadersOut(headers));
    }
}

/// Makes `span` continue the trace `headers` carry (no-op with tracing off, or without one).
pub fn set_parent(span: &Span, headers: &[Header]) {
    if !enabled() {
        return;
    }
    let cx = extract(headers);
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

/// A span for one message that continues the message's trace: `make` builds the span (so its
/// name and fields stay at the call site), which becomes a child of the record's
/// `traceparent`. With tracing off, [`Span::none`] (free).
pub fn continue_span(delivery: &Delivery, make: impl FnOnce() -> Span) -> Span {
    if !enabled() {
        return Span::none();
    }
    let span = make();
    set_parent(&span, &delivery.headers);
    span
}

/// The span under which a consumer handles `batch`: a child of the trace the messages share,
/// or, when they carry several traces, a new root linked to each of them, so every
/// message's trace shows where it was handled.
pub fn batch_span(batch: &[Delivery]) -> Span {
    if !enabled() {
        return Span::none();
    }
    let span = tracing::info_span!(
        "process batch",
        otel.kind = "consumer",
        messaging.system = "kafka",
        messaging.operation.type = "process",
        messaging.batch.message_count = batch.len(),
        messaging.destination.name = batch.first().map(|d| d.topic.as_str()).unwrap_or(""),
    );
    let mut contexts: Vec<opentelemetry::trace::SpanContext> = Vec::new();
    for delivery in batch {
        let cx = extract(&delivery.headers);
        let sc = cx.span().span_context().clone();
        if sc.is_valid() && !contexts.iter().any(|c| c.trace_id() == sc.trace_id() && c.span_id() == sc.span_id()) {
            contexts.push(sc);
        }
    }
    let one_trace = contexts.windows(2).all(|w| w[0].trace_id() == w[1].trace_id());
    let mut contexts = contexts.into_iter();
    if one_trace {
        if let Some(first) = contexts.next() {
            let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(first));
        }
    }
    for sc in contexts.take(MAX_LINKS) {
        span.add_link(sc);
    }
    span
}

/// Records, as a finished span of the trace `delivery` carries, a period that already passed
/// (e.g. the time a dead letter waited until its re-send was due): tracing spans cannot start
/// in the past, so this uses the OpenTelemetry API directly.
pub fn record_elapsed(
    delivery: &Delivery,
    name: &'static str,
    since: std::time::SystemTime,
    attributes: &[(&'static str, i64)],
) {
    use opentelemetry::trace::{Span as _, Tracer as _};
    if !enabled() {
        return;
    }
    let parent = extract(&delivery.headers);
    if !parent.span().span_context().is_valid() {
        return;
    }
    let tracer = opentelemetry::global::tracer("reliable-messaging");
    let attributes = attributes.iter().map(|(k, v)| opentelemetry::KeyValue::new(*k, *v));
    let mut span = tracer
        .span_builder(name)
        .with_start_time(since)
        .with_attributes(attributes)
        .start_with_context(&tracer, &parent);
    span.end();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(k: &str, v: &str) -> Header {
        Header { key: k.to_owned(), value: Some(v.as_bytes().to_vec()) }
    }

    #[test]
    fn a_traceparent_header_is_read_as_the_remote_parent() {
        let headers = vec![
            header("x-request-id", "1"),
            header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        ];
        let cx = extract(&headers);
        let sc = cx.span().span_context().clone();
        assert!(sc.is_valid() && sc.is_remote());
        assert_eq!(sc.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(sc.span_id().to_string(), "00f067aa0ba902b7");
    }

    #[test]
    fn a_malformed_traceparent_is_no_context_not_an_error() {
        let cx = extract(&[header("traceparent", "00-zz-00f067aa0ba902b7-01")]);
        assert!(!cx.span().span_context().is_valid());
    }

    /// Collects finished spans in memory.
    #[derive(Debug, Clone, Default)]
    struct Collected(std::sync::Arc<std::sync::Mutex<Vec<opentelemetry_sdk::trace::SpanData>>>);

    impl opentelemetry_sdk::trace::SpanExporter for Collected {
        fn export(
            &self,
            batch: Vec<opentelemetry_sdk::trace::SpanData>,
        ) -> impl std::future::Future<Output = opentelemetry_sdk::error::OTelSdkResult> + Send {
            self.0.lock().unwrap().extend(batch);
            std::future::ready(Ok(()))
        }
    }

    fn delivery(headers: Vec<Header>) -> Delivery {
        Delivery { headers, ..Delivery::empty_at("t", 0, 0) }
    }

    #[test]
    fn a_batch_of_one_trace_continues_it_and_a_mixed_batch_links_to_each_trace() {
        use opentelemetry::trace::TracerProvider as _;
        use tracing_subscriber::prelude::*;
        let collected = Collected::default();
        let provider =
            opentelemetry_sdk::trace::SdkTracerProvider::builder().with_simple_exporter(collected.clone()).build();
        let subscriber =
            tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        switch_on();
        let a = "00-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-1111111111111111-01";
        let b = "00-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-2222222222222222-01";
        tracing::subscriber::with_default(subscriber, || {
            drop(batch_span(&[delivery(vec![header("traceparent", a)]), delivery(vec![header("traceparent", a)])]));
            drop(batch_span(&[
                delivery(vec![header("traceparent", a)]),
                delivery(vec![header("traceparent", b)]),
                delivery(vec![]),
            ]));
        });
        let _ = provider.force_flush();
        let spans = collected.0.lock().unwrap().clone();
        assert_eq!(spans.len(), 2, "{spans:?}");

        let same = &spans[0];
        assert_eq!(same.span_context.trace_id().to_string(), "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
        assert_eq!(same.parent_span_id.to_string(), "1111111111111111");
        assert!(same.links.links.is_empty());

        let mixed = &spans[1];
        let linked: Vec<String> = mixed.links.links.iter().map(|l| l.span_context.trace_id().to_string()).collect();
        assert_eq!(linked, ["aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"]);
        let own = mixed.span_context.trace_id().to_string();
        assert!(own != linked[0] && own != linked[1], "a mixed batch starts its own trace");
    }

    #[test]
    fn injecting_replaces_the_previous_hop_instead_of_appending() {
        let cx = extract(&[header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")]);
        let mut headers =
            vec![header("traceparent", "00-11111111111111111111111111111111-2222222222222222-01"), header("a", "b")];
        TraceContextPropagator::new().inject_context(&cx, &mut HeadersOut(&mut headers));
        let parents: Vec<_> = headers.iter().filter(|h| h.key == TRACEPARENT).collect();
        assert_eq!(parents.len(), 1);
        assert_eq!(parents[0].value.as_deref(), Some(&b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"[..]));
        assert!(headers.iter().any(|h| h.key == "a"));
    }
}

//! The OpenTelemetry Collector as a process of a test: the real one, built by
//! `scripts/observability/otel-collector.sh build` (OTLP receiver, file exporter), receiving
//! OTLP/HTTP on a free port and writing every span it received to a file, which the test
//! reads back. [`Span`] is one span as a receiver saw it, whichever receiver that was.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::harness::free_port;
use crate::wait;

/// The variable naming the collector binary; `scripts/test.sh` sets it.
pub const BIN_VARIABLE: &str = "OTEL_COLLECTOR_BIN";

/// One exported span.
#[derive(Debug, Clone)]
pub struct Span {
    pub service: String,
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    /// OTLP status code: 0 unset, 1 ok, 2 error.
    pub status: i32,
}

pub struct OtelCollector {
    /// Where services send: `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub endpoint: String,
    dir: PathBuf,
    child: Child,
}

impl OtelCollector {
    /// The collector named by [`BIN_VARIABLE`], started and answering; `None` when unset.
    pub async fn from_env() -> Option<OtelCollector> {
        let bin = std::env::var(BIN_VARIABLE).ok().filter(|b| !b.is_empty())?;
        Some(Self::start(&bin).await)
    }

    /// Starts `bin` with an OTLP/HTTP receiver and a file exporter, and waits until the
    /// receiver takes an (empty) export.
    pub async fn start(bin: &str) -> OtelCollector {
        let dir = std::env::temp_dir().join(format!("otelcol-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("collector dir");
        let port = free_port();
        let config = format!(
            "receivers:\n  otlp:\n    protocols:\n      http:\n        endpoint: 127.0.0.1:{port}\n\
             exporters:\n  file:\n    path: {}\n    flush_interval: 100ms\n\
             service:\n  telemetry:\n    metrics:\n      level: none\n  \
             pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [file]\n",
            dir.join("traces.jsonl").display()
        );
        std::fs::write(dir.join("config.yaml"), config).expect("collector config");
        let log = std::fs::File::create(dir.join("collector.log")).expect("collector log");
        let child = Command::new(bin)
            .arg(format!("--config={}", dir.join("config.yaml").display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run the collector {bin} ({BIN_VARIABLE}): {e}"));
        let collector = OtelCollector { endpoint: format!("http://127.0.0.1:{port}"), dir, child };
        let client = reqwest::Client::new();
        let url = format!("{}/v1/traces", collector.endpoint);
        let ready = wait::within(Duration::from_secs(30), || {
            let (client, url) = (client.clone(), url.clone());
            async move {
                let sent = client.post(&url).header("content-type", "application/json").body("{}").send().await;
                sent.is_ok_and(|r| r.status().is_success())
            }
        })
        .await;
        assert!(ready, "the collector did not take an export within 30 s; its log:\n{}", collector.log());
        collector
    }

    /// Every span the collector has written to its file so far.
    pub fn spans(&self) -> Vec<Span> {
        let text = std::fs::read_to_string(self.dir.join("traces.jsonl")).unwrap_or_default();
        // A line being written is incomplete: it is read on the next call.
        text.lines().filter_map(|line| serde_json::from_str::<Value>(line).ok()).flat_map(|v| spans_of(&v)).collect()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("collector.log")).unwrap_or_default()
    }
}

impl Drop for OtelCollector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The spans of one `ExportTraceServiceRequest` in OTLP/JSON (ids as hex, as the file
/// exporter writes them).
pub fn spans_of(request: &Value) -> Vec<Span> {
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    let mut out = Vec::new();
    for resource_spans in request["resourceSpans"].as_array().into_iter().flatten() {
        let service = resource_spans["resource"]["attributes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|kv| kv["key"] == "service.name")
            .map(|kv| text(&kv["value"], "stringValue"))
            .unwrap_or_default();
        for scope in resource_spans["scopeSpans"].as_array().into_iter().flatten() {
            for span in scope["spans"].as_array().into_iter().flatten() {
                out.push(Span {
                    service: service.clone(),
                    name: text(span, "name"),
                    trace_id: text(span, "traceId"),
                    span_id: text(span, "spanId"),
                    parent_span_id: text(span, "parentSpanId"),
                    status: span["status"]["code"].as_i64().map_or(0, |c| c as i32),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_span_from_otlp_json() {
        let line = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"gateway"}}]},
            "scopeSpans":[{"scope":{"name":"x"},"spans":[{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","spanId":"00f067aa0ba902b7",
            "parentSpanId":"","name":"POST /registrations","status":{"code":2}}]}]}]}"#;
        let spans = spans_of(&serde_json::from_str(line).unwrap());
        assert_eq!(spans.len(), 1);
        let s = &spans[0];
        assert_eq!((s.service.as_str(), s.name.as_str(), s.status), ("gateway", "POST /registrations", 2));
        assert_eq!((s.trace_id.as_str(), s.span_id.as_str()), ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"));
    }
}

//! One trace follows a sign-up across every hop. The three services run as OS processes
//! with `OTEL_EXPORTER_OTLP_ENDPOINT` pointing at an OTLP/HTTP receiver: the real
//! OpenTelemetry Collector when `OTEL_COLLECTOR_BIN` names one (`scripts/test.sh` builds it
//! and runs this test with it too; the spans are read back from its file exporter), else a
//! receiver inside this test; a
//! database trigger makes the first attempt to store the user fail, so the message takes
//! the whole retry path: gateway → registration-service (fails) → DLQ → dlq-worker (waits,
//! re-sends) → registration-service (stored). Every span of every service must carry the
//! trace id of the caller's `traceparent`, every span's parent must be a span of that trace,
//! and the services' JSON logs must carry that trace id. A poison record with its own
//! `traceparent` must be parked within its trace.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use axum::Router;
use integration_tests::harness::{self, free_port, ServiceProcess};
use integration_tests::otel_collector::{OtelCollector, Span};
use integration_tests::{test_env, wait};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message as _;
use reliable_messaging::dead_letter::dead_letter_topic;
use uuid::Uuid;

type ReceivedSpan = Span;

/// Where the spans arrive: the real collector, or the receiver of this test.
#[derive(Clone)]
enum Spans {
    Collector(Arc<OtelCollector>),
    InTest(Arc<Mutex<Vec<ReceivedSpan>>>),
}

impl Spans {
    fn all(&self) -> Vec<ReceivedSpan> {
        match self {
            Spans::Collector(c) => c.spans(),
            Spans::InTest(s) => s.lock().unwrap().clone(),
        }
    }
}

/// The collector named by `OTEL_COLLECTOR_BIN`, else a receiver inside this test.
async fn start_receiver() -> (String, Spans) {
    if let Some(collector) = OtelCollector::from_env().await {
        eprintln!("receiving the traces with the OpenTelemetry Collector at {}", collector.endpoint);
        return (collector.endpoint.clone(), Spans::Collector(Arc::new(collector)));
    }
    let (endpoint, spans) = start_in_test_receiver().await;
    (endpoint, Spans::InTest(spans))
}

/// A minimal OTLP/HTTP trace receiver: protobuf `ExportTraceServiceRequest` on `/v1/traces`.
async fn start_in_test_receiver() -> (String, Arc<Mutex<Vec<ReceivedSpan>>>) {
    async fn receive(
        State(spans): State<Arc<Mutex<Vec<ReceivedSpan>>>>,
        body: Bytes,
    ) -> (axum::http::StatusCode, [(&'static str, &'static str); 1], Vec<u8>) {
        let Ok(request) = ExportTraceServiceRequest::decode(body) else {
            return (
                axum::http::StatusCode::BAD_REQUEST,
                [("content-type", "text/plain")],
                b"not OTLP protobuf".to_vec(),
            );
        };
        let mut received = spans.lock().unwrap();
        for resource_spans in request.resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref()?.value.as_ref())
                .map(|v| match v {
                    AnyValue::StringValue(s) => s.clone(),
                    other => format!("{other:?}"),
                })
                .unwrap_or_default();
            for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
                received.push(ReceivedSpan {
                    service: service.clone(),
                    name: span.name,
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    status: span.status.map_or(0, |s| s.code),
                });
            }
        }
        // An empty ExportTraceServiceResponse encodes as zero bytes.
        (axum::http::StatusCode::OK, [("content-type", "application/x-protobuf")], Vec::new())
    }
    let spans: Arc<Mutex<Vec<ReceivedSpan>>> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the receiver");
    let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
    let app = Router::new().route("/v1/traces", post(receive)).with_state(spans.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.expect("receiver") });
    (endpoint, spans)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn of_trace(spans: &Spans, trace_id: &str) -> Vec<ReceivedSpan> {
    spans.all().into_iter().filter(|s| s.trace_id == trace_id).collect()
}

fn describe(spans: &[ReceivedSpan]) -> String {
    spans.iter().map(|s| format!("  {} / {} (status {})\n", s.service, s.name, s.status)).collect()
}

#[tokio::test]
async fn one_trace_follows_a_sign_up_that_failed_once_through_the_dlq_and_a_parked_poison_keeps_its_own() {
    let env = test_env().await;
    let (endpoint, spans) = start_receiver().await;
    let db = env.fresh_database().await;
    let topic = env.unique_topic("traced-registrations");
    env.create_topics(&[&topic, &dead_letter_topic(&topic)], 3).await;

    // The first attempt to store this address fails (SQLSTATE 45000 → transient, dead-lettered)
    // as long as the gate row exists; the test opens the gate once the dead letter is written.
    let email = format!("traced-{}@example.com", Uuid::new_v4().simple());
    sqlx::query("CREATE TABLE trace_test_gate (email VARCHAR(254) PRIMARY KEY)")
        .execute(&db.pool)
        .await
        .expect("gate table");
    sqlx::query("INSERT INTO trace_test_gate VALUES (?)").bind(&email).execute(&db.pool).await.expect("close the gate");
    sqlx::raw_sql(
        "CREATE TRIGGER trace_test_fail_while_gated BEFORE INSERT ON users FOR EACH ROW \
         BEGIN IF EXISTS (SELECT 1 FROM trace_test_gate WHERE email = NEW.email) THEN \
         SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'trace test: the gate is closed'; END IF; END",
    )
    .execute(&db.pool)
    .await
    .expect("create the trigger");

    let tracing_env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.clone()),
        // Export every 100 ms instead of every 5 s, so the test does not wait for batches.
        ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
    ];
    let gateway_ports = harness::gateway::GatewayPorts::free();
    let gateway_port = gateway_ports.public;
    let registration_port = free_port();
    let dlq_port = free_port();
    let secret = harness::gateway::random_secret();
    let with_tracing = |extra: Vec<(&'static str, String)>| -> Vec<(&'static str, String)> {
        let mut all = vec![("KAFKA_BOOTSTRAP_SERVERS", env.kafka_bootstrap.clone()), ("DATABASE_URL", db.url.clone())];
        all.extend(tracing_env.iter().cloned());
        all.extend(extra);
        all
    };
    let mut gateway = ServiceProcess::spawn(
        "gateway",
        &with_tracing(harness::gateway::process_env(gateway_ports, &env.kafka_bootstrap, &db.url, &topic, &secret)),
    );
    let mut registration = ServiceProcess::spawn(
        "registration-service",
        &with_tracing(vec![
            ("REGISTRATIONS_TOPIC", topic.clone()),
            ("CONSUMER_GROUP", format!("{topic}-registration-service")),
            ("REGISTRATION_SERVICE_ADDR", format!("127.0.0.1:{registration_port}")),
            ("IN_PLACE_RETRIES", "1".to_owned()),
            ("IN_PLACE_BACKOFF", "constant".to_owned()),
            ("IN_PLACE_BACKOFF_INITIAL_MS", "100".to_owned()),
            ("RETRY_BACKOFF", "constant".to_owned()),
            ("RETRY_BACKOFF_INITIAL_MS", "1500".to_owned()),
        ]),
    );
    let mut dlq_worker = ServiceProcess::spawn(
        "dlq-worker",
        &with_tracing(vec![
            ("DLQ_TOPIC_PATTERN", format!("^{}$", dead_letter_topic(&topic))),
            ("DLQ_CONSUMER_GROUP", format!("dlq-worker-{topic}")),
            ("DLQ_WORKER_ADDR", format!("127.0.0.1:{dlq_port}")),
            ("RETRY_BACKOFF", "constant".to_owned()),
            ("RETRY_BACKOFF_INITIAL_MS", "1500".to_owned()),
        ]),
    );
    let client = reqwest::Client::new();
    let urls = [
        format!("{}/readyz", gateway_ports.internal_url()),
        format!("http://127.0.0.1:{registration_port}/readyz"),
        format!("http://127.0.0.1:{dlq_port}/healthz"),
    ];
    if let Err(url) = harness::all_ready(&urls, Duration::from_secs(60)).await {
        panic!("{url} never became ready; logs:\n{}\n{}\n{}", gateway.log(), registration.log(), dlq_worker.log());
    }

    // The caller's trace: the gateway must continue it, not start its own.
    let trace_id = Uuid::new_v4().simple().to_string();
    let caller_span = &Uuid::new_v4().simple().to_string()[..16];
    let answer = client
        .post(format!("http://127.0.0.1:{gateway_port}/registrations"))
        .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
        .json(&serde_json::json!({"email": email, "name": "Ada Traced", "password": "a long passphrase"}))
        .send()
        .await
        .expect("POST /registrations");
    assert_eq!(answer.status(), 202, "{}", answer.text().await.unwrap_or_default());
    let request_id =
        answer.json::<serde_json::Value>().await.expect("json")["request_id"].as_str().expect("id").to_owned();

    // The dead letter carries the same trace in its headers.
    let dead_letters = env.read_topic(&dead_letter_topic(&topic), 1, Duration::from_secs(60)).await;
    assert_eq!(dead_letters.len(), 1, "the gated sign-up was not dead-lettered; log:\n{}", registration.log());
    let parent = dead_letters[0].header_str("traceparent").unwrap_or_default().to_owned();
    assert!(parent.starts_with(&format!("00-{trace_id}-")), "the dead letter's traceparent is {parent:?}");
    sqlx::query("DELETE FROM trace_test_gate").execute(&db.pool).await.expect("open the gate");

    let status_url = format!("http://127.0.0.1:{gateway_port}/registrations/{request_id}");
    let completed = wait::within(Duration::from_secs(60), || {
        let (client, url) = (client.clone(), status_url.clone());
        async move {
            match client.get(&url).send().await {
                Ok(r) => r.json::<serde_json::Value>().await.is_ok_and(|v| v["status"] == "completed"),
                Err(_) => false,
            }
        }
    })
    .await;
    assert!(completed, "the sign-up never completed; logs:\n{}\n{}", registration.log(), dlq_worker.log());

    // A poison record with its own trace: parked, and the park is in that trace.
    let poison_trace = Uuid::new_v4().simple().to_string();
    let poison_parent = format!("00-{poison_trace}-{}-01", &Uuid::new_v4().simple().to_string()[..16]);
    env.produce(&topic, Some(b"poison"), Some(b"{not json"), &[("traceparent", poison_parent.as_bytes())]).await;

    // Every hop, in the caller's trace.
    let expected: [(&str, &str); 7] = [
        ("gateway", "POST /registrations"),
        ("gateway", &format!("{topic} publish")),
        ("registration-service", "process batch"),
        ("registration-service", &format!("{} dead-letter", dead_letter_topic(&topic))),
        ("dlq-worker", "dlq wait"),
        ("dlq-worker", &format!("{topic} re-send")),
        ("dlq-worker", &format!("{topic} publish")),
    ];
    let complete = wait::within(Duration::from_secs(30), || {
        let spans = spans.clone();
        let trace_id = trace_id.clone();
        let poison_trace = poison_trace.clone();
        async move {
            let trace = of_trace(&spans, &trace_id);
            let stores: Vec<_> = trace.iter().filter(|s| s.name == "INSERT users").collect();
            expected.iter().all(|(service, name)| trace.iter().any(|s| s.service == *service && s.name == *name))
                && stores.iter().any(|s| s.status == 2)
                && stores.iter().any(|s| s.status != 2)
                && of_trace(&spans, &poison_trace)
                    .iter()
                    .any(|s| s.service == "dlq-worker" && s.name == "parking lot park")
        }
    })
    .await;
    let trace = of_trace(&spans, &trace_id);
    assert!(
        complete,
        "the trace misses hops; it has:\n{}poison trace:\n{}all services seen: {:?}",
        describe(&trace),
        describe(&of_trace(&spans, &poison_trace)),
        spans.all().iter().map(|s| s.service.clone()).collect::<HashSet<_>>()
    );

    // One connected tree: every parent is a span of this trace, or the caller's own span.
    let ids: HashSet<&str> = trace.iter().map(|s| s.span_id.as_str()).collect();
    for span in &trace {
        assert!(
            ids.contains(span.parent_span_id.as_str()) || span.parent_span_id == caller_span,
            "{} / {} has a parent outside the trace ({}):\n{}",
            span.service,
            span.name,
            span.parent_span_id,
            describe(&trace)
        );
    }
    assert_eq!(trace.iter().filter(|s| s.service == "gateway" && s.name == "POST /registrations").count(), 1);
    // Each hop is the child of the previous hop's producer span, not merely of the caller
    // (headers passed through unchanged would also keep the trace id): only the gateway's
    // server span hangs off the caller's span.
    let parent_of = |span: &ReceivedSpan| trace.iter().find(|p| p.span_id == span.parent_span_id);
    let from_caller: Vec<_> =
        trace.iter().filter(|s| s.parent_span_id == caller_span).map(|s| s.name.as_str()).collect();
    assert_eq!(from_caller, ["POST /registrations"], "only the gateway continues the caller's span");
    let publish = format!("{topic} publish");
    let dead_letter_publish = format!("{} publish", dead_letter_topic(&topic));
    for (service, name, parent_service, parent_name) in [
        ("registration-service", "process batch", "gateway", publish.as_str()),
        ("registration-service", "process batch", "dlq-worker", publish.as_str()),
        ("dlq-worker", &format!("{topic} re-send") as &str, "registration-service", dead_letter_publish.as_str()),
        ("dlq-worker", "dlq wait", "registration-service", dead_letter_publish.as_str()),
    ] {
        let found = trace.iter().any(|s| {
            s.service == service
                && s.name == name
                && parent_of(s).is_some_and(|p| p.service == parent_service && p.name == parent_name)
        });
        assert!(found, "no {service} / {name} whose parent is {parent_service} / {parent_name}:\n{}", describe(&trace));
    }

    // Logs and traces join: the services' JSON log lines carry the trace id.
    for process in [&registration, &dlq_worker] {
        assert!(
            process.log().contains(&format!("\"trace_id\":\"{trace_id}\"")),
            "{} logged nothing with trace_id {trace_id}:\n{}",
            process.name,
            process.log()
        );
    }
    for process in [&mut gateway, &mut registration, &mut dlq_worker] {
        let clean = process.terminate(Duration::from_secs(30)).await;
        assert!(clean, "{} did not stop cleanly; log:\n{}", process.name, process.log());
    }
}

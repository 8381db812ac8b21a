//! The per-client budget against a real flood: the `gateway` binary with a real broker and a
//! real database, behind a trusted "proxy" (127.0.0.1 is in `TRUSTED_PROXIES`, so the client
//! is the right-most untrusted hop of `X-Forwarded-For`). One client address floods
//! `POST /registrations` (forging a fresh first hop on every request, which must not earn it a
//! fresh budget) while a well-behaved client signs up at a steady pace under its budget.
//!
//! Asserted: the flooder is answered 429 with `Retry-After` and a problem document, and gets
//! no more 202s than its bucket holds; every sign-up of the well-behaved client is a 202; a
//! peer that is not a trusted proxy (127.0.0.2) cannot escape its budget with forged headers
//! (the control); the 429s are counted on `/metrics`; and the ledger: every stored row was
//! answered 202 (or a 503 that said it may have been recorded), with the content it was sent.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use futures::StreamExt;
use integration_tests::harness::gateway::{process_env, random_secret, GatewayPorts};
use integration_tests::harness::registration::store_everything_on;
use integration_tests::harness::{self, ServiceProcess};
use integration_tests::ledger::{self, Expected, PasswordEvidence};
use integration_tests::{metrics, test_env};
use reliable_messaging::message::REQUEST_ID_HEADER;
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

/// The budget: 2 sign-ups a second per client, 5 at once.
const PER_MINUTE: u32 = 120;
const BURST: u32 = 5;
const FLOOD_FOR: Duration = Duration::from_secs(8);
const FLOOD_IN_FLIGHT: usize = 32;
/// The well-behaved client: one sign-up every 700 ms, under 2 a second.
const POLITE_EVERY: Duration = Duration::from_millis(700);
const FLOODER: &str = "203.0.113.66";
const POLITE: &str = "198.51.100.7";
const PASSWORD: &str = "correct horse battery staple";

/// What one request was told.
#[derive(Debug)]
struct Answer {
    email: String,
    name: &'static str,
    status: StatusCode,
    problem_type: Option<String>,
    content_type: Option<String>,
    retry_after: Option<u64>,
    request_id: Option<Uuid>,
}

impl Answer {
    fn may_be_recorded(&self) -> bool {
        self.status == StatusCode::SERVICE_UNAVAILABLE
            && self.problem_type.as_deref() == Some("/problems/not-accepted")
            && self.request_id.is_some()
    }
}

async fn post(client: &reqwest::Client, url: &str, forwarded_for: &str, name: &'static str) -> Answer {
    let email = format!("{}-{}@example.com", name.to_lowercase(), Uuid::new_v4().simple());
    let response = client
        .post(url)
        .header("X-Forwarded-For", forwarded_for)
        .json(&json!({"email": email, "name": name, "password": PASSWORD}))
        .send()
        .await
        .expect("POST /registrations");
    let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (status, content_type, retry_after) =
        (response.status(), header("content-type"), header("retry-after").and_then(|v| v.parse().ok()));
    let request_id = header(REQUEST_ID_HEADER).and_then(|v| Uuid::parse_str(&v).ok());
    let problem: Value = response.json().await.unwrap_or_default();
    let problem_type = problem["type"].as_str().map(str::to_owned);
    Answer { email, name, status, problem_type, content_type, retry_after, request_id }
}

fn tally(answers: &[Answer]) -> HashMap<String, usize> {
    let mut by_kind = HashMap::new();
    for a in answers {
        *by_kind.entry(format!("{} {}", a.status.as_u16(), a.problem_type.as_deref().unwrap_or("-"))).or_default() += 1;
    }
    by_kind
}

fn accepted(answers: &[Answer]) -> usize {
    answers.iter().filter(|a| a.status == StatusCode::ACCEPTED).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_client_gets_429s_while_a_well_behaved_one_signs_up_and_every_stored_row_was_told_so() {
    let env = test_env().await;
    let db = env.fresh_database().await;
    let topic = env.unique_topic("client-flood");
    env.create_topics(&[&topic], 1).await;
    let ports = GatewayPorts::free();
    let mut gateway_env = process_env(ports, &env.kafka_bootstrap, &db.url, &topic, &random_secret());
    gateway_env.retain(|(k, _)| *k != "CLIENT_RATE_LIMIT");
    gateway_env.extend([
        ("CLIENT_RATE_LIMIT", "on".to_owned()),
        ("CLIENT_RATE_PER_MINUTE", PER_MINUTE.to_string()),
        ("CLIENT_RATE_BURST", BURST.to_string()),
        // Only 127.0.0.1 is a proxy: a request from 127.0.0.2 is its own client, whatever
        // its header says.
        ("TRUSTED_PROXIES", "127.0.0.1".to_owned()),
    ]);
    let mut gateway = ServiceProcess::spawn("gateway", &gateway_env);
    if !harness::ready_within(&format!("{}/readyz", ports.internal_url()), Duration::from_secs(60)).await {
        panic!("the gateway never became ready:\n{}", gateway.log());
    }
    let url = format!("{}/registrations", ports.url());

    // The flood and the well-behaved client, at the same time, both through the "proxy".
    let flood_client = reqwest::Client::builder().pool_max_idle_per_host(FLOOD_IN_FLIGHT).build().unwrap();
    let started = Instant::now();
    let flood = {
        let url = url.clone();
        futures::stream::iter(0..)
            .take_while(move |_| std::future::ready(started.elapsed() < FLOOD_FOR))
            .map(move |i: u64| {
                let (client, url) = (flood_client.clone(), url.clone());
                // A forged first hop, different every time; the proxy appended the real one.
                let forwarded = format!("10.{}.{}.{}, {FLOODER}", (i >> 16) & 255, (i >> 8) & 255, i & 255);
                async move { post(&client, &url, &forwarded, "Flooder").await }
            })
            .buffer_unordered(FLOOD_IN_FLIGHT)
            .collect::<Vec<Answer>>()
    };
    let polite = {
        let (client, url) = (reqwest::Client::new(), url.clone());
        async move {
            let mut answers = Vec::new();
            let mut tick = tokio::time::interval(POLITE_EVERY);
            while started.elapsed() < FLOOD_FOR {
                tick.tick().await;
                answers.push(post(&client, &url, POLITE, "Polite").await);
            }
            answers
        }
    };
    let (flood, polite) =
        tokio::time::timeout(Duration::from_secs(60), async { tokio::join!(flood, polite) }).await.expect("flood ends");
    let flooded_for = started.elapsed();

    // The control: a peer that is no trusted proxy, forging a new address per request.
    let untrusted = reqwest::Client::builder().local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))).build().unwrap();
    let mut forged = Vec::new();
    for i in 0..(2 * BURST) {
        forged.push(post(&untrusted, &url, &format!("192.0.2.{i}"), "Forger").await);
    }
    // The one labelled series, read from the page itself (the `metrics` helpers sum over labels).
    let page = metrics::scrape(ports.internal).await.expect("the gateway's /metrics on its internal listener");
    let rate_limited = page
        .lines()
        .find_map(|l| l.strip_prefix("gateway_registrations_rejected_total{reason=\"rate_limited\"} "))
        .and_then(|v| v.trim().parse::<f64>().ok());
    assert!(gateway.terminate(Duration::from_secs(30)).await, "the gateway stops cleanly:\n{}", gateway.log());
    eprintln!(
        "flood: {} requests in {flooded_for:?}: {:?}; polite: {:?}; forger: {:?}",
        flood.len(),
        tally(&flood),
        tally(&polite),
        tally(&forged)
    );

    // The flooder hit its budget: 429 problem documents with Retry-After, and no more 202s
    // than its bucket could hold over the flood.
    let limited: Vec<&Answer> = flood.iter().filter(|a| a.status == StatusCode::TOO_MANY_REQUESTS).collect();
    assert!(limited.len() > flood.len() / 2, "the flooder is mostly refused: {:?}", tally(&flood));
    for a in &limited {
        assert_eq!(a.problem_type.as_deref(), Some("/problems/rate-limited"), "{a:?}");
        assert_eq!(a.content_type.as_deref(), Some("application/problem+json"), "{a:?}");
        assert!(a.retry_after.is_some_and(|s| s >= 1), "a 429 says when to retry: {a:?}");
        assert!(a.request_id.is_none(), "a 429 was not accepted, so it has no request id: {a:?}");
    }
    let budget = BURST as f64 + f64::from(PER_MINUTE) / 60.0 * flooded_for.as_secs_f64() + 1.0;
    assert!(accepted(&flood) as f64 <= budget, "the flooder got {} 202s, budget {budget:.0}", accepted(&flood));
    assert!(accepted(&flood) >= 1, "the flooder's budget is real, not zero: {:?}", tally(&flood));

    // The well-behaved client was served throughout.
    assert!(polite.len() >= 8, "the polite client made its sign-ups: {}", polite.len());
    assert_eq!(accepted(&polite), polite.len(), "every polite sign-up accepted: {:?}", tally(&polite));

    // The control: forged headers from an untrusted peer share the peer's one budget.
    assert!(accepted(&forged) <= BURST as usize + 1, "an untrusted peer's header was believed: {:?}", tally(&forged));
    assert!(forged.iter().any(|a| a.status == StatusCode::TOO_MANY_REQUESTS), "{:?}", tally(&forged));

    // Metered: every 429 counted.
    let refused = limited.len() + forged.iter().filter(|a| a.status == StatusCode::TOO_MANY_REQUESTS).count();
    assert_eq!(rate_limited, Some(refused as f64), "the rate_limited counter on the internal listener");

    // The ledger: store what the broker holds, then hold every row to its answer.
    let on_topic = store_everything_on(env, &topic, &db).await;
    let answers: Vec<&Answer> = flood.iter().chain(&polite).chain(&forged).collect();
    let expected: Vec<Expected> = answers
        .iter()
        .filter(|a| a.status == StatusCode::ACCEPTED)
        .map(|a| Expected {
            request_id: a.request_id.expect("a 202 carries its request id"),
            email: a.email.clone(),
            name: a.name.to_owned(),
            password: PasswordEvidence::Plaintext(PASSWORD.into()),
        })
        .collect();
    let report = ledger::check(&db, &expected).await;
    let may_be: Vec<Uuid> = answers.iter().filter(|a| a.may_be_recorded()).filter_map(|a| a.request_id).collect();
    let untrue = report.stored_but_answered_not_accepted(&may_be);
    assert!(report.lost.is_empty() && report.duplicated.is_empty() && report.mismatched.is_empty(), "{report}");
    assert!(untrue.is_empty(), "{} stored row(s) were answered \"not accepted\": {untrue:?}", untrue.len());
    assert_eq!(on_topic as usize, expected.len() + report.unexpected.len(), "every record accounted for");
}

//! HTTP load on the gateway's `POST /registrations`.
//!
//! * [`open_loop`]: requests leave at a constant arrival rate whatever the answers do, and each
//!   latency is measured from the request's *intended* send time. A stalled server therefore
//!   shows up as latency of every request that should have been sent meanwhile, instead of
//!   silently lowering the request rate (coordinated omission).
//! * [`saturate`]: a fixed number of clients send back to back, to find the maximum rate.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hdrhistogram::Histogram;
use tokio::task::JoinSet;
use tokio::time::Instant;
use uuid::Uuid;

/// Longest a single request may take before it counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A request the gateway answered 202.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub request_id: Uuid,
    /// Wall clock of the intended send time (comparable with database timestamps).
    pub intended_at: DateTime<Utc>,
    pub answered_at: DateTime<Utc>,
}

#[derive(Debug)]
pub struct LoadResult {
    /// Latency of the 202 answers, in microseconds, from the intended send time.
    pub accepted_latency_us: Histogram<u64>,
    pub accepted: Vec<Accepted>,
    /// Other answers by status code; 0 = transport error or timeout.
    pub other: BTreeMap<u16, u64>,
    pub sent: u64,
    pub elapsed: Duration,
}

impl LoadResult {
    pub fn not_accepted(&self) -> u64 {
        self.other.values().sum()
    }
}

/// Builds sign-up bodies: a unique, valid email per request.
#[derive(Clone)]
pub struct SignUps {
    client: reqwest::Client,
    url: String,
    run_id: String,
    counter: Arc<AtomicU64>,
    /// `X-Forwarded-For`, for a gateway that trusts this harness as its proxy: which client
    /// the sign-ups come from.
    forwarded_for: Option<Arc<str>>,
}

impl SignUps {
    pub fn new(gateway_base_url: &str, run_id: &str) -> anyhow::Result<Self> {
        let client = Self::client()?;
        Ok(SignUps {
            client,
            url: format!("{gateway_base_url}/registrations"),
            run_id: run_id.to_owned(),
            counter: Arc::default(),
            forwarded_for: None,
        })
    }

    fn client() -> anyhow::Result<reqwest::Client> {
        Ok(reqwest::Client::builder().timeout(REQUEST_TIMEOUT).pool_max_idle_per_host(256).tcp_nodelay(true).build()?)
    }

    /// The same sign-ups (one shared counter, so emails stay unique) from another client:
    /// `address` in `X-Forwarded-For`, and connections of its own.
    pub fn as_client(&self, address: &str) -> anyhow::Result<Self> {
        Ok(Self { client: Self::client()?, forwarded_for: Some(Arc::from(address)), ..self.clone() })
    }

    /// Sends one sign-up; the status code (0 on a transport error) and, for a 202, the request id.
    async fn send(&self) -> (u16, Option<Uuid>) {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let body = serde_json::json!({
            "email": format!("load-{}-{n}@example.com", self.run_id),
            "name": "Load Test",
            "password": format!("correct horse battery staple {n}"),
        });
        let mut request = self.client.post(&self.url).json(&body);
        if let Some(address) = &self.forwarded_for {
            request = request.header("X-Forwarded-For", address.as_ref());
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(_) => return (0, None),
        };
        let status = response.status().as_u16();
        if status != 202 {
            let _ = response.bytes().await;
            return (status, None);
        }
        let id = response
            .json::<serde_json::Value>()
            .await
            .ok()
            .and_then(|v| v.get("request_id").and_then(|id| id.as_str()).and_then(|s| Uuid::parse_str(s).ok()));
        (status, id)
    }
}

fn histogram() -> Histogram<u64> {
    // 1 µs to 10 minutes, 3 significant digits.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

/// Sends at `rate` requests per second for `duration`, then waits for the answers.
pub async fn open_loop(signups: &SignUps, rate: f64, duration: Duration) -> LoadResult {
    assert!(rate > 0.0, "rate must be positive");
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now();
    let wall_start = Utc::now();
    let mut tasks = JoinSet::new();
    let mut sent = 0u64;
    loop {
        let offset = interval.mul_f64(sent as f64);
        if offset >= duration {
            break;
        }
        let intended = start + offset;
        tokio::time::sleep_until(intended).await;
        let signups = signups.clone();
        let intended_at = wall_start + chrono::Duration::from_std(offset).expect("small offset");
        tasks.spawn(async move {
            let (status, id) = signups.send().await;
            let latency = intended.elapsed();
            (status, id, latency, intended_at, Utc::now())
        });
        sent += 1;
    }
    let mut result = LoadResult {
        accepted_latency_us: histogram(),
        accepted: Vec::new(),
        other: BTreeMap::new(),
        sent,
        elapsed: Duration::ZERO,
    };
    while let Some(joined) = tasks.join_next().await {
        let Ok((status, id, latency, intended_at, answered_at)) = joined else {
            continue;
        };
        match (status, id) {
            (202, Some(request_id)) => {
                result.accepted_latency_us.saturating_record(latency.as_micros() as u64);
                result.accepted.push(Accepted { request_id, intended_at, answered_at });
            }
            _ => *result.other.entry(status).or_default() += 1,
        }
    }
    result.elapsed = start.elapsed();
    result
}

/// `clients` senders back to back for `duration`; latency here is per request (closed loop).
pub async fn saturate(signups: &SignUps, clients: usize, duration: Duration) -> LoadResult {
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = JoinSet::new();
    for _ in 0..clients {
        let signups = signups.clone();
        tasks.spawn(async move {
            let mut hist = histogram();
            let mut other: BTreeMap<u16, u64> = BTreeMap::new();
            let mut sent = 0u64;
            while Instant::now() < deadline {
                let t = Instant::now();
                let (status, _) = signups.send().await;
                sent += 1;
                if status == 202 {
                    hist.saturating_record(t.elapsed().as_micros() as u64);
                } else {
                    *other.entry(status).or_default() += 1;
                    // An overloaded answer comes back at once; do not spin on it.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            (hist, other, sent)
        });
    }
    let mut result = LoadResult {
        accepted_latency_us: histogram(),
        accepted: Vec::new(),
        other: BTreeMap::new(),
        sent: 0,
        elapsed: Duration::ZERO,
    };
    while let Some(joined) = tasks.join_next().await {
        let Ok((hist, other, sent)) = joined else {
            continue;
        };
        result.accepted_latency_us.add(&hist).expect("same bounds");
        for (k, v) in other {
            *result.other.entry(k).or_default() += v;
        }
        result.sent += sent;
    }
    result.elapsed = start.elapsed();
    result
}

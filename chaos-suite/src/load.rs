//! Sign-up load as a careful client sends it: a steady arrival rate, an `Idempotency-Key` per
//! sign-up, and retries of the same key after `503 Retry-After` until the gateway accepts.
//! Only a `202` counts as accepted: that is the promise the ledger holds the system to.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use integration_tests::ledger::{Expected, PasswordEvidence};
use rand::Rng;
use tokio::sync::Mutex;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The password every load sign-up sends; the ledger verifies stored hashes against it.
const PASSWORD: &str = "correct horse battery";
const NAME: &str = "Chaos Monkey";

#[derive(Debug, Default, Clone)]
pub struct LoadStats {
    /// Every 202, with the content it was for.
    pub accepted: Vec<Expected>,
    /// Non-202 answers and connection failures that were retried.
    pub refused: u64,
    /// Sign-ups never accepted within the retry deadline.
    pub gave_up: u64,
    /// Answers that should never happen for a valid sign-up (4xx other than 409/429, 5xx other than 503).
    pub unexpected: Vec<String>,
    /// Every answer in the order it came, for checks on a time window ("no 202 while ...").
    pub answers: Vec<Answer>,
    /// POSTs sent per accepted request id: 1 when accepted at the first try. Each attempt may
    /// have published a record, so this bounds the records a request id may have on the topic.
    pub attempts: HashMap<Uuid, u32>,
}

/// One answer the load received.
#[derive(Debug, Clone, Copy)]
pub struct Answer {
    /// When the request was sent.
    pub sent: Instant,
    /// When its answer (or the failure) came.
    pub at: Instant,
    /// `None`: no HTTP answer (connection refused, reset, timed out).
    pub status: Option<u16>,
    /// A `Retry-After` header came with it.
    pub retry_after: bool,
}

impl LoadStats {
    /// The answers received between `from` and `to`.
    pub fn answers_between(&self, from: Instant, to: Instant) -> impl Iterator<Item = &Answer> {
        self.answers.iter().filter(move |a| a.at >= from && a.at < to)
    }
}

pub struct Load {
    stop: CancellationToken,
    handle: tokio::task::JoinHandle<LoadStats>,
}

impl Load {
    /// Starts `rate` sign-ups per second against `gateway_url`. About 2 % reuse an email that
    /// was already used, so the ledger also sees business rejections.
    pub fn start(gateway_url: &str, rate: u32) -> Load {
        let stop = CancellationToken::new();
        let url = format!("{gateway_url}/registrations");
        let flag = stop.clone();
        let handle = tokio::spawn(async move {
            let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().expect("http client");
            let stats = Arc::new(Mutex::new(LoadStats::default()));
            let mut tasks = JoinSet::new();
            let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
            let mut emails: Vec<String> = Vec::new();
            while !flag.is_cancelled() {
                ticker.tick().await;
                let email = if !emails.is_empty() && rand::thread_rng().gen_bool(0.02) {
                    emails[rand::thread_rng().gen_range(0..emails.len())].clone()
                } else {
                    let e = format!("chaos-{}@example.com", Uuid::new_v4().simple());
                    emails.push(e.clone());
                    e
                };
                tasks.spawn(sign_up(client.clone(), url.clone(), email, stats.clone()));
            }
            while tasks.join_next().await.is_some() {}
            let stats = stats.lock().await.clone();
            stats
        });
        Load { stop, handle }
    }

    /// Stops sending new sign-ups and waits for those in flight (they retry until accepted).
    pub async fn stop(self) -> LoadStats {
        self.stop.cancel();
        self.handle.await.expect("load task")
    }
}

async fn sign_up(client: reqwest::Client, url: String, email: String, stats: Arc<Mutex<LoadStats>>) {
    let key = Uuid::new_v4().to_string();
    let body = serde_json::json!({"email": email, "name": NAME, "password": PASSWORD});
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let sent = Instant::now();
        let response = client.post(&url).header("Idempotency-Key", &key).json(&body).send().await;
        let answer = Answer {
            sent,
            at: Instant::now(),
            status: response.as_ref().ok().map(|r| r.status().as_u16()),
            retry_after: response.as_ref().is_ok_and(|r| r.headers().contains_key("retry-after")),
        };
        stats.lock().await.answers.push(answer);
        let retry_after = match response {
            Ok(r) if r.status().as_u16() == 202 => {
                let json: serde_json::Value = r.json().await.unwrap_or_default();
                match json["request_id"].as_str().and_then(|s| Uuid::parse_str(s).ok()) {
                    Some(request_id) => {
                        let mut stats = stats.lock().await;
                        *stats.attempts.entry(request_id).or_default() += attempts;
                        stats.accepted.push(Expected {
                            request_id,
                            email: email.clone(),
                            name: NAME.to_owned(),
                            password: PasswordEvidence::Plaintext(PASSWORD.to_owned()),
                        });
                    }
                    None => stats.lock().await.unexpected.push("202 without a request_id".into()),
                }
                return;
            }
            Ok(r) if r.status().as_u16() == 503 => {
                let secs =
                    r.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
                Duration::from_millis(secs.map_or(500, |s| (s * 1000).min(1_000)))
            }
            Ok(r) => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                stats.lock().await.unexpected.push(format!("{status}: {}", text.chars().take(200).collect::<String>()));
                return;
            }
            Err(_) => Duration::from_millis(500),
        };
        stats.lock().await.refused += 1;
        if tokio::time::Instant::now() + retry_after > deadline {
            stats.lock().await.gave_up += 1;
            return;
        }
        tokio::time::sleep(retry_after).await;
    }
}

/// One sign-up for `email`, retried after 503 like the load's; what was accepted, if it was.
pub async fn sign_up_once(gateway_url: &str, email: &str) -> Option<Expected> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().expect("http client");
    let stats = Arc::new(Mutex::new(LoadStats::default()));
    sign_up(client, format!("{gateway_url}/registrations"), email.to_owned(), stats.clone()).await;
    let accepted = stats.lock().await.accepted.pop();
    accepted
}

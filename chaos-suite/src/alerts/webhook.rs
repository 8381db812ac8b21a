//! Alertmanager's webhook receiver, inside the test: every notification Alertmanager sends is
//! kept as one [`Notification`] per alert, with the time it arrived.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::Value;

/// One alert of one notification.
#[derive(Debug, Clone)]
pub struct Notification {
    pub alertname: String,
    /// `firing` or `resolved`.
    pub status: String,
    pub job: String,
    pub summary: String,
    pub received: Instant,
}

#[derive(Clone, Default)]
pub struct Received(Arc<Mutex<Vec<Notification>>>);

impl Received {
    pub fn all(&self) -> Vec<Notification> {
        self.0.lock().expect("webhook lock").clone()
    }

    /// Whether `alertname` arrived with `status` at or after `since`.
    pub fn has(&self, alertname: &str, status: &str, since: Instant) -> bool {
        self.all().iter().any(|n| n.alertname == alertname && n.status == status && n.received >= since)
    }

    /// The names of the alerts that arrived firing at or after `since`.
    pub fn fired_since(&self, since: Instant) -> Vec<String> {
        let mut names: Vec<String> = self
            .all()
            .into_iter()
            .filter(|n| n.status == "firing" && n.received >= since)
            .map(|n| format!("{} ({})", n.alertname, n.job))
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

/// Serves `POST /alerts` on a free loopback port; returns its URL and what it receives.
pub async fn start() -> (String, Received) {
    let received = Received::default();
    let app = Router::new().route("/alerts", post(receive)).with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the webhook receiver");
    let url = format!("http://{}/alerts", listener.local_addr().expect("webhook address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

async fn receive(State(received): State<Received>, Json(body): Json<Value>) {
    let now = Instant::now();
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    let mut list = received.0.lock().expect("webhook lock");
    for alert in body.get("alerts").and_then(Value::as_array).into_iter().flatten() {
        let labels = alert.get("labels").cloned().unwrap_or_default();
        let annotations = alert.get("annotations").cloned().unwrap_or_default();
        let n = Notification {
            alertname: text(&labels, "alertname"),
            status: text(alert, "status"),
            job: text(&labels, "job"),
            summary: text(&annotations, "summary"),
            received: now,
        };
        eprintln!("    alert {}: {} — {}", n.status, n.alertname, n.summary);
        list.push(n);
    }
}

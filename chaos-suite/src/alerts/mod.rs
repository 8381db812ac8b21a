//! `chaos --alerts`: the shipped Prometheus rules against the real services, with a real
//! Prometheus and Alertmanager ([`stack`]) and Alertmanager's webhook served by the test
//! ([`webhook`]). The rules are a time-compressed copy of the shipped files ([`compress`],
//! durations divided by [`stack::TIME_SCALE`]); the promtool tests hold the real durations.
//!
//! One scenario, in phases: a healthy run under load must raise nothing; the database stopped
//! (`scripts/local-services.sh db-stop`) must raise ConsumerPaused and
//! SignupsAcceptedNotStored, resolved after `db-start`; a poison flood must halt the consumer
//! at the flood limit and raise ConsumerHalted, resolved once the instance is restarted; the
//! broker stopped must raise GatewayUnavailable, resolved after `kafka-start`. Whatever it
//! stops it starts again, even when a phase fails.

mod compress;
mod stack;
mod webhook;

use std::time::{Duration, Instant};

use futures::FutureExt;
use integration_tests::cluster::{Cluster, ClusterConfig};
use integration_tests::{metrics, wait};

use crate::load::{Load, LoadStats};
use crate::report::{ScenarioResult, Verdict};
use crate::scenarios::{finish, local_services, Scenario};
use crate::Options;
use stack::Stack;
use webhook::Received;

/// The flood limit the scenario runs the registration-service with: this many permanent
/// failures in a row halt it.
const FLOOD_LIMIT: usize = 5;
/// How long the healthy run lasts: longer than every compressed `for:` and range (the longest,
/// 15 minutes, is 45 s at the scale of 20).
const HEALTHY: Duration = Duration::from_secs(50);
/// How long an alert may take to arrive after its fault landed, or to resolve after its end.
const ARRIVAL: Duration = Duration::from_secs(60);

pub fn all() -> Vec<Scenario> {
    vec![Scenario {
        name: "alerts-fire-and-resolve",
        what: "real Prometheus + Alertmanager on the shipped rules (time-compressed): nothing on a healthy run; database stop, poison flood, broker stop each raise their alert, resolved after",
        run: |o| run(o).boxed(),
    }]
}

/// What the phases expected and did not see, and what the webhook received.
struct Phases {
    failures: Vec<String>,
    received: Received,
}

impl Phases {
    /// Requires `alertname` to arrive with `status` within [`ARRIVAL`] of `since`.
    async fn expect(&mut self, alertname: &str, status: &str, since: Instant) -> bool {
        let r = self.received.clone();
        let arrived = wait::within(ARRIVAL, || {
            let r = r.clone();
            async move { r.has(alertname, status, since) }
        })
        .await;
        self.require(arrived, format!("{alertname} did not arrive {status} within {ARRIVAL:?}"));
        if arrived {
            eprintln!("    {alertname} {status} after {:.1} s", since.elapsed().as_secs_f64());
        }
        arrived
    }

    fn require(&mut self, ok: bool, why: impl Into<String>) {
        if !ok {
            self.failures.push(why.into());
        }
    }
}

async fn run(o: Options) -> ScenarioResult {
    let config = ClusterConfig {
        extra_env: vec![("DLQ_MAX_CONSECUTIVE_PERMANENT", FLOOD_LIMIT.to_string())],
        ..ClusterConfig::default()
    };
    let mut cluster = Cluster::start(config).await;
    let gateway_port: u16 = cluster.gateway_url.rsplit(':').next().and_then(|p| p.parse().ok()).expect("gateway port");
    let (webhook_url, received) = webhook::start().await;
    let targets = [
        ("gateway", gateway_port),
        ("registration-service", cluster.registration_port(0)),
        ("dlq-worker", cluster.dlq_worker_port()),
    ];
    let stack = match Stack::start(&targets, &webhook_url).await {
        Ok(stack) => stack,
        Err(e) => {
            return finish(ScenarioResult::failed("alerts-fire-and-resolve", e), cluster).await;
        }
    };
    let mut phases = Phases { failures: Vec::new(), received };
    let mut accepted = Vec::new();
    let mut refused = 0;
    let rate = o.rate.min(20);

    // Healthy: load, no fault, no alert at all.
    let load = Load::start(&cluster.gateway_url, rate);
    let healthy_from = Instant::now();
    tokio::time::sleep(HEALTHY).await;
    let healthy = phases.received.fired_since(healthy_from);
    phases.require(healthy.is_empty(), format!("alerts on a healthy run: {healthy:?}"));

    // The database stopped: the consumer pauses on the work it holds.
    let db_from = Instant::now();
    local_services("db-stop").await;
    let port = cluster.registration_port(0);
    let paused = wait::within(Duration::from_secs(20), || async move {
        metrics::read(port, "registration_service_paused").await == Some(1.0)
    })
    .await;
    phases.require(paused, "the database stop never paused the consumer: the fault hit no work");
    let fired = phases.expect("ConsumerPaused", "firing", db_from).await
        & phases.expect("SignupsAcceptedNotStored", "firing", db_from).await;
    let db_back = Instant::now();
    local_services("db-start").await;
    if fired {
        phases.expect("ConsumerPaused", "resolved", db_back).await;
        phases.expect("SignupsAcceptedNotStored", "resolved", db_back).await;
    }
    collect(load.stop().await, &mut accepted, &mut refused);

    // A poison flood, without load so that nothing good comes between the poison records: the
    // consumer halts at the flood limit.
    let flood_from = Instant::now();
    for _ in 0..FLOOD_LIMIT {
        cluster.env.produce(&cluster.topic, Some(b"poison"), Some(b"\x00 not a registration"), &[]).await;
    }
    let halted = wait::within(Duration::from_secs(30), || async move {
        metrics::read(port, "registration_service_halted").await == Some(1.0)
    })
    .await;
    phases.require(halted, "the poison flood did not halt the consumer");
    if phases.expect("ConsumerHalted", "firing", flood_from).await {
        // The operator's fix: restart it (the record that tripped the limit is dead-lettered
        // now, alone). The halted instance leaves the targets first, so its restart is no outage.
        stack.retarget("registration-service", &[]);
        let restarted = Instant::now();
        cluster.terminate_registration(0).await;
        cluster.restart_registration(0);
        cluster.wait_registration_assigned(0).await;
        stack.retarget("registration-service", &[cluster.registration_port(0)]);
        phases.expect("ConsumerHalted", "resolved", restarted).await;
    }

    // The broker stopped: the gateway answers 503.
    let load = Load::start(&cluster.gateway_url, rate);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let broker_from = Instant::now();
    local_services("kafka-stop").await;
    let fired = phases.expect("GatewayUnavailable", "firing", broker_from).await;
    let broker_back = Instant::now();
    local_services("kafka-start").await;
    if fired {
        phases.expect("GatewayUnavailable", "resolved", broker_back).await;
    }
    collect(load.stop().await, &mut accepted, &mut refused);

    let others: Vec<String> = phases
        .received
        .fired_since(db_from)
        .into_iter()
        .filter(|a| {
            !["ConsumerPaused", "SignupsAcceptedNotStored", "ConsumerHalted", "GatewayUnavailable"]
                .iter()
                .any(|e| a.starts_with(e))
        })
        .collect();
    let ledger = cluster.settle(&accepted, Duration::from_secs(120)).await;
    let mut result = ScenarioResult::new("alerts-fire-and-resolve", ledger, 3, refused);
    result.require_clean_ledger();
    for why in phases.failures {
        result.require(false, why);
    }
    result.require(result.refused > 0, "the gateway never refused while the broker was down: the stop did not bite");
    result.note = format!(
        "{} notifications; also fired during the faults: {}",
        phases.received.all().len(),
        if others.is_empty() { "none".to_owned() } else { others.join(", ") }
    );
    if result.verdict == Verdict::Fail {
        eprintln!("{}", stack.logs());
    }
    stack.stop();
    finish(result, cluster).await
}

fn collect(stats: LoadStats, accepted: &mut Vec<integration_tests::ledger::Expected>, refused: &mut u64) {
    accepted.extend(stats.accepted);
    *refused += stats.refused;
}

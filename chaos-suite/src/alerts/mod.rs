//! `chaos --alerts`: the shipped Prometheus rules against the real services, with a real
//! Prometheus and Alertmanager ([`stack`]) and Alertmanager's webhook served by the test
//! ([`webhook`]). The rules are a time-compressed copy of the shipped files ([`compress`],
//! durations divided by [`stack::TIME_SCALE`]); the promtool tests hold the real durations.
//!
//! One scenario, in phases: a healthy run under load must raise nothing; the database stopped
//! (`scripts/local-services.sh db-stop`) must raise ConsumerPaused and
//! SignupsAcceptedNotStored, resolved after `db-start`; a poison flood must halt the consumer
//! at the flood limit and raise ConsumerHalted, resolved once the instance is restarted; the
//! broker stopped must raise GatewayUnavailable, resolved after `kafka-start`. Each must
//! arrive at the webhook during its fault (the fault is ended only after) and resolve after
//! it; nothing else may fire during the faults but what they explain. The negative control: a
//! copy of ConsumerPaused with its metric name broken is loaded beside the rules, and the same
//! check must report it missing while the real one arrived. Whatever it stops it starts again.

mod compress;
mod stack;
mod webhook;

use std::time::{Duration, Instant};

use futures::FutureExt;
use integration_tests::cluster::{Cluster, ClusterConfig};
use integration_tests::{metrics, wait};

use crate::load::Load;
use crate::report::{ScenarioResult, Verdict};
use crate::scenarios::{finish, local_services, Scenario};
use crate::Options;
use stack::Stack;
use webhook::Received;

/// The flood limit the scenario runs the registration-service with: after this many permanent
/// failures in a row are dead-lettered, the next one halts it.
const FLOOD_LIMIT: usize = 5;
/// How long the healthy run lasts: longer than every compressed `for:` and range (the longest,
/// 15 minutes, is 45 s at the scale of 20).
const HEALTHY: Duration = Duration::from_secs(50);
/// How long an alert may take to arrive after its fault landed, or to resolve after its end.
const ARRIVAL: Duration = Duration::from_secs(60);
/// The negative control: a copy of ConsumerPaused that cannot match (its metric name broken),
/// with the same `for:`. Once the real alert has arrived, the copy had as long, and this much
/// more, to arrive too; the scenario's own check must report it missing.
const CONTROL: (&str, &str, &str) = ("ConsumerPaused", "_paused", "_pausd");
const CONTROL_GRACE: Duration = Duration::from_secs(10);

pub fn all() -> Vec<Scenario> {
    vec![Scenario {
        name: "alerts-fire-and-resolve",
        what: "real Prometheus + Alertmanager on the shipped rules (time-compressed): nothing on a healthy run; database stop, poison flood, broker stop each raise their alert during the fault, resolved after; a broken copy of one rule is reported missing",
        run: |o| run(o).boxed(),
    }]
}

/// What the phases expected and did not see, when what they saw arrived, and what the webhook
/// received.
struct Phases {
    failures: Vec<String>,
    timeline: Vec<String>,
    received: Received,
}

impl Phases {
    fn new(received: Received) -> Phases {
        Phases { failures: Vec::new(), timeline: Vec::new(), received }
    }

    /// Requires `alertname` to arrive with `status` within [`ARRIVAL`] of `since`.
    async fn expect(&mut self, alertname: &str, status: &str, since: Instant) -> bool {
        let arrived = arrival(&self.received, alertname, status, since, ARRIVAL).await;
        self.record(alertname, status, arrived, ARRIVAL)
    }

    /// Notes when `alertname` arrived with `status`, or fails the phase if it did not.
    fn record(&mut self, alertname: &str, status: &str, arrived: Option<Duration>, within: Duration) -> bool {
        match arrived {
            Some(after) => {
                eprintln!("    {alertname} {status} after {:.1} s", after.as_secs_f64());
                self.timeline.push(format!("{alertname} {status} {:.0} s", after.as_secs_f64()));
            }
            None => self.failures.push(format!("{alertname} did not arrive {status} within {within:?}")),
        }
        arrived.is_some()
    }

    fn require(&mut self, ok: bool, why: impl Into<String>) {
        if !ok {
            self.failures.push(why.into());
        }
    }
}

/// How long after `since` `alertname` arrived at the webhook with `status`, waiting at most
/// `within` from now; `None` if it did not.
async fn arrival(
    received: &Received,
    alertname: &str,
    status: &str,
    since: Instant,
    within: Duration,
) -> Option<Duration> {
    let arrived = wait::within(within, || {
        let r = received.clone();
        async move { r.has(alertname, status, since) }
    })
    .await;
    arrived.then(|| since.elapsed())
}

async fn run(o: Options) -> ScenarioResult {
    let config = ClusterConfig {
        extra_env: vec![("DLQ_MAX_CONSECUTIVE_PERMANENT", FLOOD_LIMIT.to_string())],
        ..ClusterConfig::default()
    };
    let mut cluster = Cluster::start(config).await;
    // Prometheus scrapes the gateway's internal listener (its /metrics is not on the public one).
    let gateway_port: u16 =
        cluster.gateway_internal_url.rsplit(':').next().and_then(|p| p.parse().ok()).expect("gateway internal port");
    let (webhook_url, received) = webhook::start().await;
    let targets = [
        ("gateway", gateway_port),
        ("registration-service", cluster.registration_port(0)),
        ("dlq-worker", cluster.dlq_worker_port()),
    ];
    let (control_alert, from, to) = CONTROL;
    let control_rules = stack::compressed_rules("signup.rules.yml")
        .and_then(|rules| compress::broken_copy(&rules, control_alert, from, to));
    let stack = match control_rules {
        Ok(rules) => Stack::start(&targets, &webhook_url, &rules).await,
        Err(e) => Err(e),
    };
    let stack = match stack {
        Ok(stack) => stack,
        Err(e) => return finish(ScenarioResult::failed("alerts-fire-and-resolve", e), cluster).await,
    };
    let mut phases = Phases::new(received);
    let mut loads = Vec::new();
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
    let (paused_alert, stall_alert) = tokio::join!(
        arrival(&phases.received, "ConsumerPaused", "firing", db_from, ARRIVAL),
        arrival(&phases.received, "SignupsAcceptedNotStored", "firing", db_from, ARRIVAL),
    );
    let fired = phases.record("ConsumerPaused", "firing", paused_alert, ARRIVAL)
        & phases.record("SignupsAcceptedNotStored", "firing", stall_alert, ARRIVAL);
    // The negative control, through the same check, while the fault still holds.
    let broken = format!("{control_alert}BrokenCopy");
    let mut control = Phases::new(phases.received.clone());
    let control_arrived = arrival(&control.received, &broken, "firing", db_from, CONTROL_GRACE).await;
    control.record(&broken, "firing", control_arrived, CONTROL_GRACE);
    if control_arrived.is_none() {
        phases.timeline.push(format!("negative control {broken} reported missing"));
    }
    phases.require(
        paused_alert.is_some() && control.failures.len() == 1 && control.failures[0].starts_with(&broken),
        format!("negative control: the check did not report {broken} missing: {:?}", control.failures),
    );
    let db_back = Instant::now();
    local_services("db-start").await;
    if fired {
        phases.expect("ConsumerPaused", "resolved", db_back).await;
        phases.expect("SignupsAcceptedNotStored", "resolved", db_back).await;
    }
    loads.push(load.stop().await);

    // A poison flood, without load so that nothing good comes between the poison records: the
    // consumer dead-letters FLOOD_LIMIT of them and halts on the next.
    let flood_from = Instant::now();
    for _ in 0..=FLOOD_LIMIT {
        cluster.env.produce(&cluster.topic, Some(b"poison"), Some(b"\x00 not a registration"), &[]).await;
    }
    let halted = wait::within(Duration::from_secs(30), || async move {
        metrics::read(port, "registration_service_halted").await == Some(1.0)
    })
    .await;
    phases.require(halted, "the poison flood did not halt the consumer");
    if phases.expect("ConsumerHalted", "firing", flood_from).await {
        // The operator's fix: restart it (the record that tripped the limit was left
        // uncommitted and is dead-lettered now, alone). The halted instance leaves the targets first, so its restart is no outage.
        stack.retarget("registration-service", &[]);
        let untargeted = stack.wait_targets("registration-service", 0).await;
        phases.require(untargeted, "Prometheus kept scraping the halted instance after it left the targets");
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
    loads.push(load.stop().await);

    let expected = ["ConsumerPaused", "SignupsAcceptedNotStored", "ConsumerHalted", "GatewayUnavailable"];
    let others: Vec<String> = phases
        .received
        .fired_since(db_from)
        .into_iter()
        .filter(|a| !expected.iter().any(|e| a.starts_with(&format!("{e} "))))
        .collect();
    // True too, and so allowed: the dlq-worker holds its re-sends while the database is down,
    // and while the broker is down every consumer loses its assignment. Anything else that
    // fired during the faults (a service down, a restart loop) would be a false alarm.
    let false_alarms: Vec<&String> = others
        .iter()
        .filter(|a| !a.starts_with("DlqResendsHeld (dlq-worker)") && !a.starts_with("NoPartitionsAssigned "))
        .collect();
    phases.require(false_alarms.is_empty(), format!("alerts that the faults do not explain: {false_alarms:?}"));
    let accepted: Vec<_> = loads.iter().flat_map(|l| l.accepted.iter().cloned()).collect();
    let refused = loads.iter().map(|l| l.refused).sum();
    let ledger = cluster.settle(&accepted, Duration::from_secs(120)).await;
    let mut result = ScenarioResult::new("alerts-fire-and-resolve", ledger, 3, refused);
    result.require_clean_ledger();
    for why in phases.failures {
        result.require(false, why);
    }
    for stats in &loads {
        result.require(
            stats.unexpected.is_empty(),
            format!("unexpected answers to valid sign-ups: {:?}", stats.unexpected.iter().take(3).collect::<Vec<_>>()),
        );
        result.require(stats.gave_up == 0, format!("{} sign-ups never accepted", stats.gave_up));
    }
    result.require(result.refused > 0, "the gateway never refused while the broker was down: the stop did not bite");
    result.note = format!(
        "{}{}{} notifications ({}); also fired during the faults: {}",
        result.note,
        if result.note.is_empty() { "" } else { "; " },
        phases.received.all().len(),
        phases.timeline.join(", "),
        if others.is_empty() { "none".to_owned() } else { others.join(", ") }
    );
    if result.verdict == Verdict::Fail {
        eprintln!("{}", stack.logs());
    }
    stack.stop();
    finish(result, cluster).await
}

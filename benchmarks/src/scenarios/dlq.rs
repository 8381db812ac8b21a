//! The dlq-worker's punctuality: a dead-lettered message with a delay of d must be re-sent
//! after d, not much later, even while 10,000 other messages wait for their own time.
//!
//! The waiting messages are written first, due in an hour, exactly as the registration-service
//! writes them (retry headers, `x-not-before`). Once `/metrics` shows them all scheduled, probes
//! with delays of 1 s and more are written, each with `x-not-before` = its write time + delay.
//! A probe's re-send time is the timestamp the worker's producer put on the re-sent record
//! (CreateTime), so the reader's own speed does not matter.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context as _;
use chrono::Utc;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::Message;
use reliable_messaging::message::retry_metadata::header;
use reliable_messaging::message::Header;
use reliable_messaging::producer::OutboundRecord;

use super::{poll_until, Context, READY_TIMEOUT};
use crate::events;
use crate::services::Service;

pub struct Probe {
    pub delay: Duration,
    /// Re-send time minus write time.
    pub resent_after: Duration,
}

impl Probe {
    pub fn ratio(&self) -> f64 {
        self.resent_after.as_secs_f64() / self.delay.as_secs_f64()
    }
}

pub struct DlqPunctuality {
    pub waiting: usize,
    pub probes: Vec<Probe>,
    /// Set when not every probe came back in time.
    pub probe_problem: Option<String>,
    pub ready_after: Duration,
    pub idle_rss_mib: f64,
    pub peak_rss_mib: f64,
    pub paused_partitions: f64,
}

const PROBE_HEADER: &str = "x-bench-probe";

/// A dead-lettered registration, as the registration-service writes it.
fn dead_letter(run_id: &str, origin: &str, dlq: &str, not_before_ms: i64, probe: Option<&str>) -> OutboundRecord {
    let mut record = events::record(dlq, &events::registration(run_id));
    let at = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut add = |k: &str, v: String| record.headers.push(Header { key: k.to_owned(), value: Some(v.into_bytes()) });
    add(header::RETRY_COUNT, "0".into());
    add(header::ORIGINAL_TOPIC, origin.into());
    add(header::ORIGINAL_PARTITION, "0".into());
    add(header::ORIGINAL_OFFSET, "0".into());
    add(header::FIRST_FAILURE_AT, at.clone());
    add(header::LAST_FAILURE_AT, at);
    add(header::ERROR_KIND, "transient".into());
    add(header::ERROR_MESSAGE, "benchmark: database unreachable".into());
    add(header::NOT_BEFORE, not_before_ms.to_string());
    if let Some(id) = probe {
        add(PROBE_HEADER, id.to_owned());
    }
    record
}

pub async fn run(ctx: &Context<'_>) -> anyhow::Result<DlqPunctuality> {
    let origin = ctx.env.create_topic("dlq-origin", 3).await?;
    let dlq = ctx.env.create_topic("dlq-origin-dlq", 3).await?;
    let db = ctx.env.fresh_database("dlq").await?;
    let env = vec![
        ("KAFKA_BOOTSTRAP_SERVERS", ctx.env.kafka_bootstrap.clone()),
        ("DATABASE_URL", db.url.clone()),
        ("DLQ_TOPIC_PATTERN", format!("^{dlq}$")),
        ("DLQ_CONSUMER_GROUP", format!("{dlq}-worker")),
    ];
    let mut service = Service::spawn(ctx.binaries, "dlq-worker", "DLQ_WORKER_ADDR", &env)?;
    let ready_after = service.wait_ready(READY_TIMEOUT).await?;
    let svc = &service;
    poll_until("the worker has its partitions", Duration::from_secs(30), Duration::from_millis(100), || async {
        Ok((svc.scrape().await?.require("dlq_assigned_partitions")? >= 3.0).then_some(()))
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rss_mib = service.rss_mib()?;
    let rss = service.sample_rss();

    // The others, due in an hour.
    let producer = events::producer(&ctx.env.kafka_bootstrap)?;
    let later = Utc::now().timestamp_millis() + 3_600_000;
    let waiting = ctx.plan.dlq_waiting;
    let fillers = (0..waiting).map(|_| dead_letter(&ctx.env.run_id, &origin, &dlq, later, None)).collect();
    events::produce_all(&producer, fillers).await?;
    poll_until("every waiting message is scheduled", Duration::from_secs(60), Duration::from_millis(100), || async {
        Ok((svc.scrape().await?.require("dlq_scheduled")? >= waiting as f64).then_some(()))
    })
    .await?;

    let reader: StreamConsumer = ctx
        .env
        .kafka_config()
        .set("group.id", format!("{origin}-reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()?;
    reader.subscribe(&[&origin])?;

    // The probes, written at once, each with its own delay.
    let mut written: HashMap<String, (i64, Duration)> = HashMap::new();
    let mut sends = Vec::new();
    for delay in &ctx.plan.dlq_delays {
        for i in 0..ctx.plan.dlq_probes_per_delay {
            let id = format!("{}-{i}", delay.as_millis());
            let at = Utc::now().timestamp_millis();
            let record = dead_letter(&ctx.env.run_id, &origin, &dlq, at + delay.as_millis() as i64, Some(&id));
            written.insert(id, (at, *delay));
            sends.push(record);
        }
    }
    events::produce_all(&producer, sends).await?;

    let longest = ctx.plan.dlq_delays.iter().max().copied().unwrap_or_default();
    let deadline = tokio::time::Instant::now() + longest + Duration::from_secs(30);
    let mut probes = Vec::new();
    while probes.len() < written.len() {
        let message = match tokio::time::timeout_at(deadline, reader.recv()).await {
            Ok(m) => m.context("reading the original topic")?,
            Err(_) => break,
        };
        let probe_id = message.headers().and_then(|hs| {
            use rdkafka::message::Headers;
            hs.iter()
                .find(|h| h.key == PROBE_HEADER)
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        });
        let (Some(id), Some(resent_ms)) = (probe_id, message.timestamp().to_millis()) else {
            continue;
        };
        if let Some((written_ms, delay)) = written.get(&id) {
            probes.push(Probe {
                delay: *delay,
                resent_after: Duration::from_millis((resent_ms - written_ms).max(0) as u64),
            });
        }
    }
    let scrape = service.scrape().await?;
    let paused_partitions = scrape.get("dlq_paused_partitions").unwrap_or(0.0);
    let probe_problem = (probes.len() < written.len()).then(|| {
        format!(
            "only {} of {} probes were re-sent within 30 s of their due time (waiting: {}, paused partitions: {})",
            probes.len(),
            written.len(),
            scrape.get("dlq_scheduled").unwrap_or(f64::NAN),
            paused_partitions,
        )
    });
    let peak_rss_mib = rss.peak_mib();
    service.ensure_running()?;
    service.stop().await;
    Ok(DlqPunctuality { waiting, probes, probe_problem, ready_after, idle_rss_mib, peak_rss_mib, paused_partitions })
}

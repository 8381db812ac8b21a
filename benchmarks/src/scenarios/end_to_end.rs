//! Request → row committed, with the gateway and the registration-service running together
//! under an open-loop load of half the gateway's maximum rate.
//!
//! Method: the latency of a sign-up is its row's `created_at` (DATETIME(6), UTC, set by
//! MariaDB when the INSERT statement starts) minus the request's *intended* send time, so it
//! includes hashing, the broker round trip, consumer batching and the write. The commit
//! follows `created_at` within the same short transaction (at light load a batch of one or
//! two rows: INSERT, read-back SELECT and COMMIT take about a millisecond together), so this
//! is the commit time to about a millisecond. As a cross-check, a poller asks the database
//! every [`POLL_EVERY`] which rows became visible (a row is visible only once committed) and
//! stamps each with the time it was first seen: an upper bound that over-states by up to one
//! poll interval plus one query. Both are reported.
//!
//! In rounds: right before each load, its budget (Kafka's EndToEndLatency p99, one hash, one
//! commit) is measured anew, and each round's p99 is divided by its own budget. One
//! registration-service consumes through all rounds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, NaiveDateTime, Utc};
use hdrhistogram::Histogram;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::gateway::GatewayUnderTest;
use super::{poll_until, registration_service_env, Context, READY_TIMEOUT};
use crate::load;
use crate::raw;
use crate::raw::kafka_tools::KafkaTools;
use crate::services::Service;

const POLL_EVERY: Duration = Duration::from_millis(20);
/// Rows are looked for among those created this recently (a cheap query while polling).
const RECENT: chrono::TimeDelta = chrono::TimeDelta::seconds(10);

pub struct EndToEnd {
    pub rate: f64,
    /// Intended send → `created_at`, in µs: the figure.
    pub created_us: Histogram<u64>,
    /// Intended send → row first seen committed by the poller, in µs (upper bound).
    pub polled_us: Histogram<u64>,
    /// 202 received → `created_at`, in µs.
    pub after_202_us: Histogram<u64>,
    pub accepted: usize,
    pub not_accepted: u64,
    /// Rows the poller missed (committed more than [`RECENT`] after their `created_at`);
    /// their `created_at` stands in.
    pub missed_by_poller: usize,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds")
}

/// The raw limit of one round: what a sign-up cannot beat, each part measured right before
/// the round's load.
pub struct Budget {
    /// Kafka's EndToEndLatency p99 (acks=all, records of our size).
    pub kafka_p99_ms: f64,
    pub one_hash: Duration,
    /// Median single-row autocommitted upsert.
    pub one_commit: Duration,
}

impl Budget {
    pub fn millis(&self) -> f64 {
        self.kafka_p99_ms + (self.one_hash + self.one_commit).as_secs_f64() * 1000.0
    }
}

pub struct EndToEndRound {
    pub budget: Budget,
    pub measured: EndToEnd,
}

/// `ctx.plan.rounds` rounds of (budget, then the gateway and a registration-service at half of
/// `max_rate`).
pub async fn rounds(
    ctx: &Context<'_>,
    gw: &mut GatewayUnderTest,
    tools: &KafkaTools,
    max_rate: f64,
) -> anyhow::Result<Vec<EndToEndRound>> {
    let group = format!("{}-e2e", gw.topic);
    let env = registration_service_env(ctx, &gw.topic, &group, &gw.db.url);
    let mut service = Service::spawn(ctx.binaries, "registration-service", "REGISTRATION_SERVICE_ADDR", &env)?;
    service.wait_ready(READY_TIMEOUT).await?;
    ctx.env.adopt_topic(format!("{}-dlq", gw.topic));
    let commit_db = ctx.env.fresh_database("commit").await?;
    let record_size = crate::events::record_size(&ctx.env.run_id);
    let mut rounds = Vec::with_capacity(ctx.plan.rounds);
    for i in 0..ctx.plan.rounds {
        let topic = ctx.env.create_topic(&format!("end-to-end-latency-{i}"), 1).await?;
        let kafka = tools.end_to_end_latency(&topic, ctx.plan.end_to_end_messages, record_size).await?;
        let samples = ctx.plan.single_hashes;
        let one_hash = tokio::task::spawn_blocking(move || raw::argon2::one_hash(samples)).await?;
        let one_commit = raw::database::one_commit(&commit_db, &ctx.env.run_id, ctx.plan.commit_samples).await?;
        let budget = Budget { kafka_p99_ms: kafka.p99_ms, one_hash, one_commit };
        let measured = run(ctx, gw, &mut service, max_rate).await.with_context(|| format!("round {}", i + 1))?;
        let p99 = measured.created_us.value_at_quantile(0.99) as f64 / 1000.0;
        eprintln!(
            "[bench]   round {}: budget {:.1} ms (Kafka p99 {:.0} ms), p99 {p99:.1} ms ({:.2})",
            i + 1,
            budget.millis(),
            budget.kafka_p99_ms,
            p99 / budget.millis()
        );
        rounds.push(EndToEndRound { budget, measured });
    }
    service.ensure_running()?;
    service.stop().await;
    Ok(rounds)
}

/// One load at half of `max_rate` through the gateway and the running `service`.
async fn run(
    ctx: &Context<'_>,
    gw: &mut GatewayUnderTest,
    service: &mut Service,
    max_rate: f64,
) -> anyhow::Result<EndToEnd> {
    // First drain what the gateway's own measurements left on the topic.
    let accepted_so_far = gw.service.scrape().await?.require("gateway_registrations_accepted_total")? as i64;
    let db = &gw.db;
    poll_until(
        "the registration-service caught up with the earlier sign-ups",
        Duration::from_secs(120),
        Duration::from_millis(200),
        || async { Ok((db.count_users().await? >= accepted_so_far).then_some(())) },
    )
    .await?;

    let seen: Arc<Mutex<HashMap<Uuid, DateTime<Utc>>>> = Arc::default();
    let stop = CancellationToken::new();
    let poller = tokio::spawn(poll_rows(db.pool.clone(), seen.clone(), stop.clone()));

    let rate = max_rate / 2.0;
    let result = load::open_loop(&gw.signups, rate, ctx.plan.end_to_end_load).await;
    let expected: Vec<Uuid> = result.accepted.iter().map(|a| a.request_id).collect();
    let all_seen =
        poll_until("every accepted sign-up has its row", Duration::from_secs(60), Duration::from_millis(100), || {
            let seen = seen.clone();
            let expected = &expected;
            async move {
                let seen = seen.lock().expect("seen lock");
                Ok(expected.iter().all(|id| seen.contains_key(id)).then_some(()))
            }
        })
        .await;
    stop.cancel();
    poller.await.context("row poller")??;
    service.ensure_running()?;

    let mut polled_us = histogram();
    let mut created_us = histogram();
    let mut after_202_us = histogram();
    let mut missed_by_poller = 0;
    let created = created_times(&gw.db.pool, &expected).await?;
    let seen = seen.lock().expect("seen lock");
    for a in &result.accepted {
        let Some(created_at) = created.get(&a.request_id) else {
            // all_seen below reports the missing rows.
            continue;
        };
        let first_seen = match seen.get(&a.request_id) {
            Some(first_seen) => *first_seen,
            None => {
                missed_by_poller += 1;
                *created_at
            }
        };
        let micros = |from: DateTime<Utc>, to: DateTime<Utc>| (to - from).num_microseconds().unwrap_or(0).max(1) as u64;
        polled_us.saturating_record(micros(a.intended_at, first_seen));
        created_us.saturating_record(micros(a.intended_at, *created_at));
        after_202_us.saturating_record(micros(a.answered_at, *created_at));
    }
    if created.len() < expected.len() {
        all_seen.with_context(|| {
            format!("{} of {} accepted sign-ups have no row", expected.len() - created.len(), expected.len())
        })?;
    }
    Ok(EndToEnd {
        rate,
        created_us,
        polled_us,
        after_202_us,
        accepted: expected.len(),
        not_accepted: result.not_accepted(),
        missed_by_poller,
    })
}

/// Stamps every newly visible row with the time it was first seen, until stopped.
async fn poll_rows(
    pool: sqlx::MySqlPool,
    seen: Arc<Mutex<HashMap<Uuid, DateTime<Utc>>>>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    while !stop.is_cancelled() {
        let since = (Utc::now() - RECENT).naive_utc();
        let rows: Vec<Vec<u8>> = sqlx::query_scalar("SELECT request_id FROM users WHERE created_at >= ?")
            .bind(since)
            .fetch_all(&pool)
            .await?;
        let now = Utc::now();
        {
            let mut seen = seen.lock().expect("seen lock");
            for id in rows {
                if let Ok(id) = Uuid::from_slice(&id) {
                    seen.entry(id).or_insert(now);
                }
            }
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
    Ok(())
}

async fn created_times(pool: &sqlx::MySqlPool, ids: &[Uuid]) -> anyhow::Result<HashMap<Uuid, DateTime<Utc>>> {
    let mut out = HashMap::new();
    for chunk in ids.chunks(500) {
        let mut q =
            sqlx::QueryBuilder::<sqlx::MySql>::new("SELECT request_id, created_at FROM users WHERE request_id IN (");
        let mut list = q.separated(", ");
        for id in chunk {
            list.push_bind(id.as_bytes().to_vec());
        }
        q.push(")");
        let rows: Vec<(Vec<u8>, NaiveDateTime)> = q.build_query_as().fetch_all(pool).await?;
        for (id, created_at) in rows {
            if let Ok(id) = Uuid::from_slice(&id) {
                out.insert(id, created_at.and_utc());
            }
        }
    }
    Ok(out)
}

//! The registration-service after a 10 s database outage: how fast it drains the backlog
//! that built up, compared with its maximum drain rate. The database is reached through the
//! integration tests' `TcpProxy`, which cuts every connection (and refuses new ones) on demand,
//! exactly as an unreachable database looks to the service.
//!
//! The service starts on an empty topic (that is also where its start-up time and idle memory
//! are measured), then the proxy is cut, the backlog is produced, and the proxy is restored
//! when the outage has lasted its full length. During the outage the batch in progress
//! exhausts its in-place retries and goes to the DLQ, by design; the rate counts every
//! message given a durable outcome after the restore.

use std::time::{Duration, Instant};

use super::drain::measure_drain;
use super::{registration_service_env, settled, Context, READY_TIMEOUT};
use crate::events;
use crate::services::Service;
use crate::tcp_proxy::{database_socket_addr, TcpProxy};

pub struct Outage {
    pub outage: Duration,
    pub backlog: usize,
    /// Settled per second from the restore until the backlog was gone.
    pub rows_per_sec_after: f64,
    /// From the restore to the first new outcome.
    pub recovery: Duration,
    /// Settled per second once it was draining again.
    pub rows_per_sec_once_recovered: f64,
    /// Messages handed to the DLQ while the database was away.
    pub dead_lettered: f64,
    pub ready_after: Duration,
    pub idle_rss_mib: f64,
}

pub async fn run(ctx: &Context<'_>) -> anyhow::Result<Outage> {
    let topic = ctx.env.create_topic("outage", 3).await?;
    ctx.env.adopt_topic(format!("{topic}-dlq"));
    let db = ctx.env.fresh_database("outage").await?;
    let proxy = TcpProxy::start(database_socket_addr(&db.url)).await;
    let env = registration_service_env(ctx, &topic, &format!("{topic}-group"), &proxy.rewrite_url(&db.url));
    let mut service = Service::spawn(ctx.binaries, "registration-service", "REGISTRATION_SERVICE_ADDR", &env)?;
    let ready_after = service.wait_ready(READY_TIMEOUT).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rss_mib = service.rss_mib()?;

    let records = events::registrations(&ctx.env.run_id, &topic, ctx.plan.outage_messages);
    let producer = events::producer(&ctx.env.kafka_bootstrap)?;
    eprintln!("[bench]   database cut for {:?}", ctx.plan.outage);
    let cut_at = Instant::now();
    proxy.cut();
    let produced = events::produce_all(&producer, records).await;
    tokio::time::sleep(ctx.plan.outage.saturating_sub(cut_at.elapsed())).await;
    proxy.restore();
    let restored_at = Instant::now();
    let outage = cut_at.elapsed();
    produced?;
    if outage > ctx.plan.outage + Duration::from_secs(2) {
        eprintln!("[bench]   pre-filling took longer than the outage: it lasted {outage:?}");
    }

    let at_restore = service.scrape().await?;
    let dead_lettered = at_restore.require("registration_service_dead_lettered_transient_total")?;
    let settled_at_restore = settled(&at_restore)?;
    let backlog = ctx.plan.outage_messages as f64 - settled_at_restore;
    let timing = measure_drain(&service, ctx.plan.outage_messages as f64).await?;
    // The rate counts from the restore: the time until the first new outcome (the recovery)
    // is part of what this figure measures.
    let drained_after = (timing.drained - restored_at).as_secs_f64();
    service.ensure_running()?;
    service.stop().await;
    Ok(Outage {
        outage,
        backlog: backlog.max(0.0) as usize,
        rows_per_sec_after: backlog / drained_after,
        recovery: timing.first_progress.saturating_duration_since(restored_at),
        rows_per_sec_once_recovered: timing.rate,
        dead_lettered,
        ready_after,
        idle_rss_mib,
    })
}

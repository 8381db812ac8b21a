//! The control for the outage figure: MariaDB's own speed right after a restart. The raw
//! batched loop writes as many rows as an outage round's backlog, once on the warm server and
//! once counted from the restarted server's first accepted connection, as the outage figure is.
//!
//! Why it exists: the outage figure counts from the restore, and a restarted server starts with
//! a cold buffer pool and no connections. If the raw loop, with none of our code in the way,
//! also writes the same rows slower from a restart than warm, that share of the gap is the
//! server's and not the consumer's.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use registration_events::RegistrationRequested;

use super::{reachable, StoppedDatabase};
use crate::events;
use crate::raw::database;
use crate::scenarios::Context;
use test_support::tcp_proxy::database_socket_addr;

/// The raw loop's rates for one backlog, warm and from a restart.
#[derive(Debug, Clone, Copy)]
pub struct RestartControl {
    pub rows: usize,
    pub warm_rows_per_sec: f64,
    /// Rows ÷ time from the restarted server's first accepted connection to the last
    /// statement's end.
    pub from_restore_rows_per_sec: f64,
    /// How long `db-start` took (not counted in the rate, as in the outage figure).
    pub start_took: Duration,
}

/// How long the loop keeps retrying a statement the restarted server refuses.
const RETRY_FOR: Duration = Duration::from_secs(30);

pub async fn measure(ctx: &Context<'_>, rows: usize, batch_size: usize) -> anyhow::Result<RestartControl> {
    let db = ctx.env.fresh_database("restart_control").await?;
    let warm = database::measure(&db, &ctx.env.run_id, batch_size, rows, 0).await.context("the warm raw loop")?;
    // Made before the clock starts, as in the warm loop.
    let backlog: Vec<RegistrationRequested> = (0..rows).map(|_| events::registration(&ctx.env.run_id)).collect();
    let stopped = StoppedDatabase::stop(ctx.local_services).await?;
    // The loop starts at the first connection the server accepts, as the service may, not when
    // `db-start` has finished its checks.
    let addr = database_socket_addr(&db.url);
    let (restart, written) = tokio::join!(stopped.start_watching(addr), async {
        let restored_at = reachable(addr).await;
        write_backlog(&db, &backlog, batch_size, restored_at).await?;
        anyhow::Ok(restored_at.elapsed())
    });
    let restart = restart?;
    let from_restore = written?.as_secs_f64();
    let stored = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM users").fetch_one(&db.pool).await?;
    // The warm loop's warm-up batch and rows, the single-row sample and the backlog.
    if stored < (rows * 2) as i64 {
        anyhow::bail!("the restart control wrote {rows} rows twice but users has {stored}");
    }
    Ok(RestartControl {
        rows,
        warm_rows_per_sec: warm.batched_rows_per_sec,
        from_restore_rows_per_sec: rows as f64 / from_restore,
        start_took: restart.returned_at - restart.started_at,
    })
}

/// Writes `backlog` in statements of `batch_size`, retrying a statement the restarted server
/// refuses for up to [`RETRY_FOR`] from `restored_at`.
async fn write_backlog(
    db: &crate::environment::BenchDatabase,
    backlog: &[RegistrationRequested],
    batch_size: usize,
    restored_at: Instant,
) -> anyhow::Result<()> {
    for batch in backlog.chunks(batch_size) {
        let mut last_error = None;
        while restored_at.elapsed() < RETRY_FOR {
            match database::upsert(&db.pool, batch).await {
                Ok(()) => {
                    last_error = None;
                    break;
                }
                Err(e) => {
                    last_error = Some(e);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        if let Some(e) = last_error {
            return Err(e.context("the restarted server refused the raw loop's statements"));
        }
    }
    Ok(())
}

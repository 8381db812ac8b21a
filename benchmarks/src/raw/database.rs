//! MariaDB's own speed at the registration-service's write: the same `INSERT … ON DUPLICATE
//! KEY UPDATE` into the same `users` table, from one connection in a tight loop, batched with
//! the service's batch size and row by row. No Kafka, no parsing, no status bookkeeping.

use std::time::{Duration, Instant};

use registration_events::RegistrationRequested;
use sqlx::{MySql, MySqlPool, QueryBuilder};

use crate::environment::BenchDatabase;
use crate::events;

#[derive(Debug, Clone, Copy)]
pub struct UpsertLimits {
    pub batch_size: usize,
    pub batched_rows_per_sec: f64,
    pub single_rows_per_sec: f64,
}

pub(crate) async fn upsert(pool: &MySqlPool, events: &[RegistrationRequested]) -> anyhow::Result<()> {
    let mut insert: QueryBuilder<'_, MySql> =
        QueryBuilder::new("INSERT INTO users (request_id, email, name, password_hash, requested_at) ");
    insert.push_values(events, |mut row, e| {
        row.push_bind(e.request_id.as_bytes().to_vec())
            .push_bind(&e.email)
            .push_bind(&e.name)
            .push_bind(&e.password_hash)
            .push_bind(e.requested_at.naive_utc());
    });
    insert.push(" ON DUPLICATE KEY UPDATE request_id = request_id");
    // Autocommit: each statement is its own transaction, committed before the next starts.
    insert.build().execute(pool).await?;
    Ok(())
}

/// Writes `batched_rows` in statements of `batch_size` rows, then `single_rows` one per
/// statement, into the (migrated) `db`.
pub async fn measure(
    db: &BenchDatabase,
    run_id: &str,
    batch_size: usize,
    batched_rows: usize,
    single_rows: usize,
) -> anyhow::Result<UpsertLimits> {
    signup_schema::migrator().run(&db.pool).await?;
    // Events are made before the clock starts: only the database is timed.
    let fresh = |n: usize| -> Vec<RegistrationRequested> { (0..n).map(|_| events::registration(run_id)).collect() };
    // Warm-up: connection, statement cache, buffer pool pages of the new table.
    upsert(&db.pool, &fresh(batch_size)).await?;

    let batched = fresh(batched_rows.div_ceil(batch_size).max(1) * batch_size);
    let started = Instant::now();
    for batch in batched.chunks(batch_size) {
        upsert(&db.pool, batch).await?;
    }
    let batched_rows_per_sec = batched.len() as f64 / started.elapsed().as_secs_f64();

    let (single_rows_per_sec, _) = singles(db, run_id, single_rows).await?;
    Ok(UpsertLimits { batch_size, batched_rows_per_sec, single_rows_per_sec })
}

/// Writes `rows` rows one autocommitted statement each into the migrated `db`: rows per
/// second, and the median time of one (one commit).
async fn singles(db: &BenchDatabase, run_id: &str, rows: usize) -> anyhow::Result<(f64, Duration)> {
    let singles: Vec<RegistrationRequested> = (0..rows.max(1)).map(|_| events::registration(run_id)).collect();
    let mut times = Vec::with_capacity(singles.len());
    let started = Instant::now();
    for event in singles.chunks(1) {
        let t = Instant::now();
        upsert(&db.pool, event).await?;
        times.push(t.elapsed());
    }
    let rows_per_sec = times.len() as f64 / started.elapsed().as_secs_f64();
    times.sort();
    Ok((rows_per_sec, times[times.len() / 2]))
}

/// One commit: the median of `samples` single-row autocommitted upserts into `db` (migrated
/// here if it is not yet), after one warm-up row.
pub async fn one_commit(db: &BenchDatabase, run_id: &str, samples: usize) -> anyhow::Result<Duration> {
    signup_schema::migrator().run(&db.pool).await?;
    upsert(&db.pool, &[events::registration(run_id)]).await?;
    Ok(singles(db, run_id, samples).await?.1)
}

//! What makes the same multi-row `INSERT` into `users` faster or slower on this MariaDB, outside
//! the services: the experiments behind the drain's figures in BENCHMARKS.md (issue 14).
//!
//! Each mode writes `ROWS` fresh rows into a table of its own, from one connection, and prints
//! its rate per 50,000 rows (how the table's growth slows it) and overall:
//!
//! * `fixed-prepared`: statements of 500 rows, prepared once (the raw limit's loop);
//! * `vary-prepared`: 400 to 500 rows, so almost every statement text is new to the
//!   connection's statement cache and is prepared again (2,500 parameters described back);
//! * `fixed-text`, `vary-text`: the same rows as literals, no prepared statement at all;
//! * `vary-dec25`, `vary-dec50`, `vary-bin`, `fixed-dec25`: a batch split into statements of a
//!   few fixed sizes (multiples of 25 or 50 and powers of two, or powers of two alone) in one
//!   transaction, so that every shape is prepared once.
//!
//! `BURN=<fraction>` runs a thread beside the loop that spins that fraction of every 4 ms: CPU
//! taken from the database in short bursts, as a consumer's polling and decoding take it.
//!
//! ```text
//! eval "$(scripts/local-services.sh env)"; export DATABASE_URL
//! MODES=fixed-prepared,vary-prepared ROWS=60000 ROUNDS=3 \
//!     cargo run --release -p benchmark-harness --example raw_insert_shapes
//! ```

use std::time::{Duration, Instant};

use rand::Rng;
use sqlx::mysql::MySqlPoolOptions;
use sqlx::{Executor, MySql, MySqlPool, QueryBuilder};
use uuid::Uuid;

/// The length of the gateway's argon2id PHC strings.
const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$Xm4rN0YdZcC6sQ4bQm0u6A$2m1wJ0m8oQ3h6cV2r0t9yq0n3c1l7p4Z8x5b6n9m2k4";
const COLUMNS: &str = "INSERT INTO users (request_id, email, name, password_hash, requested_at) ";

struct Row {
    id: Uuid,
    email: String,
    name: String,
    hash: String,
    at: chrono::NaiveDateTime,
}

fn row() -> Row {
    let id = Uuid::new_v4();
    Row {
        id,
        email: format!("bench-x-{}@example.com", id.simple()),
        name: "Benchmark User".into(),
        hash: HASH.into(),
        at: chrono::Utc::now().naive_utc(),
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn statement(rows: &[Row]) -> QueryBuilder<'_, MySql> {
    let mut q = QueryBuilder::new(COLUMNS);
    q.push_values(rows, |mut r, e| {
        r.push_bind(e.id.as_bytes().to_vec()).push_bind(&e.email).push_bind(&e.name).push_bind(&e.hash).push_bind(e.at);
    });
    q
}

async fn prepared(pool: &MySqlPool, rows: &[Row]) -> sqlx::Result<()> {
    statement(rows).build().execute(pool).await.map(|_| ())
}

fn hex_literal(s: &mut String, bytes: &[u8]) {
    s.push_str("X'");
    s.push_str(&hex::encode(bytes));
    s.push('\'');
}

async fn text(pool: &MySqlPool, rows: &[Row]) -> sqlx::Result<()> {
    let mut s = String::from(COLUMNS) + "VALUES ";
    for (i, e) in rows.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push('(');
        hex_literal(&mut s, e.id.as_bytes());
        for text in [&e.email, &e.name, &e.hash] {
            s.push_str(", _utf8mb4 ");
            hex_literal(&mut s, text.as_bytes());
        }
        s.push_str(&format!(", '{}')", e.at.format("%Y-%m-%d %H:%M:%S%.6f")));
    }
    pool.execute(sqlx::raw_sql(&s)).await.map(|_| ())
}

/// `n` as one multiple of `step` (if `step` > 0) and then powers of two.
fn pieces(n: usize, step: usize) -> Vec<usize> {
    let mut pieces = vec![];
    let mut left = n;
    if step > 0 && left >= step {
        pieces.push(left / step * step);
        left %= step;
    }
    let mut power = 256;
    while left > 0 {
        while power > left {
            power /= 2;
        }
        pieces.push(power);
        left -= power;
    }
    pieces
}

async fn decomposed(pool: &MySqlPool, rows: &[Row], step: usize) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    let mut start = 0;
    for n in pieces(rows.len(), step) {
        statement(&rows[start..start + n]).build().execute(&mut *tx).await?;
        start += n;
    }
    tx.commit().await
}

async fn write(pool: &MySqlPool, mode: &str, rows: &[Row]) -> sqlx::Result<()> {
    match mode.split_once('-').map_or(mode, |(_, how)| how) {
        "prepared" => prepared(pool, rows).await,
        "text" => text(pool, rows).await,
        "dec25" => decomposed(pool, rows, 25).await,
        "dec50" => decomposed(pool, rows, 50).await,
        "bin" => decomposed(pool, rows, 0).await,
        other => panic!("unknown mode {other}"),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("DATABASE_URL")?;
    let modes: Vec<String> =
        env_or("MODES", "fixed-prepared,vary-prepared".to_owned()).split(',').map(str::to_owned).collect();
    let total: usize = env_or("ROWS", 60_000);
    let rounds: usize = env_or("ROUNDS", 3);
    if let Some(duty) = std::env::var("BURN").ok().and_then(|d| d.parse::<f64>().ok()) {
        std::thread::spawn(move || loop {
            let started = Instant::now();
            let mut x = 0_u64;
            while started.elapsed().as_secs_f64() < 0.004 * duty {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
            std::thread::sleep(Duration::from_secs_f64(0.004 * (1.0 - duty)));
        });
    }
    let admin = MySqlPool::connect(&url).await?;
    let base = url.rsplit_once('/').map_or(url.as_str(), |(base, _)| base).to_owned();
    for round in 0..rounds {
        for mode in &modes {
            let db = format!("raw_insert_shapes_{round}_{}", mode.replace('-', "_"));
            admin.execute(format!("DROP DATABASE IF EXISTS {db}").as_str()).await?;
            admin.execute(format!("CREATE DATABASE {db}").as_str()).await?;
            let pool = MySqlPoolOptions::new().max_connections(2).connect(&format!("{base}/{db}")).await?;
            signup_schema::migrator().run(&pool).await?;
            let rows: Vec<Row> = (0..total).map(|_| row()).collect();
            let mut rng = rand::thread_rng();
            let mut batches = vec![];
            let mut start = 0;
            while start < rows.len() {
                let n = if mode.starts_with("vary") { rng.gen_range(400..=500) } else { 500 };
                let n = n.min(rows.len() - start);
                batches.push(&rows[start..start + n]);
                start += n;
            }
            // Warm-up: the connection, and the 500-row statement prepared.
            write(&pool, mode, &(0..500).map(|_| row()).collect::<Vec<_>>()).await?;
            let started = Instant::now();
            let (mut segment, mut segment_rows, mut segments) = (Instant::now(), 0, vec![]);
            for batch in &batches {
                write(&pool, mode, batch).await?;
                segment_rows += batch.len();
                if segment_rows >= 50_000 {
                    segments.push(format!("{:.0}", segment_rows as f64 / segment.elapsed().as_secs_f64()));
                    (segment, segment_rows) = (Instant::now(), 0);
                }
            }
            let elapsed = started.elapsed().as_secs_f64();
            println!(
                "round {round} {mode:15} {:>8.0} rows/s  {:.2} ms/statement ({} statements); per 50,000 rows: {}",
                total as f64 / elapsed,
                elapsed * 1000.0 / batches.len() as f64,
                batches.len(),
                segments.join(" "),
            );
            pool.close().await;
            admin.execute(format!("DROP DATABASE {db}").as_str()).await?;
        }
    }
    Ok(())
}

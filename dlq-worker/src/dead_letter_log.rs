//! The `dead_letter_log` table: one row per dead letter the worker took, written before its
//! offset may be committed, and counted per hour for the console's chart.
//!
//! Exact by construction: a record is logged (idempotently, by its DLQ position) in the same
//! task that re-sends or parks it, before that task reports it settled, so every committed
//! dead letter has its row and a redelivered one does not get a second.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use reliable_messaging::parking::hourly_buckets;
use reliable_messaging::Delivery;
use sqlx::MySqlPool;

/// The statement the worker's grant must allow (see `database_grants`).
pub const INSERT: &str =
    "INSERT IGNORE INTO dead_letter_log (dlq_topic, dlq_partition, dlq_offset, dead_lettered_at) VALUES (?, ?, ?, ?)";

/// Logs `delivery` once: when it reached the DLQ (its Kafka timestamp; now if it has none).
pub async fn record(pool: &MySqlPool, delivery: &Delivery) -> Result<(), sqlx::Error> {
    let at = delivery.timestamp_ms.and_then(DateTime::from_timestamp_millis).unwrap_or_else(Utc::now);
    sqlx::query(INSERT)
        .bind(&delivery.topic)
        .bind(delivery.partition)
        .bind(delivery.offset)
        .bind(at.naive_utc())
        .execute(pool)
        .await?;
    Ok(())
}

/// The start of the clock hour `hours - 1` hours before the current one: the first bucket of
/// a chart of `hours` whole hours whose last bucket is the current (partial) hour.
pub fn first_hour(now: DateTime<Utc>, hours: u32) -> DateTime<Utc> {
    let this_hour = now.duration_trunc(TimeDelta::hours(1)).unwrap_or(now);
    this_hour - TimeDelta::hours(i64::from(hours.saturating_sub(1)))
}

/// Dead letters per clock hour from `first_hour` on, `hours` buckets, oldest first.
pub async fn per_hour(pool: &MySqlPool, first_hour: DateTime<Utc>, hours: u32) -> Result<Vec<u64>, sqlx::Error> {
    let rows: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT TIMESTAMPDIFF(HOUR, ?, dead_lettered_at) AS h, COUNT(*) FROM dead_letter_log \
         WHERE dead_lettered_at >= ? GROUP BY h",
    )
    .bind(first_hour.naive_utc())
    .bind(first_hour.naive_utc())
    .fetch_all(pool)
    .await?;
    Ok(hourly_buckets(rows, hours))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_bucket_is_the_current_clock_hour() {
        let now = DateTime::parse_from_rfc3339("2026-12-07T12:34:56Z").unwrap().with_timezone(&Utc);
        assert_eq!(first_hour(now, 12).to_rfc3339(), "2026-12-07T01:00:00+00:00");
        assert_eq!(first_hour(now, 1).to_rfc3339(), "2026-12-07T12:00:00+00:00");
    }

    #[test]
    fn rows_fill_their_hour_and_nothing_else() {
        assert_eq!(hourly_buckets(vec![(0, 2), (2, 5), (3, 9), (-1, 4)], 3), vec![2, 0, 5]);
    }
}

//! Redriving: putting parked messages back on their original topic with a fresh retry budget.
//!
//! Each redrive runs in one transaction that locks the message's row: publish (and wait for
//! `acks=all`), then mark it `redriven` with an audit row, then commit. Two operators redriving
//! the same message therefore publish it once; a failed publish leaves it parked. A crash after
//! the publish and before the commit leaves it parked although it was published, and a second
//! redrive publishes it again: a duplicate, which the consumers absorb, never a loss.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use tokio::time::Instant;

use super::message::{ParkedFilter, ParkedState};
use super::store::{lock_message, set_state, ParkingError, ParkingLot, LOG_TARGET};
use crate::message::retry_metadata::MetadataFormat;
use crate::producer::DurableProducer;

/// What one redrive did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedriveOutcome {
    Redriven {
        id: u64,
        topic: String,
        partition: i32,
        offset: i64,
    },
    /// Not parked any more (redriven or discarded before): nothing was published.
    NotParked {
        id: u64,
        state: ParkedState,
    },
}

/// How fast a bulk redrive publishes, so replaying a thousand parked messages does not hit a
/// consumer (and its database) that has just recovered with all of them at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    per_second: f64,
}

impl Rate {
    pub fn per_second(n: f64) -> Result<Self, String> {
        if n.is_finite() && n > 0.0 {
            Ok(Rate { per_second: n })
        } else {
            Err(format!("rate must be positive, got {n}"))
        }
    }

    /// Time between two publishes.
    pub fn interval(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.per_second)
    }
}

impl Default for Rate {
    fn default() -> Self {
        Rate { per_second: 50.0 }
    }
}

impl FromStr for Rate {
    type Err = String;
    /// `50/s`, `600/m`, `1000/h`, or a bare number per second.
    fn from_str(s: &str) -> Result<Self, String> {
        let (count, unit) = s.trim().split_once('/').unwrap_or((s.trim(), "s"));
        let count: f64 = count.trim().parse().map_err(|_| format!("rate must look like 50/s, got {s:?}"))?;
        let seconds = match unit.trim() {
            "s" | "sec" | "second" => 1.0,
            "m" | "min" | "minute" => 60.0,
            "h" | "hour" => 3600.0,
            other => return Err(format!("rate unit must be s, m or h, got {other:?}")),
        };
        Rate::per_second(count / seconds)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/s", self.per_second)
    }
}

/// Redrives parked messages through a producer, in a retry metadata format.
#[derive(Clone)]
pub struct Redriver {
    lot: ParkingLot,
    producer: DurableProducer,
    format: MetadataFormat,
}

impl Redriver {
    /// Give it a producer created with `allow.auto.create.topics=false`, so redriving a message
    /// whose topic is gone fails instead of creating the topic.
    pub fn new(lot: ParkingLot, producer: DurableProducer, format: MetadataFormat) -> Self {
        Self { lot, producer, format }
    }

    /// The parking lot it redrives from.
    pub fn lot(&self) -> &ParkingLot {
        &self.lot
    }

    /// Redrives one parked message; see the module docs for the guarantees.
    pub async fn redrive(&self, id: u64, actor: &str, reason: Option<&str>) -> Result<RedriveOutcome, ParkingError> {
        let mut tx = self.lot.pool().begin().await?;
        let message = lock_message(&mut tx, id).await?;
        if message.state != ParkedState::Parked {
            return Ok(RedriveOutcome::NotParked { id, state: message.state });
        }
        let record = message.redrive_record(self.format);
        let stored = self
            .producer
            .send(&record)
            .await
            .map_err(|source| ParkingError::Publish { id, source: Box::new(source) })?;
        set_state(&mut tx, id, ParkedState::Redriven, "redrive", actor, reason).await?;
        tx.commit().await?;
        tracing::info!(target: LOG_TARGET, event = "message_redriven", parked_id = id, actor,
            topic = %record.topic, partition = stored.partition, offset = stored.offset, "parked message redriven");
        Ok(RedriveOutcome::Redriven { id, topic: record.topic, partition: stored.partition, offset: stored.offset })
    }

    /// Redrives each id once (duplicates in `ids` are ignored), at most `rate` per second, and
    /// reports each result in order. One failure does not stop the others.
    pub async fn redrive_many(
        &self,
        ids: &[u64],
        actor: &str,
        reason: Option<&str>,
        rate: Rate,
    ) -> Vec<(u64, Result<RedriveOutcome, ParkingError>)> {
        let mut seen = HashSet::new();
        let unique: Vec<u64> = ids.iter().copied().filter(|id| seen.insert(*id)).collect();
        let start = Instant::now();
        let mut results = Vec::with_capacity(unique.len());
        for (i, id) in unique.into_iter().enumerate() {
            tokio::time::sleep_until(start + rate.interval().mul_f64(i as f64)).await;
            results.push((id, self.redrive(id, actor, reason).await));
        }
        results
    }

    /// Redrives the parked messages matching `filter` (its state is forced to `parked`).
    pub async fn redrive_matching(
        &self,
        filter: &ParkedFilter,
        actor: &str,
        reason: Option<&str>,
        rate: Rate,
    ) -> Result<Vec<(u64, Result<RedriveOutcome, ParkingError>)>, ParkingError> {
        let filter = ParkedFilter { state: Some(ParkedState::Parked), ..filter.clone() };
        let ids: Vec<u64> = self.lot.list(&filter).await?.into_iter().map(|s| s.id).collect();
        Ok(self.redrive_many(&ids, actor, reason, rate).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_with_units() {
        assert_eq!("50/s".parse::<Rate>().unwrap().interval(), Duration::from_millis(20));
        assert_eq!("60/m".parse::<Rate>().unwrap().interval(), Duration::from_secs(1));
        assert_eq!("10".parse::<Rate>().unwrap().interval(), Duration::from_millis(100));
        assert!("0/s".parse::<Rate>().is_err());
        assert!("fast".parse::<Rate>().is_err());
        assert!("5/d".parse::<Rate>().is_err());
    }
}

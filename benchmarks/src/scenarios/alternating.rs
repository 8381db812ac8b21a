//! The drain ratio measured the way a noisy shared machine allows: the raw batched upsert
//! limit and the registration-service's drain, alternately, several times each, each drain
//! divided by the raw limit measured right before it. One pair measured minutes apart swung
//! from 0.37 to 0.88 because the raw limit alone swung 2×; adjacent pairs and the median of
//! their ratios, with the spread, say what the service does and how sure that is.

use super::{drain, Context};
use crate::raw;

pub struct DrainRatio {
    /// (registration-service rows/s, raw batched upsert rows/s), in the order measured.
    pub rounds: Vec<(f64, f64)>,
}

impl DrainRatio {
    /// Each round's ours ÷ raw, sorted.
    pub fn ratios(&self) -> Vec<f64> {
        let mut r: Vec<f64> = self.rounds.iter().map(|(ours, raw)| ours / raw).collect();
        r.sort_by(f64::total_cmp);
        r
    }

    pub fn median_ratio(&self) -> f64 {
        median(&self.ratios())
    }

    pub fn median_ours(&self) -> f64 {
        let mut v: Vec<f64> = self.rounds.iter().map(|r| r.0).collect();
        v.sort_by(f64::total_cmp);
        median(&v)
    }

    pub fn median_raw(&self) -> f64 {
        let mut v: Vec<f64> = self.rounds.iter().map(|r| r.1).collect();
        v.sort_by(f64::total_cmp);
        median(&v)
    }
}

fn median(sorted: &[f64]) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// `rounds` × (raw batched upserts into a fresh database, then a drain of a pre-filled topic
/// into another fresh one), with the plan's sizes.
pub async fn run(ctx: &Context<'_>, rounds: usize) -> anyhow::Result<DrainRatio> {
    let batch_size = reliable_messaging::ConsumerSettings::new("", &[]).max_batch_size;
    let mut measured = Vec::with_capacity(rounds);
    for i in 0..rounds {
        let db = ctx.env.fresh_database(&format!("raw_alt_{i}")).await?;
        let raw = raw::database::measure(&db, &ctx.env.run_id, batch_size, ctx.plan.raw_batched_rows, 1).await?;
        let ours = drain::run(ctx, &format!("drain-alt-{i}"), ctx.plan.drain_messages, None, false).await?;
        eprintln!(
            "[bench]   round {}: raw {:.0} rows/s, drain {:.0} rows/s, ratio {:.2}",
            i + 1,
            raw.batched_rows_per_sec,
            ours.rows_per_sec,
            ours.rows_per_sec / raw.batched_rows_per_sec
        );
        measured.push((ours.rows_per_sec, raw.batched_rows_per_sec));
    }
    Ok(DrainRatio { rounds: measured })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_ratio_is_of_adjacent_pairs_not_of_medians() {
        // The raw limit doubles half-way: each pair still says 0.5.
        let r = DrainRatio { rounds: vec![(10.0, 20.0), (20.0, 40.0), (11.0, 22.0)] };
        assert_eq!(r.median_ratio(), 0.5);
        assert_eq!(r.ratios(), vec![0.5, 0.5, 0.5]);
        assert_eq!(r.median_ours(), 11.0);
        assert_eq!(median(&[1.0, 2.0, 3.0, 4.0]), 2.5);
    }
}

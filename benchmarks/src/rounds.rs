//! Ratios from alternating rounds (issue 14, "verdicts you can trust").
//!
//! On a shared 2-core machine a raw limit measured once swings 2-4× within minutes (one hash:
//! 21 ms at the start of a run, 13 ms before the load), and a verdict from one pair flips
//! between runs. So every ratio with a goal is measured in rounds: our figure and its raw limit
//! one right after the other, several times in the same run, each round's ratio being ours ÷
//! the raw limit measured next to it. The row shows the median of those per-round ratios with
//! their spread (min–max), and the verdict is judged on the whole spread
//! ([`crate::report::Goal::judge_spread`]): a spread that crosses the goal is "unsettled".

/// One round: our figure and the raw limit measured right next to it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pair {
    pub ours: f64,
    pub raw: f64,
}

impl Pair {
    pub fn new(ours: f64, raw: f64) -> Self {
        Pair { ours, raw }
    }

    /// ours ÷ raw; NaN when the raw limit is zero or not a number.
    pub fn ratio(&self) -> f64 {
        if self.raw > 0.0 && self.raw.is_finite() {
            self.ours / self.raw
        } else {
            f64::NAN
        }
    }
}

/// The median and the range of per-round values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// How many rounds.
    pub n: usize,
}

impl Spread {
    /// `None` when there are no values or one of them is not a finite number (a round whose
    /// raw limit was zero must not hide in a median).
    pub fn of(values: &[f64]) -> Option<Spread> {
        if values.is_empty() || values.iter().any(|v| !v.is_finite()) {
            return None;
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        Some(Spread {
            median: median_of_sorted(&sorted),
            min: sorted[0],
            max: sorted[sorted.len() - 1],
            n: sorted.len(),
        })
    }
}

/// The median (mean of the two middle values for an even count); NaN for no values.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    median_of_sorted(&sorted)
}

fn median_of_sorted(sorted: &[f64]) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// The rounds of one ratio, in the order measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Paired {
    pub pairs: Vec<Pair>,
}

impl Paired {
    /// Each round's ours ÷ raw, in the order measured.
    pub fn ratios(&self) -> Vec<f64> {
        self.pairs.iter().map(Pair::ratio).collect()
    }

    pub fn median_ours(&self) -> f64 {
        median(&self.pairs.iter().map(|p| p.ours).collect::<Vec<_>>())
    }

    pub fn median_raw(&self) -> f64 {
        median(&self.pairs.iter().map(|p| p.raw).collect::<Vec<_>>())
    }

    /// `ours/raw = ratio` per round, in order, with `fmt` formatting both values (for notes).
    pub fn describe(&self, fmt: impl Fn(f64) -> String) -> String {
        self.pairs
            .iter()
            .map(|p| format!("{}/{} = {:.2}", fmt(p.ours), fmt(p.raw), p.ratio()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl FromIterator<(f64, f64)> for Paired {
    fn from_iter<I: IntoIterator<Item = (f64, f64)>>(iter: I) -> Self {
        Paired { pairs: iter.into_iter().map(|(ours, raw)| Pair::new(ours, raw)).collect() }
    }
}

/// The largest of `values` (the worst round of a budget such as memory or start-up time);
/// `None` when there are none.
pub fn worst(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    values.into_iter().fold(None, |acc: Option<f64>, v| Some(acc.map_or(v, |a| a.max(v))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn the_median_ratio_is_of_adjacent_pairs_not_of_medians() {
        // The raw limit doubles half-way through the run: every adjacent pair still says 0.5,
        // while the medians of each column would say 11 ÷ 22.
        let r: Paired = [(10.0, 20.0), (20.0, 40.0), (11.0, 22.0), (40.0, 80.0), (12.0, 24.0)].into_iter().collect();
        assert_eq!(r.ratios(), vec![0.5, 0.5, 0.5, 0.5, 0.5]);
        assert_eq!(Spread::of(&r.ratios()), Some(Spread { median: 0.5, min: 0.5, max: 0.5, n: 5 }));
        assert_eq!(r.median_ours(), 12.0);
        assert_eq!(r.median_raw(), 24.0);
    }

    #[test]
    fn the_spread_is_the_range_of_the_rounds() {
        let r: Paired = [(3.0, 10.0), (9.0, 10.0), (5.0, 10.0), (4.0, 10.0), (8.0, 10.0)].into_iter().collect();
        let s = Spread::of(&r.ratios()).unwrap();
        assert_eq!((s.median, s.min, s.max, s.n), (0.5, 0.3, 0.9, 5));
        assert_eq!(
            r.describe(|v| format!("{v:.0}")),
            "3/10 = 0.30, 9/10 = 0.90, 5/10 = 0.50, 4/10 = 0.40, 8/10 = 0.80"
        );
    }

    #[test]
    fn a_round_without_a_raw_limit_spoils_the_spread() {
        let r: Paired = [(3.0, 10.0), (3.0, 0.0)].into_iter().collect();
        assert!(r.ratios()[1].is_nan());
        assert_eq!(Spread::of(&r.ratios()), None);
        assert_eq!(Spread::of(&[]), None);
    }

    #[test]
    fn the_worst_round_is_the_largest() {
        assert_eq!(worst([1.0, 7.5, 3.0]), Some(7.5));
        assert_eq!(worst(std::iter::empty()), None);
    }
}

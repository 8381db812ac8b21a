//! The result table: one row per figure with our value, the raw limit measured in the same
//! run, their ratio, the goal and whether it was met. Goals are ratios because absolute numbers
//! on a shared 2-core machine are noise; the few absolute goals (memory, start-up time) say so.
//! A ratio measured in rounds ([`Row::from_rounds`]) is judged on its whole spread: `yes` when
//! every round meets the goal, `NO` when every round misses it, `unsettled` when the spread
//! crosses the goal (counted as not met).

use std::fmt;

use crate::rounds::Spread;

/// A measured quantity with its unit, formatted for the table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measure {
    pub value: f64,
    pub unit: Unit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    PerSecond,
    Millis,
    Seconds,
    MiB,
    /// A number of messages.
    Count,
}

impl Measure {
    pub fn per_second(value: f64) -> Self {
        Self { value, unit: Unit::PerSecond }
    }
    pub fn millis(value: f64) -> Self {
        Self { value, unit: Unit::Millis }
    }
    pub fn seconds(value: f64) -> Self {
        Self { value, unit: Unit::Seconds }
    }
    pub fn mib(value: f64) -> Self {
        Self { value, unit: Unit::MiB }
    }
    pub fn count(value: f64) -> Self {
        Self { value, unit: Unit::Count }
    }
}

impl fmt::Display for Measure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.value;
        match self.unit {
            Unit::PerSecond if v >= 100.0 => write!(f, "{v:.0}/s"),
            Unit::PerSecond => write!(f, "{v:.1}/s"),
            Unit::Millis => write!(f, "{v:.1} ms"),
            Unit::Seconds => write!(f, "{v:.3} s"),
            Unit::MiB => write!(f, "{v:.1} MiB"),
            Unit::Count => write!(f, "{v:.0}"),
        }
    }
}

/// What a figure must be. For ratio rows the bounds apply to the ratio; for absolute rows
/// ([`Row::absolute`]) to the value, in its unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Goal {
    AtLeast(f64),
    AtMost(f64),
    Between(f64, f64),
    /// No goal: context for the other rows.
    None,
}

impl Goal {
    fn holds(self, value: f64) -> Option<bool> {
        match self {
            Goal::AtLeast(min) => Some(value >= min),
            Goal::AtMost(max) => Some(value <= max),
            Goal::Between(min, max) => Some((min..=max).contains(&value)),
            Goal::None => None,
        }
    }

    /// The verdict on rounds whose values range over `min..=max`: met when the whole spread
    /// meets the goal, missed when the whole spread misses it, unsettled when it crosses it.
    pub fn judge_spread(self, min: f64, max: f64) -> Verdict {
        if !(min.is_finite() && max.is_finite()) || min > max {
            return Verdict::Error("the rounds gave no finite ratio".to_owned());
        }
        let (all_meet, none_meets) = match self {
            Goal::AtLeast(goal) => (min >= goal, max < goal),
            Goal::AtMost(goal) => (max <= goal, min > goal),
            Goal::Between(lo, hi) => (lo <= min && max <= hi, max < lo || min > hi),
            Goal::None => return Verdict::Context,
        };
        match (all_meet, none_meets) {
            (true, _) => Verdict::Met,
            (false, true) => Verdict::Missed,
            (false, false) => Verdict::Unsettled,
        }
    }

    fn describe(self, unit: Option<Unit>) -> String {
        let with_unit = |x: f64| match unit {
            Some(u) => Measure { value: x, unit: u }.to_string(),
            None => format!("{x}"),
        };
        match self {
            Goal::AtLeast(min) => format!("≥ {}", with_unit(min)),
            Goal::AtMost(max) => format!("≤ {}", with_unit(max)),
            Goal::Between(min, max) => format!("{}–{}", with_unit(min), with_unit(max)),
            Goal::None => "(context)".to_owned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Met,
    Missed,
    /// Measured in rounds whose spread crosses the goal: some rounds met it, some missed it.
    Unsettled,
    Context,
    Error(String),
}

/// One line of the table.
#[derive(Debug, Clone)]
pub struct Row {
    pub figure: String,
    pub ours: String,
    pub raw: String,
    pub ratio: String,
    pub goal: String,
    pub verdict: Verdict,
}

impl Row {
    /// `ours ÷ raw`, judged against `goal`.
    pub fn ratio(figure: impl Into<String>, ours: Measure, raw: Measure, goal: Goal) -> Self {
        let ratio = if raw.value > 0.0 { ours.value / raw.value } else { f64::NAN };
        Self::with_ratio(figure, ours.to_string(), raw.to_string(), ratio, goal)
    }

    /// A ratio computed by the caller (e.g. the worst of several probes), with free-text cells.
    pub fn with_ratio(figure: impl Into<String>, ours: String, raw: String, ratio: f64, goal: Goal) -> Self {
        let verdict = if ratio.is_finite() {
            match goal.holds(ratio) {
                Some(true) => Verdict::Met,
                Some(false) => Verdict::Missed,
                None => Verdict::Context,
            }
        } else {
            Verdict::Error("the raw limit was zero or not measured".to_owned())
        };
        Row { figure: figure.into(), ours, raw, ratio: format!("{ratio:.2}"), goal: goal.describe(None), verdict }
    }

    /// A ratio measured in rounds: `ours` and `raw` are the medians of each column, `ratios`
    /// the per-round ratios (ours ÷ the raw limit measured next to it); the ratio cell shows
    /// their median and spread, and `rounds` says how they were taken (e.g. "5 rounds",
    /// "3 rounds, --quick"). The verdict is [`Goal::judge_spread`] of the spread.
    pub fn from_rounds(
        figure: impl Into<String>,
        ours: impl Into<String>,
        raw: impl Into<String>,
        ratios: &[f64],
        goal: Goal,
        rounds: &str,
    ) -> Self {
        let (ratio, verdict) = match Spread::of(ratios) {
            Some(s) => {
                let cell = if s.n == 1 {
                    format!("{:.2} ({rounds})", s.median)
                } else {
                    format!("{:.2} ({:.2}–{:.2}, {rounds})", s.median, s.min, s.max)
                };
                (cell, goal.judge_spread(s.min, s.max))
            }
            None if ratios.is_empty() => ("—".to_owned(), Verdict::Error("no round was measured".to_owned())),
            None => ("—".to_owned(), Verdict::Error("a round's raw limit was zero or not measured".to_owned())),
        };
        Row { figure: figure.into(), ours: ours.into(), raw: raw.into(), ratio, goal: goal.describe(None), verdict }
    }

    /// A value judged against an absolute budget (memory, start-up time).
    pub fn absolute(figure: impl Into<String>, ours: Measure, goal: Goal) -> Self {
        let verdict = match goal.holds(ours.value) {
            Some(true) => Verdict::Met,
            Some(false) => Verdict::Missed,
            None => Verdict::Context,
        };
        Row {
            figure: figure.into(),
            ours: ours.to_string(),
            raw: "—".to_owned(),
            ratio: "—".to_owned(),
            goal: goal.describe(Some(ours.unit)),
            verdict,
        }
    }

    /// A figure whose measurement failed; the table still shows it, with the reason.
    pub fn error(figure: impl Into<String>, goal: &str, error: &anyhow::Error) -> Self {
        Row {
            figure: figure.into(),
            ours: "—".to_owned(),
            raw: "—".to_owned(),
            ratio: "—".to_owned(),
            goal: goal.to_owned(),
            verdict: Verdict::Error(format!("{error:#}")),
        }
    }
}

/// Everything a run found: the rows, and notes that explain them.
#[derive(Debug, Default)]
pub struct Report {
    pub rows: Vec<Row>,
    pub notes: Vec<String>,
}

impl Report {
    pub fn push(&mut self, row: Row) {
        self.rows.push(row);
    }

    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    pub fn missed_or_failed(&self) -> usize {
        self.rows
            .iter()
            .filter(|r| matches!(r.verdict, Verdict::Missed | Verdict::Unsettled | Verdict::Error(_)))
            .count()
    }

    /// The table as Markdown (pasted as is into BENCHMARKS.md), then the notes and errors.
    pub fn render(&self) -> String {
        let mut out = String::from("| figure | ours | raw limit | ratio | goal | met? |\n|---|---|---|---|---|---|\n");
        let mut errors = Vec::new();
        for row in &self.rows {
            let met = match &row.verdict {
                Verdict::Met => "yes".to_owned(),
                Verdict::Missed => "**NO**".to_owned(),
                Verdict::Unsettled => "*unsettled*".to_owned(),
                Verdict::Context => "—".to_owned(),
                Verdict::Error(e) => {
                    errors.push(format!("{}: {e}", row.figure));
                    "ERROR".to_owned()
                }
            };
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                row.figure, row.ours, row.raw, row.ratio, row.goal, met
            ));
        }
        if !self.notes.is_empty() {
            out.push_str("\nNotes:\n");
            for n in &self.notes {
                out.push_str(&format!("- {n}\n"));
            }
        }
        if !errors.is_empty() {
            out.push_str("\nErrors:\n");
            for e in errors {
                out.push_str(&format!("- {e}\n"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judges_ratios_and_absolute_budgets() {
        let met = Row::ratio("a", Measure::per_second(95.0), Measure::per_second(100.0), Goal::AtLeast(0.9));
        assert_eq!(met.verdict, Verdict::Met);
        assert_eq!(met.ratio, "0.95");
        let missed = Row::ratio("b", Measure::millis(30.0), Measure::millis(10.0), Goal::AtMost(2.0));
        assert_eq!(missed.verdict, Verdict::Missed);
        let between = Row::with_ratio("c", "x".into(), "y".into(), 1.12, Goal::Between(1.0, 1.1));
        assert_eq!(between.verdict, Verdict::Missed);
        let rss = Row::absolute("d", Measure::mib(60.0), Goal::AtMost(50.0));
        assert_eq!(rss.verdict, Verdict::Missed);
        assert_eq!(rss.goal, "≤ 50.0 MiB");
        let zero = Row::ratio("e", Measure::per_second(1.0), Measure::per_second(0.0), Goal::AtLeast(1.0));
        assert!(matches!(zero.verdict, Verdict::Error(_)));
    }

    #[test]
    fn renders_a_markdown_table_with_errors_listed() {
        let mut report = Report::default();
        report.push(Row::absolute("start", Measure::seconds(0.4), Goal::AtMost(1.0)));
        report.push(Row::error("drain", "≥ 0.8", &anyhow::anyhow!("broker down")));
        let text = report.render();
        assert!(text.starts_with("| figure | ours | raw limit | ratio | goal | met? |\n"));
        assert!(text.contains("| start | 0.400 s | — | — | ≤ 1.000 s | yes |"));
        assert!(text.contains("drain: broker down"));
        assert_eq!(report.missed_or_failed(), 1);
    }

    #[test]
    fn a_spread_is_met_missed_or_unsettled() {
        let at_least = Goal::AtLeast(0.8);
        assert_eq!(at_least.judge_spread(0.8, 0.95), Verdict::Met);
        assert_eq!(at_least.judge_spread(0.3, 0.79), Verdict::Missed);
        assert_eq!(at_least.judge_spread(0.7, 0.9), Verdict::Unsettled);
        let at_most = Goal::AtMost(1.5);
        assert_eq!(at_most.judge_spread(1.1, 1.5), Verdict::Met);
        assert_eq!(at_most.judge_spread(1.6, 2.2), Verdict::Missed);
        assert_eq!(at_most.judge_spread(1.2, 1.7), Verdict::Unsettled);
        let between = Goal::Between(1.0, 1.1);
        assert_eq!(between.judge_spread(1.0, 1.05), Verdict::Met);
        assert_eq!(between.judge_spread(1.2, 1.3), Verdict::Missed);
        assert_eq!(between.judge_spread(0.5, 0.9), Verdict::Missed);
        assert_eq!(between.judge_spread(0.9, 1.05), Verdict::Unsettled);
        assert_eq!(Goal::None.judge_spread(0.1, 9.0), Verdict::Context);
        assert!(matches!(at_least.judge_spread(f64::NAN, 1.0), Verdict::Error(_)));
    }

    #[test]
    fn a_row_from_rounds_shows_median_and_spread_and_counts_unsettled_as_not_met() {
        let unsettled = Row::from_rounds(
            "drain",
            "40000/s",
            "60000/s",
            &[0.7, 0.9, 0.6, 0.85, 0.75],
            Goal::AtLeast(0.8),
            "5 rounds",
        );
        assert_eq!(unsettled.ratio, "0.75 (0.60–0.90, 5 rounds)");
        assert_eq!(unsettled.verdict, Verdict::Unsettled);
        let met = Row::from_rounds("gw", "a", "b", &[0.95, 0.92, 1.01], Goal::AtLeast(0.9), "3 rounds, --quick");
        assert_eq!(met.ratio, "0.95 (0.92–1.01, 3 rounds, --quick)");
        assert_eq!(met.verdict, Verdict::Met);
        let missed = Row::from_rounds("p99", "a", "b", &[2.1, 1.9, 2.4, 1.8, 2.0], Goal::AtMost(1.5), "5 rounds");
        assert_eq!(missed.verdict, Verdict::Missed);
        let single = Row::from_rounds("outage", "a", "b", &[0.93], Goal::AtLeast(0.9), "1 round: a 180 s outage");
        assert_eq!(single.ratio, "0.93 (1 round: a 180 s outage)");
        assert_eq!(single.verdict, Verdict::Met);
        assert!(matches!(
            Row::from_rounds("x", "a", "b", &[], Goal::AtLeast(1.0), "0 rounds").verdict,
            Verdict::Error(_)
        ));
        assert!(matches!(
            Row::from_rounds("x", "a", "b", &[1.0, f64::NAN], Goal::AtLeast(1.0), "2 rounds").verdict,
            Verdict::Error(_)
        ));

        let mut report = Report::default();
        report.push(unsettled);
        report.push(met);
        report.push(missed);
        let text = report.render();
        assert!(
            text.contains("| drain | 40000/s | 60000/s | 0.75 (0.60–0.90, 5 rounds) | ≥ 0.8 | *unsettled* |"),
            "{text}"
        );
        assert_eq!(report.missed_or_failed(), 2, "unsettled and missed are both not met");
    }

    #[test]
    fn counts_have_no_decimals() {
        let row = Row::absolute("parked", Measure::count(0.0), Goal::AtMost(0.0));
        assert_eq!((row.ours.as_str(), row.goal.as_str(), &row.verdict), ("0", "≤ 0", &Verdict::Met));
        assert_eq!(Row::absolute("parked", Measure::count(3.0), Goal::AtMost(0.0)).verdict, Verdict::Missed);
    }
}

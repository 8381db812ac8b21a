//! The result table: one row per figure with our value, the raw limit measured in the same
//! run, their ratio, the goal and whether it was met. Goals are ratios because absolute numbers
//! on a shared 2-core machine are noise; the few absolute goals (memory, start-up time) say so.

use std::fmt;

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
        self.rows.iter().filter(|r| matches!(r.verdict, Verdict::Missed | Verdict::Error(_))).count()
    }

    /// The table as Markdown (pasted as is into BENCHMARKS.md), then the notes and errors.
    pub fn render(&self) -> String {
        let mut out = String::from("| figure | ours | raw limit | ratio | goal | met? |\n|---|---|---|---|---|---|\n");
        let mut errors = Vec::new();
        for row in &self.rows {
            let met = match &row.verdict {
                Verdict::Met => "yes".to_owned(),
                Verdict::Missed => "**NO**".to_owned(),
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
}

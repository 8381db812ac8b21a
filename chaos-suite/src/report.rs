//! One row per scenario: the ledger's counts, the faults injected, and the verdict.

use std::fmt;

use integration_tests::ledger::LedgerReport;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
        })
    }
}

#[derive(Debug, Clone)]
pub struct ScenarioResult {
    pub name: &'static str,
    pub ledger: LedgerReport,
    /// Kills, outages, restarts or bad inputs injected.
    pub faults: u32,
    /// Responses other than 202 the load saw (503 while the broker was down, ...).
    pub refused: u64,
    pub verdict: Verdict,
    /// Why it failed, or what else is worth knowing.
    pub note: String,
    pub seconds: f64,
}

impl ScenarioResult {
    pub fn new(name: &'static str, ledger: LedgerReport, faults: u32, refused: u64) -> Self {
        Self { name, ledger, faults, refused, verdict: Verdict::Pass, note: String::new(), seconds: 0.0 }
    }

    /// Records a violation: the scenario fails with `why`.
    pub fn require(&mut self, ok: bool, why: impl Into<String>) {
        if !ok {
            self.verdict = Verdict::Fail;
            if !self.note.is_empty() {
                self.note.push_str("; ");
            }
            self.note.push_str(&why.into());
        }
    }

    /// The ledger must be clean: nothing lost, duplicated, unexpected, mismatched or falsely
    /// rejected.
    pub fn require_clean_ledger(&mut self) {
        let clean = self.ledger.is_clean();
        let text = format!("ledger violated: {}", self.ledger);
        self.require(clean, text);
        self.require(self.ledger.accepted > 0, "nothing was accepted, so nothing was tested");
    }

    pub fn summary(&self) -> String {
        format!("{} faults={} refused={} {}", self.ledger, self.faults, self.refused, self.note)
    }

    pub fn failed(name: &'static str, why: impl Into<String>) -> Self {
        let mut r = Self::new(name, LedgerReport::default(), 0, 0);
        r.require(false, why);
        r
    }
}

/// The results as a Markdown table (pasted as-is into docs/chaos.md).
pub fn table(results: &[ScenarioResult]) -> String {
    let mut out = String::from(
        "| scenario | accepted | stored | rejected | parked | lost | duplicated | unexpected | mismatched | falsely rejected | faults | refused | time | verdict |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for r in results {
        let l = &r.ledger;
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0} s | {}{} |\n",
            r.name,
            l.accepted,
            l.stored,
            l.rejected,
            l.parked,
            l.lost.len(),
            l.duplicated.len(),
            l.unexpected.len(),
            l.mismatched.len(),
            l.falsely_rejected.len(),
            r.faults,
            r.refused,
            r.seconds,
            r.verdict,
            if r.note.is_empty() { String::new() } else { format!(": {}", r.note) }
        ));
    }
    out
}

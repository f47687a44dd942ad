//! The report model: what a run found, built from the runner's events.
//!
//! Serialized as `report.json` (schema version [`SCHEMA_VERSION`]). Renderers
//! read this model; none of them decides an outcome of its own.

use serde::{Deserialize, Serialize};

pub use crate::events::records::*;
pub use crate::scenario::model::{GuestForm, Network};

/// Bumped when a field changes meaning or disappears (adding one does not).
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub schema: u32,
    pub environment: Environment,
    pub labs: Vec<LabReport>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabReport {
    pub id: String,
    pub title: String,
    pub handout: String,
    pub source: String,
    /// Where the lab ran; canonical reports redact it.
    pub work_dir: String,
    pub outcome: LabOutcome,
    pub duration_ms: u64,
    /// Where the lab's host commands and VMs ran.
    #[serde(default)]
    pub network: Network,
    /// Files the handout names that the built-in guest stands in for.
    pub stand_ins: Vec<StandInReport>,
    /// Everything labcheck changed in the handout's QEMU command lines, per VM.
    pub substitutions: Vec<SubstitutionReport>,
    pub steps: Vec<StepReport>,
    /// Raw console transcripts, one per VM, relative to the report's directory.
    pub transcripts: Vec<TranscriptReport>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabOutcome {
    /// Every step passed or showed its known erratum.
    Passed,
    /// At least one step failed unexpectedly.
    Failed,
    /// labcheck itself failed (not the lab): see the step marked `error`.
    Error,
}

impl LabOutcome {
    /// The mark every renderer shows for a lab.
    pub fn mark(self) -> &'static str {
        match self {
            LabOutcome::Passed => "✓",
            LabOutcome::Failed => "✗",
            LabOutcome::Error => "E",
        }
    }

    /// The outcome in words, as report.json spells it.
    pub fn word(self) -> &'static str {
        match self {
            LabOutcome::Passed => "passed",
            LabOutcome::Failed => "failed",
            LabOutcome::Error => "error",
        }
    }
}

impl Report {
    /// True when no lab failed or errored: the run's exit status is 0.
    pub fn all_passed(&self) -> bool {
        self.labs
            .iter()
            .all(|lab| lab.outcome == LabOutcome::Passed)
    }
}

impl LabReport {
    /// A lab's outcome follows from its steps: any error makes it an error,
    /// else any failure a failure.
    pub fn outcome_of(steps: &[StepReport]) -> LabOutcome {
        if steps.iter().any(|s| s.outcome == Outcome::Error) {
            LabOutcome::Error
        } else if steps.iter().any(|s| s.outcome == Outcome::Failed) {
            LabOutcome::Failed
        } else {
            LabOutcome::Passed
        }
    }
}

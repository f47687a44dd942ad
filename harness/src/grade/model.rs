//! What grading found: one [`Gradebook`] per `labcheck grade` run, one
//! [`StudentResult`] per submission, one [`CheckResult`] per rubric check.
//!
//! Written as `results/<student>.json` (the instructor's full view); the
//! feedback, gradebook, Gradescope and JUnit files are renderings of it and
//! decide nothing of their own.

use serde::{Deserialize, Serialize};

pub use crate::scenario::model::Visibility;

/// Bumped when a field changes meaning or disappears (adding one does not).
pub const SCHEMA_VERSION: u32 = 1;

/// A whole grading run: the labs graded and every submission's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gradebook {
    pub schema: u32,
    /// The labs graded, in the order given on the command line.
    pub labs: Vec<LabRubric>,
    /// Every submission, sorted by student name.
    pub students: Vec<StudentResult>,
}

/// A lab's rubric as graded: its id, title and the points it is worth.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabRubric {
    pub id: String,
    pub title: String,
    pub max_points: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudentResult {
    /// The submission's name (its directory or archive, without extension).
    pub student: String,
    /// One per lab of the run, in the run's lab order.
    pub labs: Vec<LabResult>,
    /// What was wrong with the submission's files themselves (a symbolic
    /// link not read, a file over the size limit, files ignored), in
    /// sentences meant for the student.
    pub problems: Vec<String>,
}

impl StudentResult {
    /// Points awarded over all labs; `None` when any lab was not gradable
    /// (a partial total would read as a grade).
    pub fn total(&self) -> Option<u32> {
        self.labs.iter().map(LabResult::score).sum()
    }

    /// Points available over all labs.
    pub fn max_points(&self) -> u32 {
        self.labs.iter().map(|lab| lab.max_points).sum()
    }

    pub fn is_gradable(&self) -> bool {
        self.labs.iter().all(|lab| lab.not_gradable.is_none())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabResult {
    pub lab: String,
    pub title: String,
    pub max_points: u32,
    /// Set when the grader or the machine failed (the guest image missing,
    /// QEMU failing before the student's first step, the host out of
    /// memory): no score is given, never a zero. The reason, in words.
    pub not_gradable: Option<String>,
    /// The rubric's checks in the lab file's order. Empty when not gradable.
    pub checks: Vec<CheckResult>,
    /// What the student's files did when they ran (their output's end, a
    /// command line refused, a script cut off at a limit), for the student.
    #[serde(default)]
    pub notes: Vec<String>,
    pub duration_ms: u64,
}

impl LabResult {
    /// Points awarded, or `None` when the lab was not gradable.
    pub fn score(&self) -> Option<u32> {
        if self.not_gradable.is_some() {
            return None;
        }
        Some(self.checks.iter().map(|check| check.awarded).sum())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    /// Unique within its lab, e.g. `traffic-vm2-to-vm1`.
    pub id: String,
    /// What the check verifies, in one line for the student.
    pub title: String,
    /// Points the check is worth.
    pub points: u32,
    /// `points` when passed, else 0.
    pub awarded: u32,
    pub status: CheckStatus,
    pub visibility: Visibility,
    /// The submission files this check grades (e.g. `socket/vm1.qemu`).
    pub slots: Vec<String>,
    /// What the check expected to see, in words.
    pub expected: String,
    /// What it saw: evidence gathered by the grader (never text the
    /// student's commands printed), or why it was skipped or refused.
    pub observed: String,
    /// A pointer for the student, written in the lab file.
    pub hint: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Passed,
    Failed,
    /// A check it depends on did not pass; `observed` names which.
    Skipped,
}

//! The grading model: a lab's `[slot."…"]` files and its `[[grade]]`
//! program, with the rubric's checks. Apart from the run model because a
//! program is not runnable as written: its student steps name slots, which
//! the grader fills with a submission's files to make the lab it runs.

use std::str::FromStr;

use super::{from_keyword, keyword_impls, Action, Location, Step, UnknownKeyword};

/// A lab's grading: the files a submission may hold and the program that
/// runs them, with the rubric's checks in it.
#[derive(Debug, Clone)]
pub struct Grading {
    pub slots: Vec<Slot>,
    /// `[[grade]]` in file order: grader steps, the student's slots and
    /// the rubric's checks.
    pub program: Vec<GradeStep>,
}

impl Grading {
    pub fn slot(&self, path: &str) -> Option<&Slot> {
        self.slots.iter().find(|slot| slot.path == path)
    }

    pub fn checks(&self) -> impl Iterator<Item = (&Step<GradeAction>, &RubricCheck)> {
        self.program.iter().filter_map(|entry| match &entry.role {
            Role::Check(check) => Some((&entry.step, check)),
            _ => None,
        })
    }

    pub fn max_points(&self) -> u32 {
        self.checks().map(|(_, check)| check.points).sum()
    }
}

/// A file of the submission contract, e.g. `socket/vm1.qemu`.
#[derive(Debug, Clone)]
pub struct Slot {
    /// Relative path inside a submission.
    pub path: String,
    pub kind: SlotKind,
    /// What the reference submission holds: the handout's own command, with
    /// the lab's errata fixed.
    pub default: String,
    pub location: Location,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotKind {
    /// `.qemu`: the command line of this VM.
    Qemu { vm: String },
    /// `.guest`: lines typed one by one into a VM's shell.
    Guest,
    /// `.sh`: host commands run by `sh` in the submission's sandbox.
    Shell,
}

#[derive(Debug, Clone)]
pub struct GradeStep {
    pub step: Step<GradeAction>,
    pub role: Role,
}

/// What a `[[grade]]` step does. Only a slot is not runnable as written:
/// the grader fills it with the submission's file before the lab runs, so
/// a runnable lab's [`Action`] never meets one.
#[derive(Debug, Clone)]
pub enum GradeAction {
    /// A step of labcheck's own or a rubric check's observation, run as
    /// written.
    Run(Action),
    /// `slot = "…"`: a submission file, filled into an [`Action::Lines`]
    /// typed `on` the VM (a `.guest` slot) or an [`Action::Sandboxed`] on
    /// the host (a `.sh` slot).
    Slot { path: String, vm: Option<String> },
}

impl From<Action> for GradeAction {
    fn from(action: Action) -> Self {
        GradeAction::Run(action)
    }
}

#[derive(Debug, Clone)]
pub enum Role {
    /// labcheck's own step (make the inputs, boot, reboot).
    Grader,
    /// Runs a slot of the submission (`slot = "…"`).
    Student { slot: String },
    /// A rubric check: an observation of labcheck's own, worth points.
    Check(RubricCheck),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RubricCheck {
    pub id: String,
    pub points: u32,
    /// Checks that must pass for this one to run; otherwise it is skipped.
    pub depends_on: Vec<String>,
    pub visibility: Visibility,
    pub hint: Option<String>,
    /// The submission files this check grades: if one is missing, the check
    /// fails as not submitted without running.
    pub grades: Vec<String>,
}

/// Who may see a check's result, as Gradescope names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Visibility {
    /// Shown to the student with its evidence. The default.
    #[default]
    Visible,
    /// Never shown to the student; counted as hidden in their feedback.
    Hidden,
    /// Shown to the student once the due date has passed.
    AfterDueDate,
}

impl Visibility {
    /// Every visibility, in the order help lists them.
    pub const ALL: [Visibility; 3] = [
        Visibility::Visible,
        Visibility::Hidden,
        Visibility::AfterDueDate,
    ];

    /// How a lab file, the gradebook and Gradescope write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Visible => "visible",
            Visibility::Hidden => "hidden",
            Visibility::AfterDueDate => "after_due_date",
        }
    }
}

keyword_impls!(Visibility);

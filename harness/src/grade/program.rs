//! From a lab's grading and one submission's files to a runnable lab, and
//! from that lab's report back to points. Both pure.

use std::collections::BTreeMap;

use super::model::{CheckResult, CheckStatus, LabResult};
use crate::report::{LabReport, Outcome, StepReport};
use crate::scenario::model::{
    Action, AfterFailure, Grading, Lab, Network, Origin, Role, SlotKind, Step,
};
use crate::vm::allowlist;
use crate::vm::CommandLine;

/// A submission's files by slot path (`socket/vm1.qemu` → its text).
pub type Files = BTreeMap<String, String>;

/// The files of the reference submission: every slot's default, which is
/// the handout's own command with the lab's errata fixed.
pub fn reference(grading: &Grading) -> Files {
    grading
        .slots
        .iter()
        .map(|slot| (slot.path.clone(), slot.default.clone()))
        .collect()
}

/// Whether `files` holds any slot of this lab: a lab without one is not
/// run at all (every check scores 0 as not submitted).
pub fn attempted(grading: &Grading, files: &Files) -> bool {
    grading
        .slots
        .iter()
        .any(|slot| files.contains_key(&slot.path))
}

/// The lab to run for `files`: the `[[grade]]` program with each slot
/// filled (a `.qemu` file allow-listed), in the lab's own network
/// namespace (so a student's VMs and scripts reach nothing outside it),
/// going on after failures (each check earns its points on its own).
pub fn program(lab: &Lab, grading: &Grading, files: &Files) -> Lab {
    let vms =
        lab.vms
            .iter()
            .map(|vm| {
                let mut vm = vm.clone();
                let slot = grading.slots.iter().find(
                    |slot| matches!(&slot.kind, SlotKind::Qemu { vm: name } if *name == vm.name),
                );
                if let Some(slot) = slot {
                    match files.get(&slot.path) {
                        None => vm.origin = Origin::Refused(not_submitted(&slot.path)),
                        Some(text) => {
                            vm.origin = allowed(&slot.path, text);
                            vm.qemu = text.clone();
                        }
                    }
                }
                vm
            })
            .collect();
    let steps = grading
        .program
        .iter()
        .map(|entry| filled(&entry.step, &entry.role, files))
        .collect();
    Lab {
        vms,
        steps,
        cleanup: Vec::new(),
        network: Network::Namespace,
        grading: None,
        after_failure: AfterFailure::GoOn,
        ..lab.clone()
    }
}

/// A `.qemu` file that parses and passes the allow-list may boot.
fn allowed(path: &str, text: &str) -> Origin {
    let line = match CommandLine::parse(text) {
        Ok(line) => line,
        Err(error) => return Origin::Refused(format!("{path} does not parse: {error}")),
    };
    let refusals = allowlist::check(&line);
    if refusals.is_empty() {
        return Origin::Submission;
    }
    let reasons: Vec<String> = refusals.iter().map(ToString::to_string).collect();
    Origin::Refused(format!("{path} refused: {}", reasons.join("; ")))
}

/// The step with its slot's file put in, or, when the file (or one a check
/// grades) is missing, a step that says so without running.
fn filled(step: &Step, role: &Role, files: &Files) -> Step {
    let missing = |path: &String| !files.contains_key(path);
    let action = match (role, &step.action) {
        (Role::Check(check), _) => match check.grades.iter().find(|path| missing(path)) {
            Some(path) => Action::NotChecked {
                reason: not_submitted(path),
            },
            None => step.action.clone(),
        },
        (_, Action::Slot { path, vm }) => match (files.get(path), vm) {
            (None, _) => Action::NotChecked {
                reason: not_submitted(path),
            },
            (Some(text), Some(vm)) => Action::Lines {
                vm: vm.clone(),
                lines: text.lines().map(str::to_string).collect(),
            },
            (Some(text), None) => Action::Sandboxed {
                script: text.clone(),
            },
        },
        (_, action) => action.clone(),
    };
    Step {
        action,
        ..step.clone()
    }
}

fn not_submitted(path: &str) -> String {
    format!("not submitted: {path}")
}

/// Points for one lab, from the report of its program. `None` for
/// `not_gradable` when the lab's own preparation (the grader's steps before
/// the student's first one) failed: that is the machine's or labcheck's
/// fault, and gets no score rather than a zero.
pub fn score(lab: &Lab, grading: &Grading, report: &LabReport) -> LabResult {
    let not_gradable = preparation_failure(grading, report);
    let checks = match &not_gradable {
        Some(_) => Vec::new(),
        None => grading
            .program
            .iter()
            .zip(&report.steps)
            .filter_map(|(entry, step)| match &entry.role {
                Role::Check(check) => Some(check_result(&entry.step, check, step)),
                _ => None,
            })
            .collect(),
    };
    LabResult {
        lab: lab.id.clone(),
        title: lab.title.clone(),
        max_points: grading.max_points(),
        not_gradable,
        checks,
        notes: notes(grading, report),
        duration_ms: report.duration_ms,
    }
}

/// Every check failed as not submitted: the submission has no file of
/// this lab, so nothing ran.
pub fn not_attempted(lab: &Lab, grading: &Grading) -> LabResult {
    let checks = grading
        .checks()
        .map(|(step, check)| CheckResult {
            id: check.id.clone(),
            title: step.name.clone(),
            points: check.points,
            awarded: 0,
            status: CheckStatus::Failed,
            visibility: check.visibility,
            slots: check.grades.clone(),
            expected: String::new(),
            observed: "not submitted: the submission has no file of this lab".to_string(),
            hint: check.hint.clone(),
        })
        .collect();
    LabResult {
        lab: lab.id.clone(),
        title: lab.title.clone(),
        max_points: grading.max_points(),
        not_gradable: None,
        checks,
        notes: Vec::new(),
        duration_ms: 0,
    }
}

/// A lab that could not run at all (labcheck's or the machine's failure).
pub fn not_gradable(lab: &Lab, grading: &Grading, reason: String) -> LabResult {
    LabResult {
        lab: lab.id.clone(),
        title: lab.title.clone(),
        max_points: grading.max_points(),
        not_gradable: Some(reason),
        checks: Vec::new(),
        notes: Vec::new(),
        duration_ms: 0,
    }
}

/// Lines of a step's output kept in a note: the end, where errors are.
const NOTE_LINES: usize = 12;

/// What the student's files did, and the grader's steps that did not go
/// as planned (a VM not started, with the reason): one note per step.
fn notes(grading: &Grading, report: &LabReport) -> Vec<String> {
    grading
        .program
        .iter()
        .zip(&report.steps)
        .filter(|(entry, step)| match entry.role {
            Role::Student { .. } => step.outcome != Outcome::NotChecked,
            Role::Grader => !matches!(step.outcome, Outcome::Passed | Outcome::Erratum),
            Role::Check(_) => false,
        })
        .map(|(entry, step)| {
            let shown = evidence(step);
            let lines: Vec<&str> = shown.lines().collect();
            let tail = &lines[lines.len().saturating_sub(NOTE_LINES)..];
            let cut = if tail.len() < lines.len() {
                "…\n"
            } else {
                ""
            };
            format!("{}:\n{cut}{}", entry.step.name, tail.join("\n"))
        })
        .collect()
}

fn preparation_failure(grading: &Grading, report: &LabReport) -> Option<String> {
    if report.steps.len() != grading.program.len() {
        return Some(format!(
            "the lab stopped after {} of its {} steps",
            report.steps.len(),
            grading.program.len()
        ));
    }
    let steps = || grading.program.iter().zip(&report.steps);
    let preparation = steps()
        .take_while(|(entry, _)| matches!(entry.role, Role::Grader))
        .find(|(_, step)| !matches!(step.outcome, Outcome::Passed | Outcome::Erratum))
        .map(|(entry, step)| {
            format!(
                "labcheck's own step `{}` failed before the submission's first: {}",
                entry.step.name,
                evidence(step)
            )
        });
    // A student's file that labcheck could not run (the sandbox failed).
    let carried_out = steps()
        .find(|(entry, step)| {
            matches!(entry.role, Role::Student { .. }) && step.outcome == Outcome::Error
        })
        .map(|(entry, step)| format!("`{}`: {}", entry.step.name, evidence(step)));
    preparation.or(carried_out)
}

fn check_result(
    step: &Step,
    check: &crate::scenario::model::RubricCheck,
    report: &StepReport,
) -> CheckResult {
    let status = match report.outcome {
        Outcome::Passed | Outcome::Erratum => CheckStatus::Passed,
        Outcome::Skipped => CheckStatus::Skipped,
        Outcome::Failed | Outcome::Error | Outcome::NotChecked => CheckStatus::Failed,
    };
    let expected = report
        .command
        .iter()
        .cloned()
        .chain(report.expected.iter().cloned())
        .collect::<Vec<_>>()
        .join("; ");
    CheckResult {
        id: check.id.clone(),
        title: step.name.clone(),
        points: check.points,
        awarded: if status == CheckStatus::Passed {
            check.points
        } else {
            0
        },
        status,
        visibility: check.visibility,
        slots: check.grades.clone(),
        expected,
        observed: evidence(report),
        hint: check.hint.clone(),
    }
}

/// What a step showed, and why it did not pass when it did not.
fn evidence(step: &StepReport) -> String {
    step.note
        .iter()
        .cloned()
        .chain(step.mismatches.iter().cloned())
        .chain((!step.output.is_empty()).then(|| step.output.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

//! From a lab's grading and one submission's files to a runnable lab, and
//! from that lab's report back to points. Both pure.

use std::collections::BTreeMap;

use super::model::{CheckResult, CheckStatus, LabResult};
use crate::report::{LabReport, Outcome, StepReport};
use crate::scenario::model::{
    Action, AfterFailure, GradeAction, Grading, Lab, Network, Origin, Role, SlotKind, Step,
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
fn filled(step: &Step<GradeAction>, role: &Role, files: &Files) -> Step {
    let missing = |path: &String| !files.contains_key(path);
    let action = match (role, &step.action) {
        (Role::Check(check), GradeAction::Run(action)) => {
            match check.grades.iter().find(|path| missing(path)) {
                Some(path) => Action::NotChecked {
                    reason: not_submitted(path),
                },
                None => action.clone(),
            }
        }
        (_, GradeAction::Slot { path, vm }) => match (files.get(path), vm) {
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
        (_, GradeAction::Run(action)) => action.clone(),
    };
    step.with_action(action)
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
    step: &Step<GradeAction>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::LabOutcome;
    use rstest::rstest;

    const LAB: &str = r#"
[lab]
id = "socket"
title = "Socket"
handout = "Lab - Socket"

[vm.vm1]
qemu = "qemu-system-x86_64 -m 512 -cdrom a.iso -nographic"

[[step]]
name = "Boot"
boot = "vm1"

[slot."socket/vm1.qemu"]
vm = "vm1"

[slot."socket/vm1.guest"]
default = "ip addr add 10.0.0.1/24 dev eth0\nip link set eth0 up\n"

[slot."socket/setup.sh"]
default = "true\n"

[[grade]]
name = "Prepare"
host = "true"

[[grade]]
name = "Set up"
slot = "socket/setup.sh"

[[grade]]
name = "Boot VM1"
boot = "vm1"

[[grade]]
name = "Type the lines"
slot = "socket/vm1.guest"
on = "vm1"

[[grade]]
id = "up"
name = "VM1 is up"
points = 2
grades = ["socket/vm1.qemu"]
check = { running = "vm1" }

[[grade]]
id = "addressed"
name = "VM1 has an address"
points = 3
depends-on = ["up"]
grades = ["socket/vm1.guest"]
check = { subnet = ["vm1"] }
"#;

    fn lab() -> Lab {
        crate::scenario::parse(std::path::Path::new("socket.toml"), LAB).expect("valid lab")
    }

    fn grading(lab: &Lab) -> &Grading {
        lab.grading.as_ref().expect("a graded lab")
    }

    #[test]
    fn the_reference_holds_every_slots_default() {
        let lab = lab();
        let files = reference(grading(&lab));
        assert_eq!(files.len(), 3);
        assert_eq!(files["socket/vm1.qemu"], lab.vms[0].qemu);
        assert_eq!(files["socket/setup.sh"], "true\n");
    }

    #[test]
    fn a_program_runs_in_its_namespace_and_goes_on_after_failures() {
        let lab = lab();
        let runnable = program(&lab, grading(&lab), &reference(grading(&lab)));
        assert_eq!(runnable.network, Network::Namespace);
        assert_eq!(runnable.after_failure, AfterFailure::GoOn);
        assert!(runnable.cleanup.is_empty() && runnable.grading.is_none());
        assert_eq!(runnable.vms[0].origin, Origin::Submission);
        assert!(
            matches!(&runnable.steps[1].action, Action::Sandboxed { script } if script == "true\n")
        );
        assert!(matches!(
            &runnable.steps[3].action,
            Action::Lines { vm, lines } if vm == "vm1" && lines.len() == 2
        ));
        assert_eq!(runnable.steps[5].depends_on, ["up"]);
    }

    #[rstest]
    #[case::missing(None, "not submitted: socket/vm1.qemu")]
    #[case::refused(
        Some("qemu-system-x86_64 -m 512 -monitor stdio"),
        "socket/vm1.qemu refused: -monitor stdio"
    )]
    #[case::unparsable(Some("qemu-system-x86_64 -m 'open"), "socket/vm1.qemu does not parse")]
    fn a_command_line_missing_or_refused_does_not_boot(
        #[case] text: Option<&str>,
        #[case] reason: &str,
    ) {
        let lab = lab();
        let mut files = reference(grading(&lab));
        match text {
            Some(text) => files.insert("socket/vm1.qemu".into(), text.into()),
            None => files.remove("socket/vm1.qemu"),
        };
        let runnable = program(&lab, grading(&lab), &files);
        match &runnable.vms[0].origin {
            Origin::Refused(why) => assert!(why.starts_with(reason), "{why}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_missing_file_is_a_step_not_done_and_its_checks_are_not_run() {
        let lab = lab();
        let mut files = reference(grading(&lab));
        files.remove("socket/vm1.guest");
        let runnable = program(&lab, grading(&lab), &files);
        for index in [3, 5] {
            assert!(
                matches!(&runnable.steps[index].action, Action::NotChecked { reason } if reason == "not submitted: socket/vm1.guest"),
                "{:?}",
                runnable.steps[index].action
            );
        }
        assert!(matches!(runnable.steps[4].action, Action::Check(_)));
    }

    fn report(outcomes: &[Outcome]) -> LabReport {
        let lab = lab();
        LabReport {
            id: lab.id.clone(),
            title: lab.title.clone(),
            handout: lab.handout.clone(),
            source: String::new(),
            work_dir: String::new(),
            outcome: LabOutcome::Passed,
            duration_ms: 0,
            network: Network::Namespace,
            stand_ins: Vec::new(),
            substitutions: Vec::new(),
            steps: grading(&lab)
                .program
                .iter()
                .zip(outcomes)
                .map(|(entry, outcome)| StepReport {
                    outcome: *outcome,
                    output: "seen".into(),
                    ..StepReport::new(entry.step.name.clone(), crate::report::StepKind::Check)
                })
                .collect(),
            transcripts: Vec::new(),
        }
    }

    use Outcome::{Error, Failed, NotChecked, Passed, Skipped};

    #[rstest]
    #[case::all_passed([Passed; 6], Some(5), [CheckStatus::Passed, CheckStatus::Passed])]
    #[case::parent_failed(
        [Passed, Passed, Failed, Passed, Failed, Skipped],
        Some(0),
        [CheckStatus::Failed, CheckStatus::Skipped]
    )]
    #[case::not_submitted(
        [Passed, Passed, Passed, NotChecked, Passed, NotChecked],
        Some(2),
        [CheckStatus::Passed, CheckStatus::Failed]
    )]
    #[case::a_check_labcheck_could_not_make_fails(
        [Passed, Passed, Passed, Passed, Passed, Error],
        Some(2),
        [CheckStatus::Passed, CheckStatus::Failed]
    )]
    fn points_follow_the_checks(
        #[case] outcomes: [Outcome; 6],
        #[case] score: Option<u32>,
        #[case] statuses: [CheckStatus; 2],
    ) {
        let lab = lab();
        let result = super::score(&lab, grading(&lab), &report(&outcomes));
        assert_eq!(result.score(), score);
        let seen: Vec<CheckStatus> = result.checks.iter().map(|c| c.status).collect();
        assert_eq!(seen, statuses);
        assert_eq!(result.max_points, 5);
    }

    #[rstest]
    #[case::the_graders_preparation_failed([Failed, Passed, Passed, Passed, Passed, Passed], "`Prepare` failed before")]
    #[case::the_sandbox_failed([Passed, Error, Passed, Passed, Passed, Passed], "`Set up`")]
    #[case::the_lab_stopped_short([Passed, Passed], "stopped after 2 of its 6 steps")]
    fn a_failure_of_labcheck_is_not_a_zero(
        #[case] outcomes: impl AsRef<[Outcome]>,
        #[case] why: &str,
    ) {
        let lab = lab();
        let result = score(&lab, grading(&lab), &report(outcomes.as_ref()));
        assert_eq!(result.score(), None);
        let reason = result.not_gradable.expect("not gradable");
        assert!(reason.contains(why), "{reason}");
    }
}

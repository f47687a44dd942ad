//! A step's outcome from what it showed: its expectation held against the
//! observation, then, for a step with a known erratum, whether the failure
//! is that erratum (its signature), and whether the erratum's fix works.

use super::actions::Performed;
use super::LabRun;
use crate::events::records::{bounded_output, ErratumReport, Outcome, StepReport};
use crate::runner::verdict::mismatches;
use crate::runner::StepFailure;
use crate::scenario::model::{Action, Erratum, Step};

impl LabRun<'_> {
    /// Sets the outcome of a step that ran, taking its erratum into account.
    pub(super) async fn judge(&mut self, step: &Step, seen: Performed, report: &mut StepReport) {
        report.exit = seen.observation.exit;
        report.output = bounded_output(&seen.observation.output);
        let mut found = seen.own_mismatches;
        found.extend(mismatches(&step.expect, &seen.observation));
        let Some(erratum) = &step.erratum else {
            report.outcome = verdict(&found);
            report.mismatches = found;
            return;
        };
        if found.is_empty() {
            report.outcome = Outcome::Passed;
            report.erratum = Some(erratum_report(erratum, false));
            return;
        }
        let signature = mismatches(&erratum.observed, &seen.observation);
        if !signature.is_empty() {
            report.outcome = Outcome::Failed;
            report.mismatches = found;
            report.note = Some(format!(
                "not the known erratum ({}): {}",
                erratum.reason,
                signature.join("; ")
            ));
            return;
        }
        let mut known = erratum_report(erratum, true);
        report.outcome = Outcome::Erratum;
        if let Some(fix) = &erratum.fix {
            self.try_fix(step, fix, &mut known, report).await;
        }
        report.erratum = Some(known);
    }

    /// Runs the erratum's `fix` in place of the step's command: the step
    /// fails if the fix does not meet the step's expectation either.
    async fn try_fix(
        &mut self,
        step: &Step,
        fix: &str,
        known: &mut ErratumReport,
        report: &mut StepReport,
    ) {
        let fixed_action = with_command(&step.action, fix);
        match self.perform(step, &fixed_action).await {
            Err(failure) => {
                report.outcome = failure.outcome;
                report.mismatches = vec![format!("the fix failed: {}", failure.message)];
                report.console_tail = failure.tail;
            }
            Ok(fixed) => {
                known.fix_exit = fixed.observation.exit;
                known.fix_output = bounded_output(&fixed.observation.output);
                let mut still = fixed.own_mismatches;
                still.extend(mismatches(&step.expect, &fixed.observation));
                if !still.is_empty() {
                    report.outcome = Outcome::Failed;
                    report.mismatches = still
                        .into_iter()
                        .map(|m| format!("with the fix: {m}"))
                        .collect();
                }
            }
        }
    }
}

fn verdict(mismatches: &[String]) -> Outcome {
    if mismatches.is_empty() {
        Outcome::Passed
    } else {
        Outcome::Failed
    }
}

/// Sets the outcome of a step that could not show its expectation.
pub(super) fn record_failure(report: &mut StepReport, failure: StepFailure) {
    report.outcome = failure.outcome;
    report.mismatches = vec![failure.message];
    report.console_tail = failure.tail;
}

fn erratum_report(erratum: &Erratum, reproduced: bool) -> ErratumReport {
    ErratumReport {
        reason: erratum.reason.clone(),
        reproduced,
        fix: erratum.fix.clone(),
        fix_exit: None,
        fix_output: String::new(),
    }
}

/// The same action with the erratum's working command in place of the handout's.
fn with_command(action: &Action, fix: &str) -> Action {
    match action {
        Action::Host { .. } => Action::Host {
            command: fix.to_string(),
        },
        Action::Guest { vm, .. } => Action::Guest {
            vm: vm.clone(),
            command: fix.to_string(),
        },
        other => other.clone(),
    }
}

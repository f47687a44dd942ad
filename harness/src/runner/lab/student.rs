//! A student's files at work: `.guest` lines typed into a VM's shell, `.sh`
//! scripts run in the submission's sandbox. Neither is judged here: what
//! they did is shown, and the rubric's checks (labcheck's own observations)
//! decide the points.

use std::time::Duration;

use super::actions::Performed;
use super::LabRun;
use crate::console::ConsoleError;
use crate::process::ShellExit;
use crate::runner::StepFailure;
use crate::sandbox::{Identity, Jail, JailError, JailNetwork, Limit, Limits};
use crate::time::{format_duration, Deadline};

/// Each typed line gets this long (KVM time) before Ctrl-C and the next.
const LINE_TIMEOUT: Duration = Duration::from_secs(5);

impl LabRun<'_> {
    /// Types each line into `vm`'s shell in turn. A line that does not end
    /// is interrupted with Ctrl-C and the next one is typed; a shell that no
    /// longer answers ends the step.
    pub(super) async fn type_lines(
        &mut self,
        vm: &str,
        lines: &[String],
        deadline: Deadline,
    ) -> Result<Performed, StepFailure> {
        let per_line = self.scale.scale(LINE_TIMEOUT);
        let live = self.live(vm)?;
        let mut shown = Vec::new();
        for line in lines.iter().filter(|line| !line.trim().is_empty()) {
            shown.push(format!("$ {line}"));
            let line_deadline = Deadline::after(per_line.min(deadline.remaining()));
            match live.console.run(line, line_deadline).await {
                Ok(out) => {
                    shown.extend(out.output.lines().map(str::to_string));
                    if out.exit != 0 {
                        shown.push(format!("[exit status {}]", out.exit));
                    }
                }
                Err(ConsoleError::Timeout { waited, .. }) => shown.push(format!(
                    "[did not finish within {}: interrupted with Ctrl-C]",
                    format_duration(waited)
                )),
                Err(error) => return Err(StepFailure::from_console(error)),
            }
            if deadline.is_expired() {
                shown.push("[out of time: the remaining lines were not typed]".to_string());
                break;
            }
        }
        Ok(Performed::seen(None, shown.join("\n")))
    }
}

impl LabRun<'_> {
    /// The sandbox user of this lab's job slot.
    pub(super) fn jail_identity(&self) -> Identity {
        Identity::for_slot(self.ctx.jail_slot)
    }

    /// Runs a student's `.sh` file in a jail on the work dir, inside the
    /// lab's namespace (root there, for taps and bridges, and nowhere else).
    pub(super) async fn sandboxed(
        &mut self,
        script: &str,
        deadline: Deadline,
    ) -> Result<Performed, StepFailure> {
        let namespace = self.namespace_for("a submission's script")?;
        let jail = Jail {
            work_dir: self.work_dir.clone(),
            read_only: Vec::new(),
            network: JailNetwork::lab(namespace).map_err(jail_failure)?,
            limits: Limits::default(),
            identity: self.jail_identity(),
        };
        let out = jail
            .run_script(script, deadline)
            .await
            .map_err(jail_failure)?;
        let mut output = out.output;
        match out.cut_off {
            None => {}
            Some(Limit::WallTime) => output.push_str(&format!(
                "\n[stopped: still running after {}]",
                format_duration(deadline.budget())
            )),
            Some(Limit::Output) => output.push_str(&format!(
                "\n[stopped: more than {} bytes of output]",
                Limits::default().output
            )),
        }
        let exit = match out.exit {
            ShellExit::Exited(code) => Some(code),
            ShellExit::Signaled(signal) => Some(128 + signal),
            ShellExit::TimedOut { .. } => None,
        };
        Ok(Performed::seen(exit, output))
    }
}

/// The sandbox could not run the script: labcheck's failure, not the
/// student's (the submission is then not gradable).
fn jail_failure(error: JailError) -> StepFailure {
    StepFailure::error(format!("the sandbox failed: {error}"))
}

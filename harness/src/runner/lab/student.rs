//! A student's files at work: `.guest` lines typed into a VM's shell, `.sh`
//! scripts run in the submission's sandbox. Neither is judged here: what
//! they did is shown, and the rubric's checks (labcheck's own observations)
//! decide the points.

use std::time::Duration;

use super::{LabRun, Performed};
use crate::console::ConsoleError;
use crate::runner::StepFailure;
use crate::time::{format_duration, Deadline};

/// Each typed line gets this long (KVM time) before Ctrl-C and the next.
const LINE_TIMEOUT: Duration = Duration::from_secs(15);

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
    /// Runs a student's `.sh` file in the work dir.
    pub(super) async fn sandboxed(
        &mut self,
        script: &str,
        deadline: Deadline,
    ) -> Result<Performed, StepFailure> {
        let out = crate::vm::process::run_shell(script, &self.work_dir, &self.enclosure, deadline)
            .await
            .map_err(|e| StepFailure::error(format!("cannot run the script: {e}")))?;
        super::shell_observation("the script", &out)
    }
}

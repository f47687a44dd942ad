//! Carrying out a step's action: host commands (through the process door, in
//! the lab's enclosure), guest commands and interactions on a VM's console,
//! commands started in the background and the `wait` that collects them,
//! probes retried until they hold, and a VM's reboot, power-off and stop.
//! Each ends in what the step showed ([`Performed`]), which the step's
//! expectation is then held against; boots and checks have their own files.

use std::path::Path;
use std::time::{Duration, Instant};

use super::report_text::background_command;
use super::LabRun;
use crate::console::TAIL_LINES;
use crate::events::records::Outcome;
use crate::process;
use crate::process::{Enclosure, ShellExit, ShellOutput};
use crate::runner::verdict::{mismatches, Observation};
use crate::runner::{LiveVm, StepFailure};
use crate::scenario::model::{Action, Interaction, Step};
use crate::time::{format_duration, Deadline};

/// Timeouts for steps that do not set their own, as under KVM.
const HOST_TIMEOUT: Duration = Duration::from_secs(30);
const GUEST_TIMEOUT: Duration = Duration::from_secs(10);
const BOOT_TIMEOUT: Duration = Duration::from_secs(12);
const POWEROFF_TIMEOUT: Duration = Duration::from_secs(6);
/// How long a host command started in the background may run at most; its
/// `wait` step usually ends it much sooner.
const BACKGROUND_TIMEOUT: Duration = Duration::from_secs(120);
/// Pause between two attempts of a probe.
const PROBE_INTERVAL: Duration = Duration::from_millis(200);

/// What a step showed, plus any verdict the action itself reached (checks).
pub(super) struct Performed {
    pub(super) observation: Observation,
    pub(super) own_mismatches: Vec<String>,
}

impl Performed {
    pub(super) fn seen(exit: Option<i32>, output: String) -> Self {
        Performed {
            observation: Observation { exit, output },
            own_mismatches: Vec::new(),
        }
    }
}

impl LabRun<'_> {
    pub(super) async fn perform(
        &mut self,
        step: &Step,
        action: &Action,
    ) -> Result<Performed, StepFailure> {
        match action {
            Action::Host { command } => {
                let deadline = self.deadline(step, HOST_TIMEOUT);
                host_command(command, &self.work_dir, &self.enclosure, deadline).await
            }
            Action::Guest { vm, command } => {
                let deadline = self.deadline(step, GUEST_TIMEOUT);
                let live = self.live(vm)?;
                let out = live
                    .console
                    .run(command, deadline)
                    .await
                    .map_err(StepFailure::from_console)?;
                Ok(Performed::seen(Some(out.exit), out.output))
            }
            Action::Interact { vm, script } => {
                self.interact(vm, script, self.deadline(step, GUEST_TIMEOUT))
                    .await
            }
            Action::Boot { vms } => {
                self.boot(step, vms, self.deadline(step, BOOT_TIMEOUT))
                    .await
            }
            Action::Reboot { vm } => {
                let deadline = self.deadline(step, BOOT_TIMEOUT);
                let live = self.live(vm)?;
                live.reboot(deadline).await?;
                Ok(Performed::seen(None, String::new()))
            }
            Action::Poweroff { vm } => {
                let deadline = self.deadline(step, POWEROFF_TIMEOUT);
                let live = self.live(vm)?;
                let status = live.poweroff(deadline).await?;
                self.vms.remove(vm);
                Ok(Performed::seen(
                    status,
                    "QEMU exited after the guest powered off".to_string(),
                ))
            }
            Action::Stop { vm } => {
                self.live(vm)?;
                // Dropping the VM kills QEMU's process group and reaps it.
                self.vms.remove(vm);
                Ok(Performed::seen(
                    None,
                    "QEMU stopped by labcheck".to_string(),
                ))
            }
            Action::Check(check) => self.check(check, self.deadline(step, HOST_TIMEOUT)).await,
            Action::Wait { label } => self.wait(label, self.deadline(step, GUEST_TIMEOUT)).await,
            Action::Probe { vm, command } => {
                let deadline = self.deadline(step, GUEST_TIMEOUT);
                self.probe(step, vm.as_deref(), command, deadline).await
            }
            Action::NotChecked { reason } => Err(StepFailure::error(format!(
                "a claim not checked has nothing to perform ({reason})"
            ))),
            Action::Lines { vm, lines } => {
                let deadline = self.deadline(step, GUEST_TIMEOUT);
                self.type_lines(vm, lines, deadline).await
            }
            Action::Sandboxed { script } => {
                let deadline = self.deadline(step, HOST_TIMEOUT);
                self.sandboxed(script, deadline).await
            }
        }
    }

    /// Sends and expects on `vm`'s console in turn; what the expectations
    /// matched, and what came before each, is what the step showed.
    async fn interact(
        &mut self,
        vm: &str,
        script: &[Interaction],
        deadline: Deadline,
    ) -> Result<Performed, StepFailure> {
        let live = self.live(vm)?;
        let mut seen = String::new();
        for part in script {
            match part {
                Interaction::Send(text) => live
                    .console
                    .send(text.as_bytes(), deadline)
                    .await
                    .map_err(StepFailure::from_console)?,
                Interaction::Expect(pattern) => {
                    let found = live
                        .console
                        .expect(pattern, deadline)
                        .await
                        .map_err(StepFailure::from_console)?;
                    seen.push_str(&found.before);
                    seen.push_str(&found.matched);
                }
            }
        }
        Ok(Performed::seen(None, seen))
    }

    /// Starts a `host` or `run` step's command and returns without waiting.
    pub(super) async fn start_background(
        &mut self,
        step: &Step,
        label: &str,
    ) -> Result<(), StepFailure> {
        match &step.action {
            Action::Host { command } => {
                let deadline = self.deadline(step, BACKGROUND_TIMEOUT);
                let (command, cwd, enclosure) = (
                    command.clone(),
                    self.work_dir.clone(),
                    self.enclosure.clone(),
                );
                let task = tokio::spawn(async move {
                    process::run_shell(&command, &cwd, &enclosure, deadline).await
                });
                self.host_backgrounds.insert(label.to_string(), task);
                Ok(())
            }
            Action::Guest { vm, command } => {
                let deadline = self.deadline(step, GUEST_TIMEOUT);
                let live = self.live(vm)?;
                let pending = live
                    .console
                    .start_command(command, deadline)
                    .await
                    .map_err(StepFailure::from_console)?;
                self.guest_backgrounds
                    .insert(label.to_string(), (vm.clone(), pending));
                Ok(())
            }
            // Validation allows `background` on `host` and `run` steps only.
            other => Err(StepFailure::error(format!(
                "cannot run {other:?} in the background"
            ))),
        }
    }

    /// Waits for the background command `label` to end; its output and exit
    /// status are this step's observation.
    async fn wait(&mut self, label: &str, deadline: Deadline) -> Result<Performed, StepFailure> {
        if let Some(mut task) = self.host_backgrounds.remove(label) {
            let command = background_command(self.lab, label);
            return match tokio::time::timeout_at(deadline.tokio_instant(), &mut task).await {
                Ok(Ok(Ok(out))) => shell_observation(&command, &out),
                Ok(Ok(Err(e))) => Err(StepFailure::error(format!("cannot run `sh -c`: {e}"))),
                Ok(Err(e)) => Err(StepFailure::error(format!("background task failed: {e}"))),
                Err(_) => {
                    task.abort();
                    Err(StepFailure {
                        outcome: Outcome::Failed,
                        message: format!(
                            "`{command}` did not end within {} and was killed",
                            format_duration(deadline.elapsed())
                        ),
                        tail: Vec::new(),
                    })
                }
            };
        }
        let Some((vm, pending)) = self.guest_backgrounds.remove(label) else {
            return Err(StepFailure {
                outcome: Outcome::Failed,
                message: format!("`{label}` is not running (its step did not start it)"),
                tail: Vec::new(),
            });
        };
        let live = self.live(&vm)?;
        let out = live
            .console
            .finish(pending, deadline)
            .await
            .map_err(StepFailure::from_console)?;
        Ok(Performed::seen(Some(out.exit), out.output))
    }

    /// Runs `command` until the step's expectation holds, or fails with the
    /// last attempt's observation at the deadline.
    async fn probe(
        &mut self,
        step: &Step,
        vm: Option<&str>,
        command: &str,
        deadline: Deadline,
    ) -> Result<Performed, StepFailure> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let mut seen = match vm {
                Some(vm) => {
                    let out = self.live(vm)?.probe(command, deadline).await?;
                    Performed::seen(Some(out.exit), out.output)
                }
                None => host_command(command, &self.work_dir, &self.enclosure, deadline).await?,
            };
            let unmet = mismatches(&step.expect, &seen.observation);
            if unmet.is_empty() || Instant::now() + PROBE_INTERVAL >= deadline.instant() {
                if !unmet.is_empty() {
                    seen.own_mismatches.push(format!(
                        "still not so after {attempts} attempts in {}",
                        format_duration(deadline.elapsed())
                    ));
                }
                return Ok(seen);
            }
            tokio::time::sleep(PROBE_INTERVAL).await;
        }
    }

    pub(super) fn live(&mut self, vm: &str) -> Result<&mut LiveVm, StepFailure> {
        self.vms.get_mut(vm).ok_or_else(|| StepFailure {
            outcome: Outcome::Failed,
            message: format!("{vm} is not running (boot it in an earlier step)"),
            tail: Vec::new(),
        })
    }
}

/// Runs `sh -c command` in `cwd`, inside `enclosure` (the host or the lab's
/// namespace). A free function: a `&LabRun` held across the await would keep
/// the lab's future from being `Send`.
async fn host_command(
    command: &str,
    cwd: &Path,
    enclosure: &Enclosure,
    deadline: Deadline,
) -> Result<Performed, StepFailure> {
    let out = process::run_shell(command, cwd, enclosure, deadline)
        .await
        .map_err(|e| StepFailure::error(format!("cannot run `sh -c`: {e}")))?;
    shell_observation(command, &out)
}

/// A host command's end as an observation; killed at its deadline, a failure.
pub(super) fn shell_observation(
    command: &str,
    out: &ShellOutput,
) -> Result<Performed, StepFailure> {
    let text = out.text();
    match out.exit {
        ShellExit::Exited(code) => Ok(Performed::seen(Some(code), text)),
        ShellExit::Signaled(signal) => Ok(Performed::seen(Some(128 + signal), text)),
        ShellExit::TimedOut { after } => Err(StepFailure {
            outcome: Outcome::Failed,
            message: format!(
                "`{command}` did not finish within {} and was killed",
                format_duration(after)
            ),
            tail: tail_of(&text),
        }),
    }
}

/// The last lines of a command's output, for a failure.
fn tail_of(output: &str) -> Vec<String> {
    let lines: Vec<&str> = output.lines().collect();
    let from = lines.len().saturating_sub(TAIL_LINES);
    lines[from..].iter().map(|l| l.to_string()).collect()
}

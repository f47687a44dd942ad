//! One lab, start to finish: work dir, stand-ins, steps, cleanup.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use super::events::{Event, EventSink};
use super::verdict::{describe, mismatches, Observation};
use super::vms::{boot, BootRequest, Booted, LiveVm, StepFailure};
use super::{RunContext, RunError};
use crate::console::PendingCommand;
use crate::net::{check_taps_usable, LabNamespace};
use crate::report::{
    bounded_output, ErratumReport, Outcome, StandInReport, StepReport, SubstitutionReport,
    TranscriptReport,
};
use crate::scenario::model::{
    Action, AfterFailure, Check, DigestMode, Erratum, FieldExpect, GuestForm, Interaction, Lab,
    Network, Origin, Step,
};
use crate::time::{Deadline, TimeScale};
use crate::vm::{
    allowlist, fixed_ports, free_loopback_ports, process, rewrite, CommandLine, Enclosure,
    ShellExit, ShellOutput,
};

mod observe;
mod student;

/// Timeouts for steps that do not set their own, as under KVM.
const HOST_TIMEOUT: Duration = Duration::from_secs(30);
const GUEST_TIMEOUT: Duration = Duration::from_secs(10);
const BOOT_TIMEOUT: Duration = Duration::from_secs(12);
const POWEROFF_TIMEOUT: Duration = Duration::from_secs(6);
const NAMESPACE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a host command started in the background may run at most; its
/// `wait` step usually ends it much sooner.
const BACKGROUND_TIMEOUT: Duration = Duration::from_secs(120);
/// Pause between two attempts of a probe.
const PROBE_INTERVAL: Duration = Duration::from_millis(200);
/// Console lines a failure carries.
const TAIL_LINES: usize = 20;

/// Runs `lab` to the end and reports through `events`. Returns `Err` only
/// when the lab could not be started; every step's result is an event.
pub async fn run_lab(lab: &Lab, ctx: &RunContext, events: &EventSink) -> Result<(), RunError> {
    let started = Instant::now();
    let mut run = LabRun::prepare(lab, ctx, events)?;
    run.enter_namespace().await?;
    events.emit(Event::LabStarted {
        lab: lab.id.clone(),
        title: lab.title.clone(),
        handout: lab.handout.clone(),
        source: lab.source.display().to_string(),
        work_dir: run.work_dir.display().to_string(),
        network: network_name(lab.network).to_string(),
        substitutions: lab_substitutions(lab),
        steps: lab.steps.len() + lab.cleanup.len(),
        stand_ins: lab
            .images
            .iter()
            .map(|image| StandInReport {
                name: image.name.clone(),
                form: form_name(image.form).to_string(),
            })
            .collect(),
    });
    run.place_stand_ins()?;

    let mut failed_step: Option<String> = None;
    let mut passed_ids = HashSet::new();
    let mut index = 0;
    for step in &lab.steps {
        let unmet = step.depends_on.iter().find(|id| !passed_ids.contains(*id));
        let report = match (&failed_step, unmet) {
            (Some(failed), _) => skipped(step, &format!("the earlier step `{failed}`")),
            (None, Some(id)) => skipped(step, &format!("`{id}`")),
            (None, None) => run.step(index, step).await,
        };
        let failed = matches!(report.outcome, Outcome::Failed | Outcome::Error);
        if failed && lab.after_failure == AfterFailure::SkipRest && failed_step.is_none() {
            failed_step = Some(step.name.clone());
        }
        if let (Some(id), Outcome::Passed) = (&step.id, report.outcome) {
            passed_ids.insert(id.clone());
        }
        run.finish_step(index, report);
        index += 1;
    }
    for step in &lab.cleanup {
        let report = run.step(index, step).await;
        run.finish_step(index, report);
        index += 1;
    }
    run.shutdown().await;
    events.emit(Event::LabFinished {
        lab: lab.id.clone(),
        duration: started.elapsed(),
        transcripts: run.transcripts.clone(),
    });
    Ok(())
}

/// The state of one lab while it runs. Field order matters: VMs drop (and so
/// are killed) before the work dir they run in is removed.
struct LabRun<'a> {
    vms: HashMap<String, LiveVm>,
    lab: &'a Lab,
    ctx: &'a RunContext,
    events: &'a EventSink,
    scale: TimeScale,
    work_dir: PathBuf,
    transcript_dir: PathBuf,
    transcripts: Vec<TranscriptReport>,
    boots: HashMap<String, usize>,
    /// Each VM's command line as last launched, for checks of what it was.
    launched: HashMap<String, CommandLine>,
    digests: HashMap<String, String>,
    /// Where host commands and QEMU run: the host, or the lab's namespace.
    enclosure: Enclosure,
    /// Host commands started in the background, by label. Aborting a task
    /// kills its command's process group.
    host_backgrounds: HashMap<String, JoinHandle<std::io::Result<ShellOutput>>>,
    /// Guest commands started in the background: label → (VM, command).
    guest_backgrounds: HashMap<String, (String, PendingCommand)>,
    /// The lab's network namespace; dropped after the VMs and commands in it.
    namespace: Option<LabNamespace>,
    /// Handout port → free loopback port, for a lab on the host's network
    /// while other labs run: the same map for all its VMs.
    loopback_ports: BTreeMap<u16, u16>,
    /// labcheck's own files (the namespace's tool dir, QEMU's sockets and
    /// logs): beside the work dir, never in it, because a student's script
    /// owns the work dir and could plant links where labcheck writes.
    own_dir: PathBuf,
    /// Remove the work dir and `own_dir` on drop unless the user asked to
    /// keep them.
    _work_guard: Option<(tempfile::TempDir, tempfile::TempDir)>,
}

impl Drop for LabRun<'_> {
    /// A lab dropped half-way (Ctrl-C, a panic) still stops the host
    /// commands it left in the background: a detached task would not.
    fn drop(&mut self) {
        for task in self.host_backgrounds.values() {
            task.abort();
        }
    }
}

impl<'a> LabRun<'a> {
    fn prepare(lab: &'a Lab, ctx: &'a RunContext, events: &'a EventSink) -> Result<Self, RunError> {
        let work_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| RunError::WorkDir { path, source }
        };
        std::fs::create_dir_all(&ctx.work_root).map_err(work_error(&ctx.work_root))?;
        let guard = tempfile::Builder::new()
            .prefix(&format!("{}-", lab.id))
            .tempdir_in(&ctx.work_root)
            .map_err(work_error(&ctx.work_root))?;
        let work_dir = guard.path().to_path_buf();
        // Named after the work dir (`<work dir>.labcheck`), so that reports,
        // which redact the work dir, show its paths the same on every run.
        let own_name = format!(
            "{}.labcheck",
            guard
                .path()
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
        );
        let own_guard = tempfile::Builder::new()
            .prefix(&own_name)
            .rand_bytes(0)
            .tempdir_in(&ctx.work_root)
            .map_err(work_error(&ctx.work_root))?;
        let own_dir = own_guard.path().to_path_buf();
        let transcript_dir = ctx.out_dir.join(&lab.id);
        // Transcripts of an earlier run would be appended to: start afresh.
        match std::fs::remove_dir_all(&transcript_dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(work_error(&transcript_dir)(e))
            }
            _ => {}
        }
        std::fs::create_dir_all(&transcript_dir).map_err(work_error(&transcript_dir))?;
        Ok(LabRun {
            vms: HashMap::new(),
            lab,
            ctx,
            events,
            scale: ctx.time_scale(),
            work_dir,
            transcript_dir,
            transcripts: Vec::new(),
            boots: HashMap::new(),
            launched: HashMap::new(),
            digests: HashMap::new(),
            enclosure: Enclosure::host(),
            host_backgrounds: HashMap::new(),
            guest_backgrounds: HashMap::new(),
            namespace: None,
            loopback_ports: loopback_ports(lab, ctx)?,
            own_dir,
            _work_guard: if ctx.keep {
                let _ = (guard.keep(), own_guard.keep());
                None
            } else {
                Some((guard, own_guard))
            },
        })
    }

    /// Puts the guest's files where the handout expects its images: the ISO
    /// as a link (read-only), the disk as a copy (the lab changes and deletes it).
    fn place_stand_ins(&self) -> Result<(), RunError> {
        for image in &self.lab.images {
            let target = self.work_dir.join(&image.name);
            let placed = match image.form {
                GuestForm::Iso | GuestForm::Direct => {
                    std::os::unix::fs::symlink(&self.ctx.guest.iso, &target)
                }
                GuestForm::Disk => std::fs::copy(&self.ctx.guest.disk_qcow2, &target).map(|_| ()),
            };
            placed.map_err(|source| RunError::StandIn {
                name: image.name.clone(),
                source,
            })?;
        }
        Ok(())
    }

    fn finish_step(&self, index: usize, step: StepReport) {
        self.events.emit(Event::StepFinished {
            lab: self.lab.id.clone(),
            index,
            step: Box::new(step),
        });
    }

    /// Makes the lab's private network namespace, when it asks for one:
    /// from here on its host commands and VMs run inside.
    async fn enter_namespace(&mut self) -> Result<(), RunError> {
        if self.lab.network != Network::Namespace {
            return Ok(());
        }
        let tool_dir = self.own_dir.join("bin");
        std::fs::create_dir_all(&tool_dir).map_err(|source| RunError::WorkDir {
            path: tool_dir.clone(),
            source,
        })?;
        if uses_taps(self.lab) {
            check_taps_usable(self.ctx.namespaces).map_err(RunError::Namespace)?;
        }
        let label = format!("labcheck-netns:{}", self.work_dir.display());
        let deadline = Deadline::after(NAMESPACE_TIMEOUT);
        let namespace = if runs_submission_scripts(self.lab) {
            // Owned by the job slot's sandbox user, so that its scripts are
            // the namespace's root (taps, bridges) and nothing more.
            self.jail_identity()
                .lab_namespace(&tool_dir, &label, deadline)
                .await
        } else {
            LabNamespace::create(self.ctx.namespaces, &tool_dir, &label, deadline).await
        }
        .map_err(RunError::Namespace)?;
        self.enclosure = namespace.enclosure().clone();
        self.namespace = Some(namespace);
        Ok(())
    }

    /// Kills what is still running, VMs and background commands before the
    /// namespace they run in. Called at the end of every lab; a drop
    /// (Ctrl-C, panic) does the same through `ChildProcess`'s Drop and ours.
    async fn shutdown(&mut self) {
        self.guest_backgrounds.clear();
        self.vms.clear();
        for (_, task) in self.host_backgrounds.drain() {
            task.abort();
            // Returns once the task is gone, and with it its process group.
            let _ = task.await;
        }
        // The enclosure holds the namespace's files open: let go of it too.
        self.enclosure = Enclosure::host();
        self.namespace = None;
    }

    fn deadline(&self, step: &Step, default: Duration) -> Deadline {
        Deadline::after(self.scale.scale(step.timeout.unwrap_or(default)))
    }

    async fn step(&mut self, index: usize, step: &Step) -> StepReport {
        self.events.emit(Event::StepStarted {
            lab: self.lab.id.clone(),
            index,
            name: step.name.clone(),
        });
        let started = Instant::now();
        let mut report = blank_report(step);
        report.expected = describe(&step.expect);
        if let Action::Boot { vms } = &step.action {
            report.command = Some(self.command_lines(vms));
        }
        if let Action::Wait { label } = &step.action {
            // Shown as the command it waits for, on the VM it runs on.
            report.vm = self.guest_backgrounds.get(label).map(|(vm, _)| vm.clone());
            report.command = Some(format!(
                "{} (started as `{label}`)",
                background_command(self.lab, label)
            ));
        }
        if let Action::NotChecked { reason } = &step.action {
            report.outcome = Outcome::NotChecked;
            report.note = Some(reason.clone());
            return report;
        }
        if let Some(label) = &step.background {
            match self.start_background(step, label).await {
                Ok(()) => report.note = Some(format!("started in the background as `{label}`")),
                Err(failure) => record_failure(&mut report, failure),
            }
            report.expected = Vec::new();
            report.duration_ms = started.elapsed().as_millis() as u64;
            return report;
        }
        let first = self.perform(step, &step.action).await;
        match first {
            Err(failure) => record_failure(&mut report, failure),
            Ok(seen) => self.judge(step, seen, &mut report).await,
        }
        if report.outcome == Outcome::Failed && report.console_tail.is_empty() {
            report.console_tail = self.console_tail_of(report.vm.as_deref());
        }
        report.duration_ms = started.elapsed().as_millis() as u64;
        report
    }

    /// The last lines of `vm`'s console, for a step on it that failed
    /// without a wait running out (which brings its own tail).
    fn console_tail_of(&self, vm: Option<&str>) -> Vec<String> {
        vm.and_then(|vm| self.vms.get(vm))
            .map(|live| live.console.tail(TAIL_LINES))
            .unwrap_or_default()
    }

    /// Sets the outcome of a step that ran, taking its erratum into account.
    async fn judge(&mut self, step: &Step, seen: Performed, report: &mut StepReport) {
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
        report.erratum = Some(known);
    }

    async fn perform(&mut self, step: &Step, action: &Action) -> Result<Performed, StepFailure> {
        match action {
            Action::Host { command } => {
                let deadline = self.deadline(step, HOST_TIMEOUT);
                let out = process::run_shell(command, &self.work_dir, &self.enclosure, deadline)
                    .await
                    .map_err(|e| StepFailure::error(format!("cannot run `sh -c`: {e}")))?;
                shell_observation(command, &out)
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
                let deadline = self.deadline(step, GUEST_TIMEOUT);
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
            Action::Boot { vms } => self.boot(step, vms).await,
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
            Action::Check(check) => self.check(step, check).await,
            Action::Wait { label } => self.wait(step, label).await,
            Action::Probe { vm, command } => self.probe(step, vm.as_deref(), command).await,
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

    /// Starts a `host` or `run` step's command and returns without waiting.
    async fn start_background(&mut self, step: &Step, label: &str) -> Result<(), StepFailure> {
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
    async fn wait(&mut self, step: &Step, label: &str) -> Result<Performed, StepFailure> {
        let deadline = self.deadline(step, GUEST_TIMEOUT);
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
                            crate::time::format_duration(deadline.elapsed())
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
    ) -> Result<Performed, StepFailure> {
        let deadline = self.deadline(step, GUEST_TIMEOUT);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let seen = match vm {
                Some(vm) => {
                    let out = self.live(vm)?.probe(command, deadline).await?;
                    Performed::seen(Some(out.exit), out.output)
                }
                None => {
                    let out =
                        process::run_shell(command, &self.work_dir, &self.enclosure, deadline)
                            .await
                            .map_err(|e| StepFailure::error(format!("cannot run `sh -c`: {e}")))?;
                    shell_observation(command, &out)?
                }
            };
            let unmet = mismatches(&step.expect, &seen.observation);
            if unmet.is_empty() || Instant::now() + PROBE_INTERVAL >= deadline.instant() {
                let mut seen = seen;
                if !unmet.is_empty() {
                    seen.own_mismatches.push(format!(
                        "still not so after {attempts} attempts in {}",
                        crate::time::format_duration(deadline.elapsed())
                    ));
                }
                return Ok(seen);
            }
            tokio::time::sleep(PROBE_INTERVAL).await;
        }
    }

    /// The handout's command lines of `vms`, as the lab file gives them.
    fn command_lines(&self, vms: &[String]) -> String {
        self.lab
            .vms
            .iter()
            .filter(|spec| vms.contains(&spec.name))
            .map(|spec| spec.qemu.clone())
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn live(&mut self, vm: &str) -> Result<&mut LiveVm, StepFailure> {
        self.vms.get_mut(vm).ok_or_else(|| StepFailure {
            outcome: Outcome::Failed,
            message: format!("{vm} is not running (boot it in an earlier step)"),
            tail: Vec::new(),
        })
    }

    /// Boots `names` concurrently, QEMU started in the listed order (each once
    /// the one before is up, as a student starts Terminal 1 before Terminal
    /// 2). With an exit expectation on the step, QEMU ending is the awaited
    /// result; otherwise every VM must reach a shell.
    async fn boot(&mut self, step: &Step, names: &[String]) -> Result<Performed, StepFailure> {
        let deadline = self.deadline(step, BOOT_TIMEOUT);
        let mut boots = tokio::task::JoinSet::new();
        let mut refused = Vec::new();
        for name in names {
            let refusal = match self.admission(name) {
                Admission::Boot => None,
                Admission::Refused(reason) => Some(reason),
                Admission::Confine {
                    qemu,
                    work_dir,
                    provided,
                } => confinement(&qemu, &work_dir, &provided, deadline).await?,
            };
            if let Some(reason) = refusal {
                refused.push(format!("{name} was not started: {reason}"));
                continue;
            }
            let firmware = if self.has_direct_boot() {
                crate::vm::firmware::direct_boot_firmware().await
            } else {
                None
            };
            let request = self.boot_request(name, firmware, deadline)?;
            self.events.emit(Event::VmBooting {
                lab: self.lab.id.clone(),
                vm: name.clone(),
            });
            let (launched, up) = tokio::sync::oneshot::channel();
            let request = BootRequest {
                launched: Some(launched),
                ..request
            };
            boots.spawn(async move { (request.vm.clone(), boot(request).await) });
            // Resolves when QEMU is up, or (sender dropped) when it never will be.
            let _ = up.await;
        }
        let mut exits = Vec::new();
        let mut output = String::new();
        let mut failure = None;
        while let Some(joined) = boots.join_next().await {
            let (name, booted) =
                joined.map_err(|e| StepFailure::error(format!("boot task failed: {e}")))?;
            match booted {
                Booted::Ready { vm, after } => {
                    let vm = *vm;
                    self.events.emit(Event::VmReady {
                        lab: self.lab.id.clone(),
                        vm: name.clone(),
                        after,
                    });
                    self.vms.insert(name, vm);
                }
                Booted::Exited { status, log } => {
                    exits.push(status);
                    output.push_str(&log);
                }
                Booted::Failed(f) => failure = failure.or(Some(f)),
            }
        }
        if let Some(failure) = failure {
            return Err(failure);
        }
        if !refused.is_empty() {
            return Err(StepFailure {
                outcome: Outcome::Failed,
                message: refused.join("; "),
                tail: Vec::new(),
            });
        }
        let expects_exit = step.expect.exit.is_some();
        let mut own = Vec::new();
        if expects_exit && exits.is_empty() {
            own.push("QEMU kept running: the guest reached a shell".to_string());
        }
        if !expects_exit && !exits.is_empty() {
            own.push("QEMU exited before the guest reached a shell".to_string());
        }
        Ok(Performed {
            observation: Observation {
                exit: exits.into_iter().next().flatten(),
                output,
            },
            own_mismatches: own,
        })
    }

    /// Whether `name` may boot: its command line may be missing from the
    /// submission or refused by the allow-list, and a submission's must
    /// still have its files judged, now that the student's scripts are done.
    fn admission(&self, name: &str) -> Admission {
        let Some(spec) = self.lab.vms.iter().find(|vm| vm.name == name) else {
            return Admission::Boot;
        };
        match &spec.origin {
            Origin::LabFile => Admission::Boot,
            Origin::Refused(reason) => Admission::Refused(reason.clone()),
            Origin::Submission => Admission::Confine {
                qemu: spec.qemu.clone(),
                work_dir: self.work_dir.clone(),
                provided: self
                    .lab
                    .images
                    .iter()
                    .filter_map(|image| std::fs::canonicalize(self.work_dir.join(&image.name)).ok())
                    .collect(),
            },
        }
    }

    /// Whether a stand-in of this lab boots the guest directly (and so asks
    /// for the direct boot's firmware).
    fn has_direct_boot(&self) -> bool {
        self.lab
            .images
            .iter()
            .any(|image| image.form == GuestForm::Direct)
    }

    /// `firmware`: that of a direct boot, see [`crate::vm::firmware`].
    fn boot_request(
        &mut self,
        name: &str,
        firmware: Option<&str>,
        deadline: Deadline,
    ) -> Result<BootRequest, StepFailure> {
        let spec = self
            .lab
            .vms
            .iter()
            .find(|vm| vm.name == name)
            .ok_or_else(|| StepFailure::error(format!("no VM named {name}")))?;
        let parsed =
            CommandLine::parse(&spec.qemu).map_err(|e| StepFailure::error(e.to_string()))?;
        // A submission's QEMU runs in a dir of labcheck's own, not in the
        // work dir the student's scripts wrote (see `Plan::images_in`).
        let from_submission = spec.origin == Origin::Submission;
        self.launched.insert(name.to_string(), parsed.clone());
        let count = self.boots.entry(name.to_string()).or_insert(0);
        *count += 1;
        let run_dir = self.own_dir.join(format!("{name}-{count}"));
        std::fs::create_dir_all(&run_dir)
            .map_err(|e| StepFailure::error(format!("cannot create {}: {e}", run_dir.display())))?;
        let serial_socket = run_dir.join("serial.sock");
        let qmp_socket = run_dir.join("qmp.sock");
        let control_socket = run_dir.join("control.sock");
        let plan = rewrite::Plan {
            accel: self.ctx.probe.accel,
            serial_socket: serial_socket.clone(),
            qmp_socket: qmp_socket.clone(),
            control_socket: Some(control_socket.clone()),
            stand_ins: self
                .lab
                .images
                .iter()
                .map(|image| rewrite::StandIn {
                    name: image.name.clone(),
                    path: self.work_dir.join(&image.name),
                    direct_boot: (image.form == GuestForm::Direct).then(|| rewrite::DirectBoot {
                        kernel: self.ctx.guest.vmlinux.clone(),
                        initrd: self.ctx.guest.initramfs.clone(),
                        append: crate::guest::Artifacts::DIRECT_BOOT_APPEND.to_owned(),
                        firmware: firmware.map(str::to_owned),
                    }),
                })
                .collect(),
            loopback_ports: self.loopback_ports.clone(),
            images_in: from_submission.then(|| self.work_dir.clone()),
        };
        let rewritten = rewrite(&parsed, &plan);
        if *count == 1 {
            self.events.emit(Event::VmPrepared {
                lab: self.lab.id.clone(),
                vm: name.to_string(),
                substitutions: rewritten
                    .substitutions
                    .iter()
                    .map(|s| SubstitutionReport {
                        vm: name.to_string(),
                        kind: kind_name(s.kind),
                        original: s.original.clone(),
                        replacement: s.replacement.clone(),
                        reason: s.reason.clone(),
                    })
                    .collect(),
            });
        }
        let transcript_name = if *count == 1 {
            format!("{name}.log")
        } else {
            format!("{name}.boot{count}.log")
        };
        let control_name = format!("{name}.control.log");
        self.transcripts.push(TranscriptReport {
            vm: name.to_string(),
            path: format!("{}/{transcript_name}", self.lab.id),
        });
        if *count == 1 {
            // One file for every boot of the VM: the control shell's lines
            // are labcheck's own, and a reboot only appends to them.
            self.transcripts.push(TranscriptReport {
                vm: format!("{name} (control channel)"),
                path: format!("{}/{control_name}", self.lab.id),
            });
        }
        Ok(BootRequest {
            vm: name.to_string(),
            argv: rewritten.argv,
            cwd: if from_submission {
                run_dir.clone()
            } else {
                self.work_dir.clone()
            },
            run_dir,
            serial_socket,
            qmp_socket,
            transcript: self.transcript_dir.join(transcript_name),
            control_socket: Some(control_socket),
            control_transcript: self.transcript_dir.join(control_name),
            enclosure: self.enclosure.clone(),
            deadline,
            launched: None,
        })
    }

    async fn check(&mut self, step: &Step, check: &Check) -> Result<Performed, StepFailure> {
        let deadline = self.deadline(step, HOST_TIMEOUT);
        match check {
            Check::QemuImgInfo {
                image,
                field,
                expect,
            } => {
                let command = format!(
                    "qemu-img info --output=json {}",
                    shlex::try_quote(image).unwrap_or_default()
                );
                let out = process::run_shell(&command, &self.work_dir, &self.enclosure, deadline)
                    .await
                    .map_err(|e| StepFailure::error(format!("cannot run qemu-img: {e}")))?;
                let seen = shell_observation(&command, &out)?;
                if seen.observation.exit != Some(0) {
                    return Ok(Performed {
                        own_mismatches: vec![format!("`{command}` failed")],
                        ..seen
                    });
                }
                let info: serde_json::Value = serde_json::from_str(&seen.observation.output)
                    .map_err(|e| StepFailure::error(format!("qemu-img printed no JSON: {e}")))?;
                let value = info.get(field);
                let shown = match value {
                    Some(v) => format!("{field} = {v}"),
                    None => format!("{field} is absent"),
                };
                let own = match (expect, value) {
                    (FieldExpect::Equals(want), Some(v)) if v == want => vec![],
                    (FieldExpect::Equals(want), _) => vec![format!("{field} should be {want}")],
                    (FieldExpect::Absent, None) => vec![],
                    (FieldExpect::Absent, Some(_)) => vec![format!("{field} should be absent")],
                };
                Ok(Performed {
                    observation: Observation {
                        exit: Some(0),
                        output: shown,
                    },
                    own_mismatches: own,
                })
            }
            Check::File { path, exists } => {
                let present = self.work_dir.join(path).exists();
                let shown = format!(
                    "{path} {}",
                    if present { "exists" } else { "does not exist" }
                );
                let own = if present == *exists {
                    vec![]
                } else {
                    vec![format!(
                        "{path} should {}exist",
                        if *exists { "" } else { "not " }
                    )]
                };
                Ok(Performed {
                    observation: Observation {
                        exit: None,
                        output: shown,
                    },
                    own_mismatches: own,
                })
            }
            Check::NoLinks { kinds } => {
                let namespace = self.namespace.as_ref().ok_or_else(|| {
                    StepFailure::error("`no-links` needs the lab's namespace, and it has none")
                })?;
                let wanted: Vec<&str> = kinds.iter().map(String::as_str).collect();
                let links = namespace
                    .links(&wanted, deadline)
                    .await
                    .map_err(|e| StepFailure::error(e.to_string()))?;
                let shown = links
                    .iter()
                    .map(|link| format!("{} ({})", link.name, link.kind))
                    .collect::<Vec<_>>();
                let own = if links.is_empty() {
                    vec![]
                } else {
                    vec![format!("left in the namespace: {}", shown.join(", "))]
                };
                Ok(Performed {
                    observation: Observation {
                        exit: None,
                        output: if shown.is_empty() {
                            format!("no {} device", kinds.join(" or "))
                        } else {
                            shown.join("\n")
                        },
                    },
                    own_mismatches: own,
                })
            }
            Check::Digest { path, mode } => {
                let file = self.work_dir.join(path);
                let digest = tokio::task::spawn_blocking(move || sha256_file(&file))
                    .await
                    .map_err(|e| StepFailure::error(format!("digest task failed: {e}")))?
                    .map_err(|e| StepFailure::error(format!("cannot read {path}: {e}")))?;
                let own = match mode {
                    DigestMode::Save(key) => {
                        self.digests.insert(key.clone(), digest.clone());
                        vec![]
                    }
                    DigestMode::SameAs(key) => match self.digests.get(key) {
                        Some(saved) if *saved == digest => vec![],
                        Some(_) => vec![format!("{path} changed since `{key}`")],
                        None => vec![format!("no digest saved as `{key}` (its step did not run)")],
                    },
                };
                Ok(Performed {
                    observation: Observation {
                        exit: None,
                        output: format!("sha256 {digest}"),
                    },
                    own_mismatches: own,
                })
            }
            Check::Running { vms } => self.running(vms, deadline).await,
            Check::Traffic { from, to } => self.traffic(from, to, deadline).await,
            Check::Subnet { vms } => self.subnet(vms, deadline).await,
            Check::SocketLink { listen, connect } => Ok(self.socket_link(listen, connect)),
            Check::BridgedTaps { count } => self.bridged_taps(*count, deadline).await,
        }
    }
}

/// What a step showed, plus any verdict the action itself reached (checks).
struct Performed {
    observation: Observation,
    own_mismatches: Vec<String>,
}

impl Performed {
    fn seen(exit: Option<i32>, output: String) -> Self {
        Performed {
            observation: Observation { exit, output },
            own_mismatches: Vec::new(),
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

fn record_failure(report: &mut StepReport, failure: StepFailure) {
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

/// See [`LabRun::admission`].
enum Admission {
    Boot,
    Refused(String),
    Confine {
        qemu: String,
        work_dir: PathBuf,
        provided: Vec<PathBuf>,
    },
}

/// What keeps a submission's command line from booting, judged on the
/// files it names: see [`allowlist::confine_images`] and
/// [`allowlist::firmware_lookalikes`].
async fn confinement(
    qemu: &str,
    work_dir: &Path,
    provided: &[PathBuf],
    deadline: Deadline,
) -> Result<Option<String>, StepFailure> {
    let parsed = CommandLine::parse(qemu).map_err(|e| StepFailure::error(e.to_string()))?;
    let mut refusals = allowlist::confine_images(work_dir, provided, &parsed, deadline)
        .await
        .map_err(|e| StepFailure::error(e.to_string()))?;
    refusals.extend(
        allowlist::firmware_lookalikes(work_dir)
            .map_err(|e| StepFailure::error(format!("cannot list {}: {e}", work_dir.display())))?,
    );
    let reasons: Vec<String> = refusals.iter().map(ToString::to_string).collect();
    Ok((!reasons.is_empty()).then(|| reasons.join("; ")))
}

/// A step not run because `what` (a step before it) did not pass.
fn skipped(step: &Step, what: &str) -> StepReport {
    StepReport {
        outcome: Outcome::Skipped,
        note: Some(format!("skipped: {what} did not pass")),
        ..blank_report(step)
    }
}

fn blank_report(step: &Step) -> StepReport {
    let (kind, vm, command) = describe_action(&step.action);
    StepReport {
        vm,
        command,
        ..StepReport::new(step.name.clone(), kind)
    }
}

fn describe_action(action: &Action) -> (&'static str, Option<String>, Option<String>) {
    match action {
        Action::Host { command } => ("host", None, Some(command.clone())),
        Action::Guest { vm, command } => ("guest", Some(vm.clone()), Some(command.clone())),
        Action::Interact { vm, script } => {
            let typed = script
                .iter()
                .map(|part| match part {
                    Interaction::Send(text) => format!("send {text:?}"),
                    Interaction::Expect(re) => format!("expect /{}/", re.as_str()),
                })
                .collect::<Vec<_>>()
                .join("; ");
            ("interact", Some(vm.clone()), Some(typed))
        }
        Action::Boot { vms } => ("boot", Some(vms.join(", ")), None),
        Action::Reboot { vm } => ("reboot", Some(vm.clone()), Some("reboot".to_string())),
        Action::Poweroff { vm } => ("poweroff", Some(vm.clone()), Some("poweroff".to_string())),
        Action::Stop { vm } => ("stop", Some(vm.clone()), None),
        Action::Check(check) => ("check", None, Some(describe_check(check))),
        Action::Wait { label } => ("wait", None, Some(format!("wait for `{label}`"))),
        Action::Probe { vm, command } => ("probe", vm.clone(), Some(command.clone())),
        Action::NotChecked { .. } => ("claim", None, None),
        Action::Lines { vm, lines } => ("guest", Some(vm.clone()), Some(lines.join("\n"))),
        Action::Sandboxed { script } => ("host", None, Some(script.clone())),
    }
}

/// The command of the background step labelled `label`, for messages.
fn background_command(lab: &Lab, label: &str) -> String {
    lab.steps
        .iter()
        .filter(|step| step.background.as_deref() == Some(label))
        .find_map(|step| match &step.action {
            Action::Host { command } | Action::Guest { command, .. } => Some(command.clone()),
            _ => None,
        })
        .unwrap_or_else(|| label.to_string())
}

fn describe_check(check: &Check) -> String {
    match check {
        Check::QemuImgInfo {
            image,
            field,
            expect,
        } => match expect {
            FieldExpect::Equals(v) => format!("qemu-img info {image}: {field} = {v}"),
            FieldExpect::Absent => format!("qemu-img info {image}: no {field}"),
        },
        Check::File { path, exists } => {
            format!(
                "{path} {}",
                if *exists { "exists" } else { "does not exist" }
            )
        }
        Check::NoLinks { kinds } => format!("no {} device in the namespace", kinds.join(" or ")),
        Check::Digest { path, mode } => match mode {
            DigestMode::Save(key) => format!("sha256 of {path}, saved as `{key}`"),
            DigestMode::SameAs(key) => format!("sha256 of {path} equals `{key}`"),
        },
        Check::Running { vms } => format!("{} running", vms.join(" and ")),
        Check::Traffic { from, to } => format!("traffic from {from} reaches {to}"),
        Check::Subnet { vms } => format!("{} share an IPv4 subnet", vms.join(" and ")),
        Check::SocketLink { listen, connect } => {
            format!("{connect} connects to a socket {listen} listens on")
        }
        Check::BridgedTaps { count } => format!("a bridge with {count} taps"),
    }
}

/// A host command's end as an observation; killed at its deadline, a failure.
fn shell_observation(command: &str, out: &ShellOutput) -> Result<Performed, StepFailure> {
    let text = out.text();
    match out.exit {
        ShellExit::Exited(code) => Ok(Performed::seen(Some(code), text)),
        ShellExit::Signaled(signal) => Ok(Performed::seen(Some(128 + signal), text)),
        ShellExit::TimedOut { after } => Err(StepFailure {
            outcome: Outcome::Failed,
            message: format!(
                "`{command}` did not finish within {} and was killed",
                crate::time::format_duration(after)
            ),
            tail: tail_of(&text),
        }),
    }
}

/// The snake_case name the report uses for a substitution's kind.
fn kind_name(kind: rewrite::SubstitutionKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{kind:?}"))
}

/// For a lab on the host's network run alongside others, a free loopback
/// port for each fixed port its VMs bind or connect to (two such labs, or
/// anything else on the host, could hold the same one). A lab in its own
/// namespace has a loopback of its own and keeps the handout's ports.
fn loopback_ports(lab: &Lab, ctx: &RunContext) -> Result<BTreeMap<u16, u16>, RunError> {
    if lab.network != Network::Host || !ctx.parallel {
        return Ok(BTreeMap::new());
    }
    let mut fixed: Vec<u16> = lab
        .vms
        .iter()
        .filter_map(|vm| CommandLine::parse(&vm.qemu).ok())
        .flat_map(|line| fixed_ports(&line))
        .collect();
    fixed.sort_unstable();
    fixed.dedup();
    if fixed.is_empty() {
        return Ok(BTreeMap::new());
    }
    let free = free_loopback_ports(fixed.len()).map_err(RunError::LoopbackPorts)?;
    Ok(fixed.into_iter().zip(free).collect())
}

/// Whether the lab makes or attaches tap devices, which an unprivileged
/// namespace can only do where the host's tun device is open to all. Read
/// from the text: a tap netdev in a VM's line, or `tuntap` in a host command.
/// Whether the lab runs a submission's `.sh` files (in a sandbox).
fn runs_submission_scripts(lab: &Lab) -> bool {
    lab.steps
        .iter()
        .any(|step| matches!(step.action, Action::Sandboxed { .. }))
}

fn uses_taps(lab: &Lab) -> bool {
    let in_vm = lab.vms.iter().any(|vm| vm.qemu.contains("tap,"));
    let on_host =
        lab.steps.iter().chain(&lab.cleanup).any(
            |step| matches!(&step.action, Action::Host { command } if command.contains("tuntap")),
        );
    in_vm || on_host
}

fn network_name(network: Network) -> &'static str {
    network.as_str()
}

/// What a lab's own namespace changes for its host commands.
fn lab_substitutions(lab: &Lab) -> Vec<SubstitutionReport> {
    match lab.network {
        Network::Host => Vec::new(),
        Network::Namespace => vec![SubstitutionReport {
            vm: "host".to_string(),
            kind: "sudo".to_string(),
            original: "sudo".to_string(),
            replacement: "the lab's namespace root".to_string(),
            reason: "host commands run in a private network namespace made for the lab, \
                     where they already act as its root; nothing they do reaches the host"
                .to_string(),
        }],
    }
}

fn form_name(form: GuestForm) -> &'static str {
    form.as_str()
}

fn tail_of(output: &str) -> Vec<String> {
    let lines: Vec<&str> = output.lines().collect();
    let from = lines.len().saturating_sub(TAIL_LINES);
    lines[from..].iter().map(|l| l.to_string()).collect()
}

fn sha256_file(path: &Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}

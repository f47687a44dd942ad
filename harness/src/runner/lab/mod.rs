//! One lab, start to finish: work dir, stand-ins, the lab's namespace, steps
//! in order, cleanup always. This file only orchestrates; carrying out an
//! action is `actions` (boots in `boot`, checks in `checks`, a student's
//! files in `student`), a step's outcome is `judge`, the report's wording
//! is `report_text`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use super::verdict::describe;
use super::vms::{LiveVm, StepFailure};
use super::{RunContext, RunError};
use crate::console::{PendingCommand, TAIL_LINES};
use crate::events::records::{Outcome, StepReport, TranscriptReport};
use crate::events::{Event, EventSink};
use crate::net::{check_taps_usable, LabNamespace};
use crate::process::{Enclosure, ShellOutput};
use crate::scenario::model::{Action, AfterFailure, GuestForm, Lab, Network, Step};
use crate::time::{Deadline, TimeScale};
use crate::vm::{fixed_ports, free_loopback_ports, CommandLine};

mod actions;
mod boot;
mod checks;
mod judge;
mod report_text;
mod student;

use judge::record_failure;
use report_text::{background_command, blank_report, command_lines, skipped};

/// How long making the lab's network namespace may take, as under KVM.
const NAMESPACE_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `lab` to the end and reports through `events`. Returns `Err` only
/// when the lab could not be started; every step's result is an event.
pub async fn run_lab(lab: &Lab, ctx: &RunContext, events: &EventSink) -> Result<(), RunError> {
    let started = Instant::now();
    let mut run = LabRun::prepare(lab, ctx, events)?;
    run.enter_namespace().await?;
    run.announce();
    run.place_stand_ins()?;
    run.steps_in_order().await;
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

    /// Tells the lab has started: what it is, where it runs, what it changes.
    fn announce(&self) {
        let lab = self.lab;
        self.events.emit(Event::LabStarted {
            lab: lab.id.clone(),
            title: lab.title.clone(),
            handout: lab.handout.clone(),
            source: lab.source.display().to_string(),
            work_dir: self.work_dir.display().to_string(),
            network: lab.network,
            substitutions: report_text::lab_substitutions(lab),
            steps: lab.steps.len() + lab.cleanup.len(),
            stand_ins: report_text::stand_ins(lab),
        });
    }

    /// Runs the lab's steps in order, skipping those whose dependencies did
    /// not pass (and, after a failure, the rest if the lab says so), then
    /// every cleanup step whatever happened.
    async fn steps_in_order(&mut self) {
        let lab = self.lab;
        let mut failed_step: Option<String> = None;
        let mut passed_ids = HashSet::new();
        let mut index = 0;
        for step in &lab.steps {
            let unmet = step.depends_on.iter().find(|id| !passed_ids.contains(*id));
            let report = match (&failed_step, unmet) {
                (Some(failed), _) => skipped(step, &format!("the earlier step `{failed}`")),
                (None, Some(id)) => skipped(step, &format!("`{id}`")),
                (None, None) => self.step(index, step).await,
            };
            let failed = matches!(report.outcome, Outcome::Failed | Outcome::Error);
            if failed && lab.after_failure == AfterFailure::SkipRest && failed_step.is_none() {
                failed_step = Some(step.name.clone());
            }
            if let (Some(id), Outcome::Passed) = (&step.id, report.outcome) {
                passed_ids.insert(id.clone());
            }
            self.finish_step(index, report);
            index += 1;
        }
        for step in &lab.cleanup {
            let report = self.step(index, step).await;
            self.finish_step(index, report);
            index += 1;
        }
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

    /// The lab's namespace, which `what` needs: an error in a lab without one.
    fn namespace_for(&self, what: &str) -> Result<&LabNamespace, StepFailure> {
        self.namespace.as_ref().ok_or_else(|| {
            StepFailure::error(format!("{what} needs the lab's namespace, and it has none"))
        })
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
        let mut report = self.opening_report(step);
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

    /// `step`'s report before it runs: what it does and expects, as shown.
    fn opening_report(&self, step: &Step) -> StepReport {
        let mut report = blank_report(step);
        report.expected = describe(&step.expect);
        if let Action::Boot { vms } = &step.action {
            report.command = Some(command_lines(self.lab, vms));
        }
        if let Action::Wait { label } = &step.action {
            // Shown as the command it waits for, on the VM it runs on.
            report.vm = self.guest_backgrounds.get(label).map(|(vm, _)| vm.clone());
            report.command = Some(format!(
                "{} (started as `{label}`)",
                background_command(self.lab, label)
            ));
        }
        report
    }

    /// The last lines of `vm`'s console, for a step on it that failed
    /// without a wait running out (which brings its own tail).
    fn console_tail_of(&self, vm: Option<&str>) -> Vec<String> {
        vm.and_then(|vm| self.vms.get(vm))
            .map(|live| live.console.tail(TAIL_LINES))
            .unwrap_or_default()
    }
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

/// Whether the lab runs a submission's `.sh` files (in a sandbox).
fn runs_submission_scripts(lab: &Lab) -> bool {
    lab.steps
        .iter()
        .any(|step| matches!(step.action, Action::Sandboxed { .. }))
}

/// Whether the lab makes or attaches tap devices, which an unprivileged
/// namespace can only do where the host's tun device is open to all. Read
/// from the text: a tap netdev in a VM's line, or `tuntap` in a host command.
fn uses_taps(lab: &Lab) -> bool {
    let in_vm = lab.vms.iter().any(|vm| vm.qemu.contains("tap,"));
    let on_host =
        lab.steps.iter().chain(&lab.cleanup).any(
            |step| matches!(&step.action, Action::Host { command } if command.contains("tuntap")),
        );
    in_vm || on_host
}

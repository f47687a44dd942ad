//! Booting a step's VMs. First admission: a grading run's command line may
//! be missing or refused by the allow-list, and one from a submission boots
//! only once the files it names pass (`.qemu` files are the student's).
//! Then the plan: the rewrite of each command line (sockets, stand-ins,
//! ports, accelerator), its run dir and transcripts. Then QEMU is started in
//! the listed order and the guests are awaited together.

use std::path::{Path, PathBuf};

use tokio::task::JoinSet;

use super::actions::Performed;
use super::{report_text, LabRun};
use crate::events::records::{Outcome, TranscriptReport};
use crate::events::Event;
use crate::runner::verdict::Observation;
use crate::runner::{boot, BootRequest, Booted, StepFailure};
use crate::scenario::model::{GuestForm, Origin, Step};
use crate::time::Deadline;
use crate::vm::{allowlist, rewrite, CommandLine};

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

impl Admission {
    /// Why the VM may not boot, if it may not.
    async fn refusal(self, deadline: Deadline) -> Result<Option<String>, StepFailure> {
        match self {
            Admission::Boot => Ok(None),
            Admission::Refused(reason) => Ok(Some(reason)),
            Admission::Confine {
                qemu,
                work_dir,
                provided,
            } => confinement(&qemu, &work_dir, &provided, deadline).await,
        }
    }
}

/// How the VMs of a boot step that did start ended, when none failed.
struct Ended {
    /// The exit status of each VM whose QEMU ended before a shell came up.
    exits: Vec<Option<i32>>,
    /// Those VMs' QEMU logs.
    output: String,
}

impl LabRun<'_> {
    /// Boots `names` concurrently, QEMU started in the listed order (each once
    /// the one before is up, as a student starts Terminal 1 before Terminal
    /// 2). With an exit expectation on the step, QEMU ending is the awaited
    /// result; otherwise every VM must reach a shell.
    pub(super) async fn boot(
        &mut self,
        step: &Step,
        names: &[String],
        deadline: Deadline,
    ) -> Result<Performed, StepFailure> {
        let mut boots = JoinSet::new();
        let mut refused = Vec::new();
        for name in names {
            if let Some(reason) = self.admission(name).refusal(deadline).await? {
                refused.push(format!("{name} was not started: {reason}"));
                continue;
            }
            self.start_qemu(name, deadline, &mut boots).await?;
        }
        let ended = self.await_guests(boots).await?;
        if !refused.is_empty() {
            return Err(StepFailure {
                outcome: Outcome::Failed,
                message: refused.join("; "),
                tail: Vec::new(),
            });
        }
        let expects_exit = step.expect.exit.is_some();
        let mut own = Vec::new();
        if expects_exit && ended.exits.is_empty() {
            own.push("QEMU kept running: the guest reached a shell".to_string());
        }
        if !expects_exit && !ended.exits.is_empty() {
            own.push("QEMU exited before the guest reached a shell".to_string());
        }
        Ok(Performed {
            observation: Observation {
                exit: ended.exits.into_iter().next().flatten(),
                output: ended.output,
            },
            own_mismatches: own,
        })
    }

    /// Starts `name`'s QEMU in a task of `boots` and returns once it is up
    /// (or will never be), so the next VM can connect to its sockets.
    async fn start_qemu(
        &mut self,
        name: &str,
        deadline: Deadline,
        boots: &mut JoinSet<(String, Booted)>,
    ) -> Result<(), StepFailure> {
        let firmware = if self.has_direct_boot() {
            crate::vm::firmware::direct_boot_firmware().await
        } else {
            None
        };
        let request = self.boot_request(name, firmware, deadline)?;
        self.events.emit(Event::VmBooting {
            lab: self.lab.id.clone(),
            vm: name.to_string(),
        });
        let (launched, up) = tokio::sync::oneshot::channel();
        let request = BootRequest {
            launched: Some(launched),
            ..request
        };
        boots.spawn(async move { (request.vm.clone(), boot(request).await) });
        // Resolves when QEMU is up, or (sender dropped) when it never will be.
        let _ = up.await;
        Ok(())
    }

    /// Waits for every boot of `boots` to end; the VMs that reached a shell
    /// join the lab's, and the first boot that failed fails the step.
    async fn await_guests(
        &mut self,
        mut boots: JoinSet<(String, Booted)>,
    ) -> Result<Ended, StepFailure> {
        let mut ended = Ended {
            exits: Vec::new(),
            output: String::new(),
        };
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
                    ended.exits.push(status);
                    ended.output.push_str(&log);
                }
                Booted::Failed(f) => failure = failure.or(Some(f)),
            }
        }
        match failure {
            Some(failure) => Err(failure),
            None => Ok(ended),
        }
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
        let count = *count;
        let run_dir = self.own_dir.join(format!("{name}-{count}"));
        std::fs::create_dir_all(&run_dir)
            .map_err(|e| StepFailure::error(format!("cannot create {}: {e}", run_dir.display())))?;
        let plan = self.plan(&run_dir, firmware, from_submission);
        let rewritten = rewrite(&parsed, &plan);
        if count == 1 {
            self.events.emit(Event::VmPrepared {
                lab: self.lab.id.clone(),
                vm: name.to_string(),
                substitutions: report_text::vm_substitutions(name, &rewritten.substitutions),
            });
        }
        let (transcript, control_transcript) = self.transcripts_of(name, count);
        Ok(BootRequest {
            vm: name.to_string(),
            argv: rewritten.argv,
            cwd: if from_submission {
                run_dir.clone()
            } else {
                self.work_dir.clone()
            },
            serial_socket: plan.serial_socket,
            qmp_socket: plan.qmp_socket,
            control_socket: plan.control_socket,
            run_dir,
            transcript,
            control_transcript,
            enclosure: self.enclosure.clone(),
            deadline,
            launched: None,
        })
    }

    /// How a VM's command line is rewritten: its sockets in `run_dir`, the
    /// lab's stand-ins and loopback ports, and, for a submission's, its
    /// images named in full from the work dir.
    fn plan(&self, run_dir: &Path, firmware: Option<&str>, from_submission: bool) -> rewrite::Plan {
        rewrite::Plan {
            accel: self.ctx.probe.accel,
            serial_socket: run_dir.join("serial.sock"),
            qmp_socket: run_dir.join("qmp.sock"),
            control_socket: Some(run_dir.join("control.sock")),
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
        }
    }

    /// Where the `count`th boot of `name` writes its console and its control
    /// channel, listed in the report: (console, control channel).
    fn transcripts_of(&mut self, name: &str, count: usize) -> (PathBuf, PathBuf) {
        let transcript_name = if count == 1 {
            format!("{name}.log")
        } else {
            format!("{name}.boot{count}.log")
        };
        let control_name = format!("{name}.control.log");
        self.transcripts.push(TranscriptReport {
            vm: name.to_string(),
            path: format!("{}/{transcript_name}", self.lab.id),
        });
        if count == 1 {
            // One file for every boot of the VM: the control shell's lines
            // are labcheck's own, and a reboot only appends to them.
            self.transcripts.push(TranscriptReport {
                vm: format!("{name} (control channel)"),
                path: format!("{}/{control_name}", self.lab.id),
            });
        }
        (
            self.transcript_dir.join(transcript_name),
            self.transcript_dir.join(control_name),
        )
    }
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

//! The lab's VMs: launch, wire the console, wait for a shell; reboot and
//! power off through the guest, watched through QMP; observe the guest
//! through labcheck's own control shell, apart from the handout's console.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::console::{CommandOutput, Console, ConsoleError};
use crate::events::records::Outcome;
use crate::process::{ChildProcess, Enclosure};
use crate::time::{format_duration, Deadline};
use crate::vm::launch::{log_tail, QEMU_LOG};
use crate::vm::{launch, LaunchError, Qmp, RunningVm, Sockets};

/// A VM whose shell answered. Dropping it kills QEMU.
#[derive(Debug)]
pub struct LiveVm {
    /// The handout's console: the guest's first serial port.
    pub console: Console,
    /// labcheck's control shell on the second serial port, if wired.
    control: Option<ControlShell>,
    child: ChildProcess,
    qmp: Qmp,
}

/// The control channel's console, and whether its shell has been set up
/// since the guest last booted.
#[derive(Debug)]
struct ControlShell {
    console: Console,
    ready: bool,
}

/// Everything needed to boot one VM, owned so that boots run concurrently.
#[derive(Debug)]
pub struct BootRequest {
    pub vm: String,
    pub argv: Vec<String>,
    /// The lab's work dir: QEMU runs here so the handout's relative paths work.
    pub cwd: PathBuf,
    /// Sockets and QEMU's own log.
    pub run_dir: PathBuf,
    pub serial_socket: PathBuf,
    pub qmp_socket: PathBuf,
    pub transcript: PathBuf,
    /// labcheck's control channel, as wired by the rewrite's `Plan`; `None`
    /// boots without one.
    pub control_socket: Option<PathBuf>,
    /// The control channel's transcript; unused without `control_socket`.
    pub control_transcript: PathBuf,
    /// The host, or the lab's network namespace.
    pub enclosure: Enclosure,
    pub deadline: Deadline,
    /// Told once QEMU is up (its QMP answers, so its `-netdev` sockets are
    /// listening), before the guest boots; dropped unsent if QEMU never got
    /// that far. Lets a second VM `connect=` to a first one's `listen=`.
    pub launched: Option<tokio::sync::oneshot::Sender<()>>,
}

/// How a boot ended.
#[derive(Debug)]
pub enum Booted {
    Ready {
        vm: Box<LiveVm>,
        after: Duration,
    },
    /// QEMU ended before a shell came up (a result some steps expect).
    Exited {
        status: Option<i32>,
        log: String,
    },
    Failed(StepFailure),
}

/// A step that could not show its expectation, with what the console showed.
#[derive(Debug, Clone)]
pub struct StepFailure {
    pub outcome: Outcome,
    pub message: String,
    pub tail: Vec<String>,
}

impl StepFailure {
    /// labcheck could not carry the step out.
    pub fn error(message: impl Into<String>) -> Self {
        StepFailure {
            outcome: Outcome::Error,
            message: message.into(),
            tail: Vec::new(),
        }
    }

    /// A console wait that did not end as expected fails the step (the lab's
    /// fault, or the guest's); a transcript that cannot be opened is labcheck's.
    pub fn from_console(error: ConsoleError) -> Self {
        // The tail travels apart from the message, so reports show it once.
        match error {
            ConsoleError::Timeout {
                expected,
                waited,
                tail,
            } => StepFailure {
                outcome: Outcome::Failed,
                message: format!(
                    "timed out after {} waiting for {expected}",
                    format_duration(waited)
                ),
                tail,
            },
            ConsoleError::Closed {
                expected,
                reason,
                tail,
            } => StepFailure {
                outcome: Outcome::Failed,
                message: format!("console closed ({reason}) while waiting for {expected}"),
                tail,
            },
            ConsoleError::Io(error) => StepFailure::error(format!("console I/O failed: {error}")),
        }
    }
}

/// Launches QEMU and waits for the guest's shell. Spawns QEMU: run it on a
/// tokio worker (the parent-death signal follows the spawning thread).
pub async fn boot(mut request: BootRequest) -> Booted {
    let started = Instant::now();
    let sockets = Sockets {
        serial: request.serial_socket.clone(),
        qmp: request.qmp_socket.clone(),
        control: request.control_socket.clone(),
    };
    let launched = launch(
        &request.argv,
        &request.cwd,
        &request.run_dir,
        &sockets,
        &request.enclosure,
        request.deadline,
    )
    .await;
    let RunningVm {
        mut child,
        serial,
        control,
        qmp,
        log,
    } = match launched {
        Ok(running) => running,
        Err(error @ LaunchError::Exited { .. }) => {
            return Booted::Exited {
                status: error.exit_code(),
                log: log_tail(&request.run_dir.join(QEMU_LOG)),
            }
        }
        Err(other) => return Booted::Failed(StepFailure::error(other.to_string())),
    };
    if let Some(launched) = request.launched.take() {
        // Nobody waiting is fine: the order only matters to `connect=`.
        let _ = launched.send(());
    }
    let mut console = match Console::start(serial, &request.transcript) {
        Ok(console) => console,
        Err(error) => return Booted::Failed(StepFailure::from_console(error)),
    };
    // Started now, so its reader drains the port from the first byte; its
    // shell is set up by the first probe, not here, so boots wait for no
    // more than the handout's shell.
    let control = match control
        .map(|stream| Console::start(stream, &request.control_transcript))
        .transpose()
    {
        Ok(console) => console.map(|console| ControlShell {
            console,
            ready: false,
        }),
        Err(error) => return Booted::Failed(StepFailure::from_console(error)),
    };
    match console.wait_for_shell(request.deadline).await {
        Ok(()) => Booted::Ready {
            vm: Box::new(LiveVm {
                console,
                control,
                child,
                qmp,
            }),
            after: started.elapsed(),
        },
        Err(error) => match child.try_wait() {
            Ok(Some(status)) => Booted::Exited {
                status: status.code(),
                log: log_tail(&log),
            },
            _ => Booted::Failed(StepFailure::from_console(error)),
        },
    }
}

/// A failure on the control channel, named so it is not taken for one on
/// the handout's console.
fn control_failure(error: ConsoleError) -> StepFailure {
    let failure = StepFailure::from_console(error);
    StepFailure {
        message: format!("labcheck's control shell: {}", failure.message),
        ..failure
    }
}

impl LiveVm {
    /// Types `reboot`, waits for QEMU's RESET event, then for the new shell.
    pub async fn reboot(&mut self, deadline: Deadline) -> Result<(), StepFailure> {
        let mut events = self.qmp.subscribe();
        self.console
            .send_line("reboot", deadline)
            .await
            .map_err(StepFailure::from_console)?;
        let reset = async {
            loop {
                match events.recv().await {
                    Ok(event) if event.name == "RESET" => return true,
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return false,
                }
            }
        };
        match tokio::time::timeout_at(deadline.tokio_instant(), reset).await {
            Ok(true) => {}
            Ok(false) => return Err(self.failure("QEMU's RESET event", deadline, "QMP closed")),
            Err(_) => return Err(self.failure("QEMU's RESET event", deadline, "timed out")),
        }
        // The control shell restarts with the guest: the next probe sets
        // up the new one.
        if let Some(control) = &mut self.control {
            control.ready = false;
        }
        self.console
            .wait_for_shell(deadline)
            .await
            .map_err(StepFailure::from_console)
    }

    /// Runs `command` on labcheck's control shell (the guest's ttyS1), out
    /// of reach of whatever runs on the handout's console or what its lines
    /// did to their shell. The first call after a boot waits for that shell
    /// to be ready, within the same `deadline`.
    pub async fn probe(
        &mut self,
        command: &str,
        deadline: Deadline,
    ) -> Result<CommandOutput, StepFailure> {
        let control = self.control.as_mut().ok_or_else(|| {
            StepFailure::error("this VM was booted without labcheck's control channel")
        })?;
        if !control.ready {
            control
                .console
                .wait_for_shell(deadline)
                .await
                .map_err(control_failure)?;
            control.ready = true;
        }
        control
            .console
            .run(command, deadline)
            .await
            .map_err(control_failure)
    }

    /// Types `poweroff` and waits for QEMU to exit; returns its exit code.
    pub async fn poweroff(&mut self, deadline: Deadline) -> Result<Option<i32>, StepFailure> {
        self.console
            .send_line("poweroff", deadline)
            .await
            .map_err(StepFailure::from_console)?;
        match self.child.wait_with_deadline(deadline).await {
            Ok(status) => Ok(status.code()),
            Err(error) => Err(self.failure("QEMU to exit", deadline, &error.to_string())),
        }
    }

    fn failure(&self, awaited: &str, deadline: Deadline, what: &str) -> StepFailure {
        StepFailure {
            outcome: Outcome::Failed,
            message: format!(
                "{what} after {} waiting for {awaited}",
                format_duration(deadline.elapsed())
            ),
            tail: self.console.tail(20),
        }
    }
}

//! Starting a VM: spawn QEMU through the door, connect its serial console
//! (QEMU waits for us before running the guest), then labcheck's control
//! channel if the VM has one, then QMP.

use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use tokio::net::UnixStream;
use tokio::process::Command;

use super::qmp::{connect_when_ready, Qmp, QmpError};
use crate::process::{ChildProcess, Enclosure, WaitError};
use crate::time::Deadline;

/// QEMU's own messages (stdout and stderr) go here, inside the run dir.
pub const QEMU_LOG: &str = "qemu.log";

/// What QEMU logs while a `wait=on` socket waits for labcheck to connect.
const WAITING_NOTE: &str = "info: QEMU waiting for connection on:";

/// The longest unix socket path: `sun_path` is 108 bytes with its NUL.
const SOCKET_PATH_MAX: usize = 107;

/// How many lines of qemu.log a failure quotes.
const LOG_TAIL_LINES: usize = 10;

/// How long to give QEMU to finish exiting once a connection failed, so the
/// error can be its exit status and message rather than a broken socket.
const EXIT_GRACE: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("empty QEMU argv")]
    EmptyArgv,
    #[error("could not start {program}: {source}")]
    Spawn { program: String, source: io::Error },
    #[error("QEMU exited ({status}) before {stage}; qemu.log ends with:\n{log_tail}")]
    Exited {
        status: ExitStatus,
        stage: &'static str,
        log_tail: String,
    },
    #[error("no connection to {} within {waited:?}: {source}", path.display())]
    SocketTimeout {
        path: PathBuf,
        waited: Duration,
        source: io::Error,
    },
    #[error("socket path {} is {len} bytes; unix sockets allow at most {SOCKET_PATH_MAX}", path.display())]
    SocketPathTooLong { path: PathBuf, len: usize },
    #[error("QMP: {0}")]
    Qmp(#[from] QmpError),
}

impl LaunchError {
    /// QEMU's exit code, when the failure is QEMU having exited.
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            Self::Exited { status, .. } => status.code(),
            _ => None,
        }
    }
}

/// The unix sockets a VM's argv wires (keep their paths under 108 bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sockets {
    /// The serial console, wired with `wait=on`.
    pub serial: PathBuf,
    pub qmp: PathBuf,
    /// labcheck's control channel (the second serial port), if wired.
    pub control: Option<PathBuf>,
}

impl Sockets {
    fn all(&self) -> impl Iterator<Item = &Path> {
        [Some(&self.serial), Some(&self.qmp), self.control.as_ref()]
            .into_iter()
            .flatten()
            .map(PathBuf::as_path)
    }
}

/// A running VM and its channels. Dropping it kills QEMU.
#[derive(Debug)]
pub struct RunningVm {
    pub child: ChildProcess,
    /// The guest's first serial port.
    pub serial: UnixStream,
    /// The guest's second serial port, labcheck's control channel, when
    /// [`Sockets::control`] was given.
    pub control: Option<UnixStream>,
    pub qmp: Qmp,
    /// QEMU's log file, for the report.
    pub log: PathBuf,
}

impl RunningVm {
    /// Waits for QEMU to exit (after a power-off or `quit`), until `deadline`.
    pub async fn wait_exit(&mut self, deadline: Deadline) -> Result<ExitStatus, WaitError> {
        self.child.wait_with_deadline(deadline).await
    }
}

/// Starts QEMU with `argv` (program first) in `work_dir`, where the
/// handout's relative file names resolve, inside `enclosure`. `run_dir` holds qemu.log;
/// `sockets` are the ones `argv` wires.
///
/// Spawns a child: call from a tokio worker, see [`ChildProcess::spawn`].
pub async fn launch(
    argv: &[String],
    work_dir: &Path,
    run_dir: &Path,
    sockets: &Sockets,
    enclosure: &Enclosure,
    deadline: Deadline,
) -> Result<RunningVm, LaunchError> {
    let (program, args) = argv.split_first().ok_or(LaunchError::EmptyArgv)?;
    for socket in sockets.all() {
        let len = socket.as_os_str().len();
        if len > SOCKET_PATH_MAX {
            let path = socket.to_owned();
            return Err(LaunchError::SocketPathTooLong { path, len });
        }
    }
    let log = run_dir.join(QEMU_LOG);
    let spawn_error = |source| LaunchError::Spawn {
        program: program.clone(),
        source,
    };
    // A socket left by an earlier run would refuse connections until QEMU
    // replaces it; remove it so a refusal means QEMU is not ready yet.
    for socket in sockets.all() {
        remove_if_present(socket).map_err(spawn_error)?;
    }
    let mut cmd = Command::new(program);
    cmd.args(args).current_dir(work_dir);
    let mut child = ChildProcess::spawn(cmd, Some(&log), enclosure).map_err(spawn_error)?;

    let serial = connect(
        &mut child,
        &sockets.serial,
        "the serial console connected",
        &log,
        deadline,
    )
    .await?;
    // QEMU does not wait for the control channel (`wait=off`), so the guest
    // may already run when it connects. Nothing lost matters: the guest
    // writes ttyS1 only once its control shell starts, long after the
    // firmware that runs now, and the first probe retypes its setup line
    // until that shell answers.
    let control = match &sockets.control {
        Some(socket) => {
            let stage = "the control channel connected";
            Some(connect(&mut child, socket, stage, &log, deadline).await?)
        }
        None => None,
    };
    let qmp = tokio::select! {
        qmp = Qmp::connect(&sockets.qmp, deadline) => match qmp {
            Ok(qmp) => qmp,
            // QEMU often fails after the serial console connected (a missing
            // disk); then the QMP socket closes. Its exit says why.
            Err(error) => {
                let grace = Deadline::after(EXIT_GRACE);
                return Err(exited_or(child.wait_with_deadline(grace).await, "QMP connected", &log, || error.into()));
            }
        },
        status = child.wait_with_deadline(deadline) => {
            return Err(exited_or(status, "QMP connected", &log, || {
                socket_timeout(&sockets.qmp, deadline, io::ErrorKind::TimedOut.into())
            }));
        }
    };
    Ok(RunningVm {
        child,
        serial,
        control,
        qmp,
        log,
    })
}

/// Connects to `socket` once QEMU listens on it; QEMU's exit while waiting
/// fails with its log, as not having reached `stage`.
async fn connect(
    child: &mut ChildProcess,
    socket: &Path,
    stage: &'static str,
    log: &Path,
    deadline: Deadline,
) -> Result<UnixStream, LaunchError> {
    tokio::select! {
        stream = connect_when_ready(socket, deadline) => {
            stream.map_err(|source| socket_timeout(socket, deadline, source))
        }
        status = child.wait_with_deadline(deadline) => {
            Err(exited_or(status, stage, log, || {
                socket_timeout(socket, deadline, io::ErrorKind::TimedOut.into())
            }))
        }
    }
}

/// QEMU's exit as the error if it did exit, otherwise `otherwise()`.
fn exited_or(
    waited: Result<ExitStatus, WaitError>,
    stage: &'static str,
    log: &Path,
    otherwise: impl FnOnce() -> LaunchError,
) -> LaunchError {
    match waited {
        Ok(status) => LaunchError::Exited {
            status,
            stage,
            log_tail: log_tail(log),
        },
        Err(_) => otherwise(),
    }
}

fn socket_timeout(path: &Path, deadline: Deadline, source: io::Error) -> LaunchError {
    LaunchError::SocketTimeout {
        path: path.to_owned(),
        waited: deadline.elapsed(),
        source,
    }
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

/// The last lines of QEMU's log, or why it could not be read. QEMU's note
/// that it waits for the serial console is left out: labcheck caused it.
pub fn log_tail(log: &Path) -> String {
    match std::fs::read(log) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text
                .lines()
                .filter(|line| !line.contains(WAITING_NOTE))
                .collect();
            lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
        }
        Err(error) => format!("({} unreadable: {error})", log.display()),
    }
}

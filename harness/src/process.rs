//! The one door through which labcheck starts child processes: QEMU, the
//! host commands of lab steps, the sandbox, the namespace holders, the
//! tools labcheck asks (qemu-img, QEMU's own queries, the guest build's).
//!
//! Every child gets its own process group, dies with the thread that spawned
//! it, reads nothing from stdin, and is killed with its whole group when its
//! [`ChildProcess`] is dropped. Nothing labcheck starts outlives it.

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use nix::sched::CloneFlags;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

use crate::time::Deadline;

/// How long Drop waits for a killed child to be reaped before leaving it to
/// tokio's background reaper. SIGKILL normally takes well under a millisecond.
const REAP_GRACE: Duration = Duration::from_millis(100);

/// How long [`run_shell`] keeps reading output after its command ended.
const DRAIN_GRACE: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    #[error("process {pid} still running after {waited:?}")]
    Timeout { pid: u32, waited: Duration },
    #[error("waiting for process {pid}: {source}")]
    Io { pid: u32, source: io::Error },
}

/// Where a child runs: on the host as it is ([`Enclosure::host`]), or inside
/// a lab's namespaces with the lab's tool dir first on `PATH` (made by
/// [`crate::net`]). Cheap to clone: the namespaces are shared file handles.
#[derive(Debug, Clone, Default)]
pub struct Enclosure {
    /// Namespaces the child joins before it runs, in order: a user namespace
    /// must come before the network namespace it owns.
    namespaces: Vec<(Arc<OwnedFd>, CloneFlags)>,
    /// Put first on the child's `PATH` (the lab's `sudo`, for example).
    tool_dir: Option<PathBuf>,
}

impl Enclosure {
    /// The host, unchanged.
    pub fn host() -> Self {
        Self::default()
    }

    /// Joins `namespaces` (each an open `/proc/PID/ns/*` file and its kind)
    /// in order, with `tool_dir` first on `PATH`.
    pub fn new(namespaces: Vec<(Arc<OwnedFd>, CloneFlags)>, tool_dir: Option<PathBuf>) -> Self {
        Self {
            namespaces,
            tool_dir,
        }
    }

    pub fn is_host(&self) -> bool {
        self.namespaces.is_empty() && self.tool_dir.is_none()
    }

    /// Arranges `cmd` to start inside the enclosure. Must be registered
    /// before [`die_with_parent`]: joining a user namespace changes the
    /// credentials, which clears the parent-death signal.
    fn apply(&self, cmd: &mut Command) {
        if let Some(dir) = &self.tool_dir {
            cmd.env("PATH", path_with_first(dir));
        }
        if self.namespaces.is_empty() {
            return;
        }
        let namespaces = self.namespaces.clone();
        // SAFETY: the closure runs in the forked child before exec and calls
        // only setns(2), async-signal-safe; the file descriptors stay open in
        // the parent (the Arcs live in `cmd`'s closure) and so in the child.
        #[allow(unsafe_code)]
        unsafe {
            cmd.pre_exec(move || {
                for (file, kind) in &namespaces {
                    let fd: BorrowedFd<'_> = BorrowedFd::borrow_raw(file.as_raw_fd());
                    nix::sched::setns(fd, *kind)?;
                }
                Ok(())
            });
        }
    }
}

/// `$PATH` with `dir` in front.
fn path_with_first(dir: &Path) -> OsString {
    let mut path = OsString::from(dir);
    if let Some(rest) = std::env::var_os("PATH") {
        path.push(":");
        path.push(rest);
    }
    path
}

/// A running child process, leader of its own process group.
#[derive(Debug)]
pub struct ChildProcess {
    child: Child,
    pid: u32,
}

impl ChildProcess {
    /// Spawns `cmd` through the door, inside `enclosure`: own process group,
    /// SIGKILL when the spawning thread dies, stdin from /dev/null, and stdout
    /// plus stderr written to `log` (created or truncated) when given,
    /// otherwise as configured on `cmd`.
    ///
    /// The parent-death signal fires when the *thread* that spawned the child
    /// exits, not the process: call this from a tokio worker or another
    /// long-lived thread, never from `spawn_blocking`, whose threads come and go.
    pub fn spawn(mut cmd: Command, log: Option<&Path>, enclosure: &Enclosure) -> io::Result<Self> {
        cmd.stdin(Stdio::null()).process_group(0);
        if let Some(log) = log {
            let file = File::create(log)?;
            cmd.stdout(file.try_clone()?).stderr(file);
        }
        Self::start(cmd, enclosure)
    }

    /// Spawns `cmd` through the door as the leader of a new session whose
    /// controlling terminal is `terminal` (a pty's slave side), which is also
    /// its stdin, stdout and stderr: Ctrl-C typed on the pty's master reaches
    /// its foreground job as on a real terminal. The session leader leads its
    /// own process group, so it is killed with that group like any child.
    pub fn spawn_on_terminal(mut cmd: Command, terminal: OwnedFd) -> io::Result<Self> {
        cmd.stdin(Stdio::from(terminal.try_clone()?))
            .stdout(Stdio::from(terminal.try_clone()?))
            .stderr(Stdio::from(terminal));
        // SAFETY: the closure runs in the forked child before exec and calls
        // only setsid(2) and ioctl(2), both async-signal-safe.
        #[allow(unsafe_code)]
        unsafe {
            cmd.pre_exec(|| {
                nix::unistd::setsid()?;
                if libc::ioctl(0, libc::TIOCSCTTY, 0) == -1 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        Self::start(cmd, &Enclosure::host())
    }

    fn start(mut cmd: Command, enclosure: &Enclosure) -> io::Result<Self> {
        cmd.kill_on_drop(false);
        enclosure.apply(&mut cmd);
        die_with_parent(cmd.as_std_mut());
        let child = cmd.spawn()?;
        let pid = child
            .id()
            .ok_or_else(|| io::Error::other("child exited before its pid was read"))?;
        Ok(Self { child, pid })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Waits for the child to exit, at most until `deadline`.
    pub async fn wait_with_deadline(
        &mut self,
        deadline: Deadline,
    ) -> Result<ExitStatus, WaitError> {
        let pid = self.pid;
        match tokio::time::timeout_at(deadline.tokio_instant(), self.child.wait()).await {
            Ok(status) => status.map_err(|source| WaitError::Io { pid, source }),
            Err(_) => Err(WaitError::Timeout {
                pid,
                waited: deadline.elapsed(),
            }),
        }
    }

    /// The exit status if the child has exited, without waiting.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.child.try_wait()
    }

    /// Sends SIGKILL to the child's whole process group: QEMU and anything a
    /// shell step left running. A group that is already gone is not an error.
    /// (The group id is the child's pid; once the child is reaped and the
    /// group empty, the kernel could in principle hand that id to a new
    /// group, a risk accepted for the second or so a step's cleanup takes.)
    pub fn kill_group(&self) -> io::Result<()> {
        let group = Pid::from_raw(i32::try_from(self.pid).map_err(io::Error::other)?);
        match killpg(group, Signal::SIGKILL) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
            Err(errno) => Err(errno.into()),
        }
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        // Nothing useful can be done with an error here: the group is either
        // gone or not ours to signal.
        let _ = self.kill_group();
        let started = std::time::Instant::now();
        while started.elapsed() < REAP_GRACE {
            match self.child.try_wait() {
                Ok(None) => std::thread::sleep(Duration::from_millis(1)),
                // Reaped, or nothing left to reap.
                Ok(Some(_)) | Err(_) => return,
            }
        }
        // Still not reaped: tokio reaps dropped children in the background.
    }
}

/// Arranges for the child to receive SIGKILL when the spawning thread exits.
/// Also used by the guest's kernel build, which runs `make` without tokio.
#[allow(unsafe_code)]
pub(crate) fn die_with_parent(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id();
    // SAFETY: the closure runs in the forked child before exec and calls only
    // prctl(2) and getppid(2), both async-signal-safe; it allocates nothing
    // and touches no lock.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
            // The parent may have died between fork and prctl; then the signal
            // will never come, so refuse to run rather than leak.
            if u32::try_from(nix::unistd::getppid().as_raw()) != Ok(parent) {
                return Err(nix::errno::Errno::ESRCH.into());
            }
            Ok(())
        });
    }
}

/// How a shell command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShellExit {
    Exited(i32),
    Signaled(i32),
    /// Killed, with its whole group, at the deadline.
    TimedOut {
        after: Duration,
    },
}

/// A shell command's output (stdout and stderr interleaved as written) and end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellOutput {
    pub output: Vec<u8>,
    pub exit: ShellExit,
}

impl ShellOutput {
    /// The output as text, invalid UTF-8 replaced.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.output).into_owned()
    }
}

/// Runs `sh -c command` in `cwd` through the door, inside `enclosure`, capturing stdout and stderr
/// into one buffer in the order they were written. At the deadline the whole
/// process group is killed. When the shell exits, whatever it left running in
/// the background is killed too: a host step's processes do not outlive it.
///
/// Spawns a child: see [`ChildProcess::spawn`] about which thread to call from.
pub async fn run_shell(
    command: &str,
    cwd: &Path,
    enclosure: &Enclosure,
    deadline: Deadline,
) -> io::Result<ShellOutput> {
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(command).current_dir(cwd);
    run(cmd, enclosure, deadline).await
}

/// Runs `cmd` (a program and its argv, never a shell string built from
/// paths) through the door, inside `enclosure`, as [`run_shell`] runs its
/// shell: stdout and stderr in one buffer, the whole group killed at the
/// deadline and when the program exits.
pub async fn run(
    mut cmd: Command,
    enclosure: &Enclosure,
    deadline: Deadline,
) -> io::Result<ShellOutput> {
    let (read_end, write_end) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    cmd.stdout(write_end.try_clone()?).stderr(write_end);
    // `cmd` (and with it our copy of the write end) is dropped inside spawn,
    // so the pipe reports end-of-file once the children are gone.
    let mut child = ChildProcess::spawn(cmd, None, enclosure)?;
    let mut reader = tokio::net::unix::pipe::Receiver::from_owned_fd(read_end)?;
    let mut output = Vec::new();
    let mut chunk = [0u8; 8192];
    let mut open = true;
    let exit = loop {
        tokio::select! {
            read = reader.read(&mut chunk), if open => match read? {
                0 => open = false,
                n => output.extend_from_slice(&chunk[..n]),
            },
            waited = child.wait_with_deadline(deadline) => break match waited {
                Ok(status) => shell_exit(status),
                Err(WaitError::Timeout { waited, .. }) => ShellExit::TimedOut { after: waited },
                Err(WaitError::Io { source, .. }) => return Err(source),
            },
        }
    };
    child.kill_group()?;
    if open {
        drain(&mut reader, &mut output).await?;
    }
    Ok(ShellOutput { output, exit })
}

/// Reads what is left in the pipe, for at most [`DRAIN_GRACE`] (a process that
/// left the group could hold the pipe open forever).
async fn drain(
    reader: &mut tokio::net::unix::pipe::Receiver,
    output: &mut Vec<u8>,
) -> io::Result<()> {
    match tokio::time::timeout(DRAIN_GRACE, reader.read_to_end(output)).await {
        Ok(read) => read.map(drop),
        Err(_) => Ok(()),
    }
}

fn shell_exit(status: ExitStatus) -> ShellExit {
    match (status.code(), status.signal()) {
        (Some(code), _) => ShellExit::Exited(code),
        (None, Some(signal)) => ShellExit::Signaled(signal),
        // An exit status has either a code or a signal; -1 marks "neither".
        (None, None) => ShellExit::Exited(-1),
    }
}

/// Runs `cmd` to its end without tokio, for work that runs before any VM (the
/// guest build's short tools): through the door like [`run`] (own process
/// group, parent-death signal, stdin from /dev/null, stdout and stderr in one
/// buffer), its whole group killed at the deadline and when it exits.
pub fn run_blocking(
    cmd: &mut std::process::Command,
    deadline: Deadline,
) -> io::Result<ShellOutput> {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    let (read_end, write_end) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    cmd.stdin(Stdio::null())
        .stdout(write_end.try_clone()?)
        .stderr(write_end)
        .process_group(0);
    die_with_parent(cmd);
    let spawned = cmd.spawn();
    // `cmd` holds our copies of the pipe's write end: close them, so the
    // reader sees end-of-file once the group has closed its own.
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = spawned?;
    let (sender, read) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut output = Vec::new();
        let result = File::from(read_end)
            .read_to_end(&mut output)
            .map(|_| output);
        // The receiver may have given up on a pipe held open (DRAIN_GRACE).
        let _ = sender.send(result);
    });
    let group = Pid::from_raw(i32::try_from(child.id()).map_err(io::Error::other)?);
    let exit = loop {
        if let Some(status) = child.try_wait()? {
            break shell_exit(status);
        }
        if deadline.is_expired() {
            let _ = killpg(group, Signal::SIGKILL);
            child.wait()?;
            break ShellExit::TimedOut {
                after: deadline.elapsed(),
            };
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let _ = killpg(group, Signal::SIGKILL);
    // A process that left the group could hold the pipe open forever: after
    // DRAIN_GRACE the output is what it is (as in `drain`), here none.
    let output = read.recv_timeout(DRAIN_GRACE).unwrap_or(Ok(Vec::new()))?;
    Ok(ShellOutput { output, exit })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn run_passes_each_argument_as_it_is_never_through_a_shell() {
        let mut cmd = Command::new("printf");
        cmd.args(["[%s]", "a b; echo injected", "-x"]);
        let deadline = Deadline::after(Duration::from_secs(10));
        let out = run(cmd, &Enclosure::host(), deadline).await.expect("ran");
        assert_eq!(out.text(), "[a b; echo injected][-x]");
        assert_eq!(out.exit, ShellExit::Exited(0));
    }

    #[test]
    fn run_blocking_collects_both_streams_and_the_exit() {
        let mut cmd = std::process::Command::new("sh");
        cmd.args(["-c", "echo out; echo err >&2; exit 4"]);
        let out = run_blocking(&mut cmd, Deadline::after(Duration::from_secs(10))).expect("ran");
        assert_eq!(out.text(), "out\nerr\n");
        assert_eq!(out.exit, ShellExit::Exited(4));
    }

    #[test]
    fn run_blocking_kills_the_whole_group_at_the_deadline() {
        let mut cmd = std::process::Command::new("sh");
        // The background sleep holds the pipe open: only killing the group
        // lets the call return.
        cmd.args(["-c", "sleep 30 & sleep 30"]);
        let started = std::time::Instant::now();
        let out = run_blocking(&mut cmd, Deadline::after(Duration::from_millis(300))).expect("ran");
        assert!(matches!(out.exit, ShellExit::TimedOut { .. }), "{out:?}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
    }
}

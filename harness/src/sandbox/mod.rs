//! Jails for untrusted submission scripts (`labcheck grade`).
//!
//! A [`Jail`] runs one script with bubblewrap (`bwrap`): in its own user (or
//! the lab's), mount, PID, IPC and UTS namespaces, and either a fresh empty
//! network namespace ([`JailNetwork::Isolated`]) or the lab's
//! ([`JailNetwork::Lab`]). It sees `/usr`, a few pieces of `/etc`, a fresh
//! `/proc` and `/dev`, a small private `/tmp`, the paths it is given
//! read-only, and its work dir read-write at the work dir's own path; the
//! root above them is read-only and holds nothing else: not `/home`, `/root`,
//! the grader's files or another submission's work dir.
//!
//! Limits ([`Limits`]): wall time (the deadline: the jail is killed there),
//! output size (past it the jail is killed), and per-process resource limits
//! set before bwrap starts: address space, file size, no core dumps, and the
//! number of processes of the jail's user.
//!
//! The process limit (`RLIMIT_NPROC`) counts the tasks of a *user*, and the
//! kernel does not apply it to the host's root. So when labcheck runs as
//! root, every jail runs as a dedicated unprivileged user
//! ([`Identity::for_slot`]: one uid per concurrent job slot, so jails never
//! share a count), and a fork bomb stops at the limit. The lab's namespace
//! of a jail with [`JailNetwork::Lab`] is then a user namespace owned by that
//! user ([`Identity::lab_namespace`]), where the jail is root with
//! `CAP_NET_ADMIN` only, and the lab's `sudo` works as in the handout.
//!
//! Run unprivileged, labcheck can only jail as its own user
//! ([`Identity::is_dedicated`] is false). Every namespace and path
//! guarantee holds; the process limit becomes "at most `processes` more
//! tasks than the user had when the jail started", shared with labcheck's
//! own processes (QEMU) and with concurrent jails.
//!
//! What the host must give a dedicated user: search permission on every dir
//! above a bound path (bwrap resolves them as that user: make work dirs
//! under a dir of mode 0711), and for [`JailNetwork::Lab`] a tun device
//! open to all (`/dev/net/tun` mode 0666, as udev sets it). Both are checked
//! before bwrap starts, with the fix in the error.
//!
//! Not covered: total memory (`RLIMIT_AS` bounds each process, so the total
//! is at most `processes × memory`), total disk use in the work dir (each
//! file is bounded, their number is not), CPU share, and system calls (no
//! seccomp filter). A lab jail may make nested user namespaces (bwrap can
//! only forbid them in a user namespace it makes itself); they give no
//! power outside the jail's own namespaces.

mod bwrap;
mod identity;

use identity::{permits, tasks_of_user};
pub use identity::{Identity, DEDICATED_ID_BASE};

use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use nix::fcntl::{FcntlArg, FdFlag, OFlag};
use nix::sys::resource::Resource;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::process::Command;

use crate::net::{LabNamespace, NamespaceOwner};
use crate::process::{ChildProcess, Enclosure, ShellExit, WaitError};
use crate::time::Deadline;

/// Size of the jail's private `/tmp` (a tmpfs: memory, so bounded).
const SCRATCH_BYTES: u64 = 64 << 20;

/// How long a killed jail gets to be torn down and reaped before we stop
/// waiting for bwrap (killing a PID namespace of a few dozen processes takes
/// milliseconds).
const KILL_GRACE: Duration = Duration::from_secs(5);

/// How long the output pipe is read after bwrap exited.
const DRAIN_GRACE: Duration = Duration::from_millis(500);

const TUN_DEVICE: &str = "/dev/net/tun";

#[derive(Debug, thiserror::Error)]
pub enum JailError {
    #[error(
        "bubblewrap (`bwrap`) was not found on PATH: install it (`apt-get install bubblewrap`, \
         or `cargo xtask setup`)"
    )]
    BwrapMissing,
    #[error("{path} must be an absolute path to be bound into a jail")]
    NotAbsolute { path: PathBuf },
    #[error("reading {path}: {source}")]
    Stat { path: PathBuf, source: io::Error },
    #[error(
        "the jail's user {uid} cannot reach {path}: {blocked} is not searchable by it. Give it \
         the search bit for others (`chmod o+x {blocked}`, or make work dirs under a dir of mode \
         0711)"
    )]
    Unreachable {
        uid: u32,
        path: PathBuf,
        blocked: PathBuf,
    },
    #[error("giving the work dir {path} to the jail's user {uid}: {source}")]
    GiveWorkDir {
        path: PathBuf,
        uid: u32,
        source: io::Error,
    },
    #[error(
        "this lab's namespace has no user namespace (labcheck made a plain network namespace as \
         root), so a jail cannot be root in it: make the lab with `Identity::lab_namespace`"
    )]
    LabWithoutUserNamespace,
    #[error(
        "the lab's user namespace belongs to uid {owner}, but the jail runs as uid {uid}: make \
         the lab with the jail's `Identity::lab_namespace`"
    )]
    LabNotOwned { owner: u32, uid: u32 },
    #[error(
        "{TUN_DEVICE} is not readable and writable by the jail's user {uid}, so its `ip tuntap \
         add` cannot work. Give it its usual mode (`chmod 0666 {TUN_DEVICE}`, as udev does)"
    )]
    TunNotUsable { uid: u32 },
    #[error("counting the tasks of uid {uid} in /proc: {source}")]
    CountTasks { uid: u32, source: io::Error },
    #[error("starting bwrap: {source}")]
    Spawn { source: io::Error },
    #[error("reading the jail's output: {source}")]
    Read { source: io::Error },
    #[error("bwrap could not set up the jail ({exit:?}); it printed: {output:?}")]
    Setup { exit: ShellExit, output: String },
}

/// A script run in a jail.
#[derive(Debug)]
pub struct Jail {
    /// Bound read-write at its own path; the script's cwd and `HOME`. Given
    /// to the jail's user when that is a dedicated one. Every dir above it
    /// must be searchable by that user.
    pub work_dir: PathBuf,
    /// Bound read-only at their own paths (the lab's inputs).
    pub read_only: Vec<PathBuf>,
    pub network: JailNetwork,
    pub limits: Limits,
    pub identity: Identity,
}

/// The network a jail sees.
#[derive(Debug)]
pub enum JailNetwork {
    /// A fresh network namespace: only `lo`, no route anywhere.
    Isolated,
    /// The lab's network namespace, as root there with `CAP_NET_ADMIN` only,
    /// the lab's `sudo` first on `PATH` and the tun device available.
    Lab(LabAccess),
}

impl JailNetwork {
    /// The network of `lab`, made with the jail's [`Identity::lab_namespace`].
    /// Holds the lab's namespaces open: drop the jail with the lab.
    pub fn lab(lab: &LabNamespace) -> Result<Self, JailError> {
        let (owner, enclosure) = lab
            .owner_enclosure()
            .ok_or(JailError::LabWithoutUserNamespace)?;
        Ok(Self::Lab(LabAccess {
            owner,
            enclosure: enclosure.clone(),
            tool_dir: lab.tool_dir().to_path_buf(),
        }))
    }
}

/// How a jail enters a lab's namespaces (see [`JailNetwork::lab`]).
#[derive(Debug, Clone)]
pub struct LabAccess {
    owner: NamespaceOwner,
    enclosure: Enclosure,
    tool_dir: PathBuf,
}

/// Resource limits of a jail. The wall time is the deadline given to
/// [`Jail::run_script`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Address space of each process (`RLIMIT_AS`), in bytes.
    pub memory: u64,
    /// Tasks of the jail's user (`RLIMIT_NPROC`), bwrap's two included.
    pub processes: u64,
    /// Output kept, in bytes; past it the jail is killed.
    pub output: usize,
    /// Largest file a process may write (`RLIMIT_FSIZE`), in bytes.
    pub file_size: u64,
}

impl Default for Limits {
    /// 1 GiB of address space per process (qemu-img needs well under 100
    /// MiB), 256 tasks, 64 KiB of output, 512 MiB per file (a full clone of
    /// the lab's disk is 15 MiB). Tasks count threads: QEMU's tools grow a
    /// block I/O pool of up to 64 threads as I/O slows down, and a
    /// `qemu-img convert` that cannot start one aborts half-way (seen on a
    /// loaded CI run at 64 tasks: a student's full clone came out corrupt);
    /// 256 leaves room for that and still stops a fork bomb.
    fn default() -> Self {
        Self {
            memory: 1 << 30,
            processes: 256,
            output: 64 << 10,
            file_size: 512 << 20,
        }
    }
}

/// Which limit stopped a jail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    WallTime,
    Output,
}

/// How a jailed script ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JailOutput {
    /// The script's exit status (bwrap passes it on); `TimedOut` when the
    /// deadline killed it.
    pub exit: ShellExit,
    /// stdout and stderr interleaved, at most [`Limits::output`] bytes,
    /// invalid UTF-8 replaced.
    pub output: String,
    /// The limit that stopped the script, if one did.
    pub cut_off: Option<Limit>,
}

/// The jail's `/etc/passwd`: names for the ids a script runs as (root in
/// a lab jail, the slot's user in an isolated one), so that the handout's
/// `$(whoami)` works, and nothing of the host's accounts.
fn passwd_file(uid: u32) -> Result<tempfile::NamedTempFile, JailError> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let spawn_error = |source| JailError::Spawn { source };
    let mut file = tempfile::Builder::new()
        .prefix("labcheck-passwd-")
        .tempfile()
        .map_err(spawn_error)?;
    write!(
        file,
        "root:x:0:0:root:/root:/bin/sh\nstudent:x:{uid}:{uid}:student:/:/bin/sh\n"
    )
    .map_err(spawn_error)?;
    // bwrap opens the bind source as the jail's user.
    fs::set_permissions(file.path(), fs::Permissions::from_mode(0o644)).map_err(spawn_error)?;
    Ok(file)
}

impl Jail {
    /// Runs `sh -c script` in the jail, killing it at `deadline` or when its
    /// output passes the limit. When this returns, nothing of the jail runs
    /// any more. `Err` means the jail could not be set up or watched (the
    /// submission is not gradable), never that the script failed.
    ///
    /// Spawns a child: see [`ChildProcess::spawn`] about which thread to call from.
    pub async fn run_script(
        &self,
        script: &str,
        deadline: Deadline,
    ) -> Result<JailOutput, JailError> {
        let bwrap = find_on_path("bwrap").ok_or(JailError::BwrapMissing)?;
        self.check_paths()?;
        let enclosure = self.check_network()?;
        self.give_work_dir()?;
        let rlimits = self.rlimits()?;
        let pipe_error = |source: nix::errno::Errno| JailError::Spawn {
            source: source.into(),
        };
        let (output_read, output_write) =
            nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(pipe_error)?;
        let (info_read, info_write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(pipe_error)?;
        let nonce = format!("labcheck-jail-{:016x}", rand::random::<u64>());
        let top_level = host_top_level();
        let passwd = passwd_file(self.identity.uid())?;
        let plan = bwrap::Plan {
            passwd: passwd.path(),
            work_dir: &self.work_dir,
            read_only: &self.read_only,
            network: match &self.network {
                JailNetwork::Isolated => bwrap::PlanNetwork::Isolated,
                JailNetwork::Lab(lab) => bwrap::PlanNetwork::Lab {
                    tool_dir: lab.tool_dir.clone(),
                },
            },
            top_level: &top_level,
            tmp_size: SCRATCH_BYTES,
            info_fd: info_write.as_raw_fd(),
            script,
            nonce: &nonce,
        };
        let mut cmd = Command::new(bwrap);
        cmd.args(bwrap::arguments(&plan)).env_clear();
        let spawn_error = |source| JailError::Spawn { source };
        cmd.stdout(output_write.try_clone().map_err(spawn_error)?)
            .stderr(output_write);
        if self.identity.is_dedicated() {
            cmd.uid(self.identity.uid).gid(self.identity.gid);
        }
        prepare_child(&mut cmd, rlimits, &info_write);
        let child = ChildProcess::spawn(cmd, None, &enclosure).map_err(spawn_error)?;
        // Only bwrap may hold the write ends now, so the pipes end with it.
        drop(info_write);
        let watch = Watch {
            child,
            output: pipe::Receiver::from_owned_fd(output_read).map_err(spawn_error)?,
            info: pipe::Receiver::from_owned_fd(info_read).map_err(spawn_error)?,
            limit: self.limits.output,
        };
        watch.run(&nonce, deadline).await
    }

    /// Every bound path is absolute, and (for a dedicated user, who has no
    /// other way in) every dir above it is searchable by the jail's user,
    /// as bwrap resolves them as that user.
    fn check_paths(&self) -> Result<(), JailError> {
        let tool_dir = match &self.network {
            JailNetwork::Lab(lab) => Some(&lab.tool_dir),
            JailNetwork::Isolated => None,
        };
        let paths = std::iter::once(&self.work_dir)
            .chain(&self.read_only)
            .chain(tool_dir);
        for path in paths {
            if !path.is_absolute() {
                return Err(JailError::NotAbsolute { path: path.clone() });
            }
            if !self.identity.is_dedicated() {
                continue;
            }
            for dir in path.ancestors().skip(1) {
                let meta = fs::metadata(dir).map_err(|source| JailError::Stat {
                    path: dir.to_path_buf(),
                    source,
                })?;
                if !permits(&meta, self.identity, 0o1) {
                    return Err(JailError::Unreachable {
                        uid: self.identity.uid,
                        path: path.clone(),
                        blocked: dir.to_path_buf(),
                    });
                }
            }
        }
        Ok(())
    }

    /// The enclosure bwrap starts in: the host, or the lab's user and
    /// network namespaces, which must belong to the jail's user, whose taps
    /// need the tun device.
    fn check_network(&self) -> Result<Enclosure, JailError> {
        let JailNetwork::Lab(lab) = &self.network else {
            return Ok(Enclosure::host());
        };
        if lab.owner.uid != self.identity.uid {
            return Err(JailError::LabNotOwned {
                owner: lab.owner.uid,
                uid: self.identity.uid,
            });
        }
        let tun = fs::metadata(TUN_DEVICE).map_err(|source| JailError::Stat {
            path: TUN_DEVICE.into(),
            source,
        })?;
        if !permits(&tun, self.identity, 0o6) {
            return Err(JailError::TunNotUsable {
                uid: self.identity.uid,
            });
        }
        Ok(lab.enclosure.clone())
    }

    /// A dedicated user gets the work dir (not what is in it: the lab's
    /// inputs stay the grader's, readable if their mode says so).
    fn give_work_dir(&self) -> Result<(), JailError> {
        if !self.identity.is_dedicated() {
            return Ok(());
        }
        std::os::unix::fs::chown(
            &self.work_dir,
            Some(self.identity.uid),
            Some(self.identity.gid),
        )
        .map_err(|source| JailError::GiveWorkDir {
            path: self.work_dir.clone(),
            uid: self.identity.uid,
            source,
        })
    }

    /// The resource limits bwrap (and so the script) starts with.
    fn rlimits(&self) -> Result<Vec<(Resource, u64)>, JailError> {
        let tasks = if self.identity.is_dedicated() {
            self.limits.processes
        } else {
            // The user's other tasks count too: allow that many more.
            let uid = self.identity.uid;
            let running =
                tasks_of_user(uid).map_err(|source| JailError::CountTasks { uid, source })?;
            running + self.limits.processes
        };
        Ok(vec![
            (Resource::RLIMIT_AS, self.limits.memory),
            (Resource::RLIMIT_FSIZE, self.limits.file_size),
            (Resource::RLIMIT_CORE, 0),
            (Resource::RLIMIT_NPROC, tasks),
        ])
    }
}

/// Sets the limits and lets bwrap inherit the info pipe, in the child before
/// exec. Registered before [`ChildProcess::spawn`] adds the enclosure's
/// `setns`; std has switched to the jail's user before either runs.
fn prepare_child(cmd: &mut Command, rlimits: Vec<(Resource, u64)>, info: &OwnedFd) {
    let info_fd = info.as_raw_fd();
    // SAFETY: runs in the forked child before exec and calls only
    // setrlimit(2) and fcntl(2), async-signal-safe; it allocates nothing (the
    // Vec was built before the fork and is only read).
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(move || {
            for (resource, value) in &rlimits {
                nix::sys::resource::setrlimit(*resource, *value, *value)?;
            }
            nix::fcntl::fcntl(info_fd, FcntlArg::F_SETFD(FdFlag::empty()))?;
            Ok(())
        });
    }
}

/// The host's top-level `/bin`, `/sbin`, `/lib*`: symlinks into `/usr` on a
/// merged-/usr system (recreated as such), dirs otherwise (bound read-only).
fn host_top_level() -> Vec<bwrap::TopLevel> {
    ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"]
        .into_iter()
        .map(PathBuf::from)
        .filter_map(|name| match fs::read_link(&name) {
            Ok(target) => Some(bwrap::TopLevel::Symlink { name, target }),
            Err(_) if name.is_dir() => Some(bwrap::TopLevel::Dir(name)),
            Err(_) => None,
        })
        .collect()
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| OsString::from("/usr/bin:/bin"));
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// bwrap running: its output, its info pipe, its exit.
#[derive(Debug)]
struct Watch {
    child: ChildProcess,
    output: pipe::Receiver,
    info: pipe::Receiver,
    limit: usize,
}

/// What bwrap writes on its info fd.
#[derive(Debug, serde::Deserialize)]
struct Info {
    #[serde(rename = "child-pid")]
    child_pid: i32,
}

impl Watch {
    async fn run(mut self, nonce: &str, deadline: Deadline) -> Result<JailOutput, JailError> {
        let mut output = Output::new(nonce, self.limit);
        let mut info = Vec::new();
        let mut jail_pid: Option<i32> = None;
        let mut cut_off = None;
        let mut timed_out = false;
        let mut until = deadline;
        let (mut output_open, mut info_open) = (true, true);
        let (mut output_chunk, mut info_chunk) = ([0u8; 8192], [0u8; 1024]);
        let status = loop {
            if cut_off.is_none() && (timed_out || output.is_full()) {
                cut_off = Some(if timed_out {
                    Limit::WallTime
                } else {
                    Limit::Output
                });
                until = self.kill(jail_pid);
            }
            tokio::select! {
                read = self.output.read(&mut output_chunk), if output_open && !output.is_full() => {
                    match read.map_err(|source| JailError::Read { source })? {
                        0 => output_open = false,
                        n => output.push(&output_chunk[..n]),
                    }
                }
                read = self.info.read(&mut info_chunk), if info_open => {
                    match read.map_err(|source| JailError::Read { source })? {
                        0 => info_open = false,
                        n => {
                            info.extend_from_slice(&info_chunk[..n]);
                            if let Ok(parsed) = serde_json::from_slice::<Info>(&info) {
                                jail_pid = Some(parsed.child_pid);
                                info_open = false;
                            }
                        }
                    }
                }
                waited = self.child.wait_with_deadline(until) => match waited {
                    Ok(status) => break Ok(status),
                    Err(WaitError::Timeout { .. }) if cut_off.is_none() => timed_out = true,
                    Err(WaitError::Timeout { waited, .. }) => break Err(waited),
                    Err(WaitError::Io { source, .. }) => return Err(JailError::Read { source }),
                },
            }
        };
        // bwrap has exited (so its PID namespace is empty), or it would not
        // die: then its whole group goes now, and the namespace with its init.
        let _ = self.child.kill_group();
        if output_open && !output.is_full() {
            let mut rest = Vec::new();
            // A read error or the grace running out leaves what was read.
            let _ = tokio::time::timeout(DRAIN_GRACE, self.output.read_to_end(&mut rest)).await;
            output.push(&rest);
        }
        let exit = match (cut_off, status) {
            (Some(Limit::WallTime), _) => ShellExit::TimedOut {
                after: deadline.elapsed(),
            },
            (_, Ok(status)) => exit_of(status),
            (_, Err(after)) => ShellExit::TimedOut { after },
        };
        output.finish(exit, cut_off)
    }

    /// Kills the jail: its PID namespace's init (bwrap's child) when known,
    /// which takes every process of the namespace with it and lets bwrap
    /// reap it and exit cleanly; bwrap's group otherwise. Returns how long
    /// to wait for bwrap to exit.
    ///
    /// The init's pid cannot be reused while bwrap has not reaped it, and
    /// bwrap exits right after reaping it; pids are handed out in sequence
    /// up to `pid_max`, so the microseconds between are no practical risk.
    fn kill(&self, jail_pid: Option<i32>) -> Deadline {
        let killed = jail_pid
            .is_some_and(|pid| nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL).is_ok());
        if !killed {
            let _ = self.child.kill_group();
        }
        Deadline::after(KILL_GRACE)
    }
}

/// The jail's output: the nonce line first (proof that the jail started),
/// then the script's, kept up to the limit.
#[derive(Debug)]
struct Output {
    nonce_line: Vec<u8>,
    started: bool,
    bytes: Vec<u8>,
    limit: usize,
}

impl Output {
    fn new(nonce: &str, limit: usize) -> Self {
        Self {
            nonce_line: format!("{nonce}\n").into_bytes(),
            started: false,
            bytes: Vec::new(),
            limit,
        }
    }

    fn push(&mut self, chunk: &[u8]) {
        self.bytes.extend_from_slice(chunk);
        if !self.started && self.bytes.starts_with(&self.nonce_line) {
            self.started = true;
            self.bytes.drain(..self.nonce_line.len());
        }
        if self.bytes.len() > self.limit {
            self.bytes.truncate(self.limit + 1);
        }
    }

    /// More than the limit arrived (one byte more is kept to know it).
    fn is_full(&self) -> bool {
        self.bytes.len() > self.limit
    }

    fn finish(mut self, exit: ShellExit, cut_off: Option<Limit>) -> Result<JailOutput, JailError> {
        self.bytes.truncate(self.limit);
        let output = String::from_utf8_lossy(&self.bytes).into_owned();
        if !self.started {
            return Err(JailError::Setup { exit, output });
        }
        Ok(JailOutput {
            exit,
            output,
            cut_off,
        })
    }
}

fn exit_of(status: ExitStatus) -> ShellExit {
    match (status.code(), status.signal()) {
        (Some(code), _) => ShellExit::Exited(code),
        (None, Some(signal)) => ShellExit::Signaled(signal),
        (None, None) => ShellExit::Exited(-1),
    }
}

#[cfg(test)]
mod tests;

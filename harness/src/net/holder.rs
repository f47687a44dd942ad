//! The holder: the process that makes a lab's namespaces and keeps them alive.
//!
//! It unshares in its own `pre_exec` (so no labcheck thread ever changes
//! namespace), then becomes `sleep infinity` named after the lab. When it
//! dies, the namespaces die with it, and the lab's taps and bridges with them.

use std::ffi::CStr;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::Stdio;

use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;
use tokio::process::Command;

use super::{NamespaceKind, NamespaceOwner};
use crate::process::{ChildProcess, Enclosure};

/// What the holder writes into its own `/proc/self/*` files right after
/// making a user namespace: the lab's root is the user who runs labcheck.
/// Formatted before fork, because the child may not allocate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct IdMaps {
    uid_map: String,
    gid_map: String,
}

impl IdMaps {
    /// Maps root inside to `uid`/`gid` outside: the one mapping an
    /// unprivileged process may write for itself.
    pub(super) fn root_as(uid: u32, gid: u32) -> Self {
        Self {
            uid_map: map_line(0, uid),
            gid_map: map_line(0, gid),
        }
    }

    fn for_this_process() -> Self {
        Self::root_as(
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        )
    }
}

/// One line of a `uid_map`/`gid_map`: `inside outside count`, a single id.
pub(super) fn map_line(inside: u32, outside: u32) -> String {
    format!("{inside} {outside} 1\n")
}

/// Starts the holder for `kind`, with `label` as its `argv[0]`. With an
/// `owner`, the holder first becomes that user (labcheck must be root unless
/// it is that user already), so the user namespace it makes belongs to
/// `owner`, whose uid is root inside.
///
/// Spawns a child: see [`ChildProcess::spawn`] about which thread to call from.
pub(super) fn spawn(
    kind: NamespaceKind,
    label: &str,
    owner: Option<NamespaceOwner>,
) -> io::Result<ChildProcess> {
    let mut cmd = Command::new("sleep");
    cmd.arg0(label)
        .arg("infinity")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(owner) = owner {
        // std switches (and, as root, drops supplementary groups) before the
        // pre_exec closures run, so the unshare below is done as `owner`.
        cmd.uid(owner.uid).gid(owner.gid);
    }
    let maps = (kind == NamespaceKind::UserAndNet).then(|| match owner {
        Some(owner) => IdMaps::root_as(owner.uid, owner.gid),
        None => IdMaps::for_this_process(),
    });
    let flags = unshare_flags(kind);
    // Registered before `ChildProcess::spawn` adds its own pre_exec, and
    // closures run in the order registered, so the parent-death signal is set
    // after the unshare. The kernel clears that signal on a credential change
    // that is not a subset of the old credentials; measured on Linux 6.18, an
    // unshare by the namespace's own owner does not clear it, but setting it
    // last does not depend on that.
    // SAFETY: the closure runs in the forked child before exec and calls only
    // prctl(2), unshare(2), open(2), write(2) and close(2), all
    // async-signal-safe. It
    // allocates nothing: the paths are static and the map lines were
    // formatted before the fork.
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(move || {
            if owner.is_some() {
                // Switching from root to `owner` made the process
                // non-dumpable, which gives its /proc/self files to root:
                // the id maps below could not be written.
                nix::sys::prctl::set_dumpable(true)?;
            }
            nix::sched::unshare(flags)?;
            if let Some(maps) = &maps {
                write_own(c"/proc/self/setgroups", b"deny")?;
                write_own(c"/proc/self/uid_map", maps.uid_map.as_bytes())?;
                write_own(c"/proc/self/gid_map", maps.gid_map.as_bytes())?;
            }
            Ok(())
        });
    }
    ChildProcess::spawn(cmd, None, &Enclosure::host())
}

fn unshare_flags(kind: NamespaceKind) -> CloneFlags {
    match kind {
        NamespaceKind::Net => CloneFlags::CLONE_NEWNET,
        // One call: the kernel makes the user namespace first, and the new
        // network namespace is owned by it.
        NamespaceKind::UserAndNet => CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNET,
    }
}

/// Writes `content` to one of the process's own `/proc/self` files in a single
/// write(2), as the kernel requires for id maps. Async-signal-safe.
fn write_own(path: &CStr, content: &[u8]) -> io::Result<()> {
    let raw = nix::fcntl::open(path, OFlag::O_WRONLY | OFlag::O_CLOEXEC, Mode::empty())?;
    // SAFETY: `raw` was just opened and is owned by nothing else.
    #[allow(unsafe_code)]
    let file = unsafe { OwnedFd::from_raw_fd(raw) };
    let written = nix::unistd::write(&file, content)?;
    if written != content.len() {
        return Err(nix::errno::Errno::EIO.into());
    }
    Ok(())
}

/// The holder's namespaces as open files, in the order a child must join
/// them: the user namespace (if any) before the network namespace it owns.
pub(super) fn namespace_paths(kind: NamespaceKind, pid: u32) -> Vec<(PathBuf, CloneFlags)> {
    let user = (kind == NamespaceKind::UserAndNet).then(|| {
        (
            format!("/proc/{pid}/ns/user").into(),
            CloneFlags::CLONE_NEWUSER,
        )
    });
    let net = (
        format!("/proc/{pid}/ns/net").into(),
        CloneFlags::CLONE_NEWNET,
    );
    user.into_iter().chain([net]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(0, 0, "0 0 1\n")]
    #[case(0, 1000, "0 1000 1\n")]
    #[case(0, u32::MAX - 1, "0 4294967294 1\n")]
    fn map_line_is_inside_outside_one(
        #[case] inside: u32,
        #[case] outside: u32,
        #[case] line: &str,
    ) {
        assert_eq!(map_line(inside, outside), line);
    }

    #[test]
    fn maps_make_root_the_caller() {
        let maps = IdMaps::root_as(1000, 100);
        assert_eq!(maps.uid_map, "0 1000 1\n");
        assert_eq!(maps.gid_map, "0 100 1\n");
    }

    #[rstest]
    #[case(NamespaceKind::Net, &[("/proc/7/ns/net", CloneFlags::CLONE_NEWNET)])]
    #[case(NamespaceKind::UserAndNet, &[
        ("/proc/7/ns/user", CloneFlags::CLONE_NEWUSER),
        ("/proc/7/ns/net", CloneFlags::CLONE_NEWNET),
    ])]
    fn user_namespace_is_joined_first(
        #[case] kind: NamespaceKind,
        #[case] expected: &[(&str, CloneFlags)],
    ) {
        let got: Vec<(String, CloneFlags)> = namespace_paths(kind, 7)
            .into_iter()
            .map(|(path, flag)| (path.display().to_string(), flag))
            .collect();
        let expected: Vec<(String, CloneFlags)> = expected
            .iter()
            .map(|(path, flag)| (path.to_string(), *flag))
            .collect();
        assert_eq!(got, expected);
    }

    #[rstest]
    #[case(NamespaceKind::Net, CloneFlags::CLONE_NEWNET)]
    #[case(NamespaceKind::UserAndNet, CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNET)]
    fn unshares_what_the_kind_needs(#[case] kind: NamespaceKind, #[case] flags: CloneFlags) {
        assert_eq!(unshare_flags(kind), flags);
    }
}

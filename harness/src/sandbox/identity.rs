//! Who a jail runs as: a dedicated user per job slot when labcheck is root
//! (so `RLIMIT_NPROC`, which counts a user's tasks, bounds one jail only),
//! else labcheck's own user; and how that user's tasks and access are
//! counted and checked before bwrap starts.

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::net::{LabNamespace, NamespaceOwner, NetError};
use crate::time::Deadline;

/// The first uid (and gid) of the dedicated jail users: slot `n` runs as
/// `BASE + n`. Far above the ranges that distributions (below 60000),
/// systemd's dynamic users (61184–65519) and `/etc/subuid` allocations
/// (100000 upwards, 65536 each) use, and below 2^31 (some tools read uids as
/// signed).
pub const DEDICATED_ID_BASE: u32 = 2_100_000_000;

/// The user a jail runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub(super) uid: u32,
    pub(super) gid: u32,
    pub(super) dedicated: bool,
}

impl Identity {
    /// As root: the dedicated user `DEDICATED_ID_BASE + slot` (uid and gid),
    /// one per concurrent job slot. Otherwise: this process's own user.
    pub fn for_slot(slot: u16) -> Self {
        if nix::unistd::geteuid().is_root() {
            let id = DEDICATED_ID_BASE + u32::from(slot);
            Self {
                uid: id,
                gid: id,
                dedicated: true,
            }
        } else {
            let owner = NamespaceOwner::this_process();
            Self {
                uid: owner.uid,
                gid: owner.gid,
                dedicated: false,
            }
        }
    }

    pub fn uid(&self) -> u32 {
        self.uid
    }

    pub fn gid(&self) -> u32 {
        self.gid
    }

    /// Whether the jail has a user of its own (labcheck runs as root), so
    /// that the process limit counts the jail's processes only.
    pub fn is_dedicated(&self) -> bool {
        self.dedicated
    }

    /// A lab namespace (see [`crate::net`]) whose user namespace this
    /// identity owns, for jails with [`super::JailNetwork::Lab`].
    ///
    /// Spawns a child: see `ChildProcess::spawn` about which thread to call from.
    pub async fn lab_namespace(
        &self,
        tool_dir: &Path,
        label: &str,
        deadline: Deadline,
    ) -> Result<LabNamespace, NetError> {
        let owner = NamespaceOwner {
            uid: self.uid,
            gid: self.gid,
        };
        LabNamespace::create_owned_by(owner, tool_dir, label, deadline).await
    }
}

/// Whether `meta`'s mode gives `identity` the access in `bits` (`0o1`
/// search, `0o6` read and write), as owner, group or other.
pub(super) fn permits(meta: &fs::Metadata, identity: Identity, bits: u32) -> bool {
    let mode = meta.permissions().mode();
    let shift = if meta.uid() == identity.uid {
        6
    } else if meta.gid() == identity.gid {
        3
    } else {
        0
    };
    (mode >> shift) & bits == bits
}

/// The tasks (threads included, as `RLIMIT_NPROC` counts them) whose real
/// uid is `uid`.
pub(super) fn tasks_of_user(uid: u32) -> io::Result<u64> {
    let mut tasks = 0;
    for entry in fs::read_dir("/proc")? {
        let entry = entry?;
        if !entry
            .file_name()
            .as_encoded_bytes()
            .iter()
            .all(u8::is_ascii_digit)
        {
            continue;
        }
        // A process may exit between listing and reading: skip it.
        if let Ok(status) = fs::read_to_string(entry.path().join("status")) {
            tasks += threads_if_real_uid(&status, uid);
        }
    }
    Ok(tasks)
}

/// From a `/proc/PID/status`: its `Threads:` if its real uid is `uid`, else 0.
pub(super) fn threads_if_real_uid(status: &str, uid: u32) -> u64 {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
    };
    let real_uid = field("Uid:").and_then(|value| value.parse::<u32>().ok());
    if real_uid != Some(uid) {
        return 0;
    }
    field("Threads:")
        .and_then(|value| value.parse().ok())
        .unwrap_or(1)
}

//! One private network namespace per network lab.
//!
//! A network lab's host commands (`sudo ip tuntap add tap0 …`, `sudo ip link
//! add name br0 type bridge`) and all its QEMU processes run inside a
//! namespace made for that lab, where `sudo` means that namespace's root. The
//! namespace lives exactly as long as its holder process; when the
//! [`LabNamespace`] is dropped, or labcheck dies, the holder is killed and the
//! kernel removes the namespace with every tap and bridge in it.
//!
//! As root, labcheck makes a plain network namespace; otherwise a user
//! namespace (in which the caller is root) owning a network namespace. A lab
//! whose host commands run in a jail ([`crate::sandbox`]) gets a user
//! namespace owned by the jail's user ([`LabNamespace::create_owned_by`]).

mod holder;
mod links;

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use links::Link;

use nix::sched::CloneFlags;
use nix::unistd::AccessFlags;

use crate::process::{run_shell, ChildProcess, Enclosure, ShellExit};
use crate::time::Deadline;

/// Which namespaces a lab gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamespaceKind {
    /// A network namespace; making one needs root (`CAP_SYS_ADMIN`).
    Net,
    /// A user namespace, in which the caller is root, owning a network
    /// namespace: no privilege needed where the kernel allows it.
    UserAndNet,
}

impl NamespaceKind {
    /// [`NamespaceKind::Net`] when running as root (effective uid 0), where
    /// a user namespace would add nothing; [`NamespaceKind::UserAndNet`]
    /// otherwise.
    pub fn for_this_process() -> Self {
        if nix::unistd::geteuid().is_root() {
            Self::Net
        } else {
            Self::UserAndNet
        }
    }

    pub fn describe(&self) -> &'static str {
        match self {
            Self::Net => "a private network namespace (labcheck runs as root)",
            Self::UserAndNet => "a private user and network namespace (labcheck runs unprivileged)",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error(
        "the kernel refused to make a user namespace for the lab ({source}). Unprivileged user \
         namespaces are off or limited on this host: allow them (Debian: `sysctl -w \
         kernel.unprivileged_userns_clone=1`; any distribution: `sysctl -w \
         user.max_user_namespaces=10000`; Ubuntu 23.10 and later: `sysctl -w \
         kernel.apparmor_restrict_unprivileged_userns=0`), or run labcheck as root, which then \
         uses a plain network namespace"
    )]
    UserNamespacesRefused { source: io::Error },
    #[error(
        "the kernel refused to make a network namespace for the lab ({source}): that needs root \
         (CAP_SYS_ADMIN). Run labcheck as root, or as a normal user on a host that allows \
         unprivileged user namespaces"
    )]
    NetNamespaceRefused { source: io::Error },
    #[error(
        "{TUN_DEVICE} is not readable and writable by this user ({source}), so the lab's `ip \
         tuntap add` and QEMU's `-netdev tap` cannot work in a user namespace. Give it its usual \
         mode (`chmod 0666 {TUN_DEVICE}`, as udev does), or run labcheck as root"
    )]
    TunNotUsable { source: io::Error },
    #[error("starting the lab's namespace holder (`sleep infinity`): {source}")]
    Holder { source: io::Error },
    #[error("opening the lab's namespace {path}: {source}")]
    OpenNamespace { path: PathBuf, source: io::Error },
    #[error("writing the lab's sudo {path}: {source}")]
    Sudo { path: PathBuf, source: io::Error },
    #[error("`ip` was not found (ran `{command}`, exit status 127): install iproute2 (`apt-get install iproute2`)")]
    IpMissing { command: String },
    #[error("running `{command}`: {source}")]
    Shell { command: String, source: io::Error },
    #[error("`{command}` did not finish within {waited:?}; it printed: {output:?}")]
    TimedOut {
        command: String,
        waited: Duration,
        output: String,
    },
    #[error("`{command}` failed ({exit:?}); it printed: {output:?}")]
    Failed {
        command: String,
        exit: ShellExit,
        output: String,
    },
    #[error("`{command}` printed JSON we could not read ({source}): {output:?}")]
    BadJson {
        command: String,
        source: serde_json::Error,
        output: String,
    },
}

/// The device behind every tap: `ip tuntap add` and QEMU open it.
const TUN_DEVICE: &str = "/dev/net/tun";

/// Whether a lab in `kind` of namespace can make and open taps. Root always
/// can; in a user namespace the lab's root is an ordinary user to the host's
/// device nodes, so the tun device must be open to everyone (mode 0666, its
/// usual mode where udev runs; it is 0600 on some hosts without udev).
/// For labs that use taps, before [`LabNamespace::create`].
pub fn check_taps_usable(kind: NamespaceKind) -> Result<(), NetError> {
    if kind == NamespaceKind::Net {
        return Ok(());
    }
    nix::unistd::access(TUN_DEVICE, AccessFlags::R_OK | AccessFlags::W_OK).map_err(|errno| {
        NetError::TunNotUsable {
            source: errno.into(),
        }
    })
}

/// The lab's `sudo`. Written into the tool dir, which is first on `PATH` for
/// everything that runs in the lab's namespace.
const SUDO_SHIM: &str = r#"#!/bin/sh
# labcheck's sudo for a network lab. Everything here runs inside the lab's own
# network namespace (and user namespace, when labcheck is unprivileged) as that
# namespace's root, so there is nothing to elevate: run the command as it is.
# Understood: -E / --preserve-env and -n / --non-interactive (already true:
# the environment is kept and nothing ever prompts) and a leading --. Any other
# option is refused rather than silently misread.
while [ $# -gt 0 ]; do
    case "$1" in
        -E|--preserve-env|-n|--non-interactive) shift ;;
        --) shift; break ;;
        -*) echo "labcheck's sudo: option $1 is not supported" >&2; exit 1 ;;
        *) break ;;
    esac
done
if [ $# -eq 0 ]; then
    echo "labcheck's sudo: no command given" >&2
    exit 1
fi
exec "$@"
"#;

/// The user outside a lab's user namespace whose uid is root inside it: that
/// user's processes that join the namespace hold every capability there
/// (`CAP_NET_ADMIN` for taps and bridges), and none outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NamespaceOwner {
    pub uid: u32,
    pub gid: u32,
}

impl NamespaceOwner {
    /// The effective user and group of this process.
    pub fn this_process() -> Self {
        Self {
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
        }
    }
}

/// A lab's private network namespace, alive as long as this value.
#[derive(Debug)]
pub struct LabNamespace {
    /// `sleep infinity` inside the namespace; killed (with the namespace's
    /// last reference) on drop.
    holder: ChildProcess,
    enclosure: Enclosure,
    /// For a user namespace: who is root inside, and the enclosure (user
    /// namespace, then network namespace) a process of that user joins.
    owner: Option<(NamespaceOwner, Enclosure)>,
    kind: NamespaceKind,
    tool_dir: PathBuf,
}

impl LabNamespace {
    /// Makes the namespace(s), writes `tool_dir/sudo` and brings `lo` up
    /// inside. `label` becomes the holder's `argv[0]` (for example
    /// `labcheck-netns:<work dir>`), so a leak check scanning
    /// `/proc/*/cmdline` for the work dir finds it.
    ///
    /// Spawns a child: see [`ChildProcess::spawn`] about which thread to call from.
    pub async fn create(
        kind: NamespaceKind,
        tool_dir: &Path,
        label: &str,
        deadline: Deadline,
    ) -> Result<Self, NetError> {
        Self::start(kind, None, tool_dir, label, deadline).await
    }

    /// Like [`LabNamespace::create`] with [`NamespaceKind::UserAndNet`], but
    /// the user namespace belongs to `owner`, root inside: a jailed
    /// submission running as `owner` (see [`crate::sandbox`]) joins it
    /// through [`LabNamespace::owner_enclosure`] and may make taps and
    /// bridges there. Needs root unless `owner` is this process's user.
    ///
    /// [`LabNamespace::enclosure`] then serves labcheck's own children (QEMU,
    /// checks): as root it joins only the network namespace, so they stay
    /// the host's root with every capability (they must open the taps and
    /// the submission's disk images, which belong to `owner`); otherwise it
    /// joins both namespaces, as for `UserAndNet`.
    ///
    /// Spawns a child: see [`ChildProcess::spawn`] about which thread to call from.
    pub async fn create_owned_by(
        owner: NamespaceOwner,
        tool_dir: &Path,
        label: &str,
        deadline: Deadline,
    ) -> Result<Self, NetError> {
        Self::start(
            NamespaceKind::UserAndNet,
            Some(owner),
            tool_dir,
            label,
            deadline,
        )
        .await
    }

    async fn start(
        kind: NamespaceKind,
        owner: Option<NamespaceOwner>,
        tool_dir: &Path,
        label: &str,
        deadline: Deadline,
    ) -> Result<Self, NetError> {
        write_sudo(tool_dir)?;
        let holder =
            holder::spawn(kind, label, owner).map_err(|source| spawn_error(kind, source))?;
        let namespaces = holder::namespace_paths(kind, holder.pid())
            .into_iter()
            .map(|(path, flag)| match std::fs::File::open(&path) {
                Ok(file) => Ok((Arc::new(OwnedFd::from(file)), flag)),
                Err(source) => Err(NetError::OpenNamespace { path, source }),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let tool_dir = tool_dir.to_path_buf();
        let both = Enclosure::new(namespaces.clone(), Some(tool_dir.clone()));
        let root_outside = nix::unistd::geteuid().is_root();
        let enclosure = match owner {
            Some(owner) if root_outside && owner.uid != 0 => {
                let net_only = namespaces
                    .into_iter()
                    .filter(|(_, flag)| *flag == CloneFlags::CLONE_NEWNET)
                    .collect();
                Enclosure::new(net_only, Some(tool_dir.clone()))
            }
            _ => both.clone(),
        };
        let owner = match (kind, owner) {
            (NamespaceKind::Net, _) => None,
            (NamespaceKind::UserAndNet, owner) => {
                Some((owner.unwrap_or_else(NamespaceOwner::this_process), both))
            }
        };
        let lab = Self {
            holder,
            enclosure,
            owner,
            kind,
            tool_dir,
        };
        run_ip("ip link set lo up", &lab.enclosure, deadline).await?;
        Ok(lab)
    }

    /// Where a lab's children run: they join the user namespace (if any),
    /// then the network namespace, with the tool dir first on `PATH`.
    /// A clone holds the namespaces open: drop it with the lab, or the
    /// namespace (and its devices) outlive the holder.
    pub fn enclosure(&self) -> &Enclosure {
        &self.enclosure
    }

    pub fn kind(&self) -> NamespaceKind {
        self.kind
    }

    /// For a user namespace, its owner (root inside) and the enclosure a
    /// process *running as that owner* joins to be root there: the user
    /// namespace, then the network namespace. `None` for a
    /// [`NamespaceKind::Net`] lab, which only the host's root may act in.
    pub fn owner_enclosure(&self) -> Option<(NamespaceOwner, &Enclosure)> {
        self.owner
            .as_ref()
            .map(|(owner, enclosure)| (*owner, enclosure))
    }

    /// The dir holding the lab's `sudo`, first on `PATH` inside.
    pub fn tool_dir(&self) -> &Path {
        &self.tool_dir
    }

    /// The holder's pid: `/proc/<pid>/ns/net` is the lab's namespace.
    pub fn holder_pid(&self) -> u32 {
        self.holder.pid()
    }

    /// The devices in the namespace whose kind is one of `kinds` (`tun`,
    /// `bridge`…).
    pub async fn links(&self, kinds: &[&str], deadline: Deadline) -> Result<Vec<Link>, NetError> {
        links_in(&self.enclosure, kinds, deadline).await
    }
}

/// The devices whose kind is one of `kinds`, in the network namespace that
/// children in `enclosure` run in (the host's for [`Enclosure::host`]), from
/// `linkinfo.info_kind` of `ip -j -d link`.
pub async fn links_in(
    enclosure: &Enclosure,
    kinds: &[&str],
    deadline: Deadline,
) -> Result<Vec<Link>, NetError> {
    const COMMAND: &str = "ip -j -d link show";
    let output = run_ip(COMMAND, enclosure, deadline).await?;
    links::parse_links(&output, kinds).map_err(|source| NetError::BadJson {
        command: COMMAND.into(),
        source,
        output,
    })
}

fn write_sudo(tool_dir: &Path) -> Result<(), NetError> {
    let path = tool_dir.join("sudo");
    let written = std::fs::create_dir_all(tool_dir)
        .and_then(|()| std::fs::write(&path, SUDO_SHIM))
        .and_then(|()| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)));
    written.map_err(|source| NetError::Sudo { path, source })
}

/// Names the likely cause when the holder could not be started: most often
/// the kernel refusing the namespace.
fn spawn_error(kind: NamespaceKind, source: io::Error) -> NetError {
    use nix::errno::Errno;
    let refused = [Errno::EPERM, Errno::EACCES, Errno::ENOSPC, Errno::EINVAL]
        .map(|errno| Some(errno as i32))
        .contains(&source.raw_os_error());
    match (kind, refused) {
        (NamespaceKind::UserAndNet, true) => NetError::UserNamespacesRefused { source },
        (NamespaceKind::Net, true) => NetError::NetNamespaceRefused { source },
        (_, false) => NetError::Holder { source },
    }
}

/// Runs an `ip` command in `enclosure` and returns what it printed.
async fn run_ip(
    command: &str,
    enclosure: &Enclosure,
    deadline: Deadline,
) -> Result<String, NetError> {
    let ran = run_shell(command, Path::new("/"), enclosure, deadline)
        .await
        .map_err(|source| NetError::Shell {
            command: command.into(),
            source,
        })?;
    let output = ran.text();
    match ran.exit {
        ShellExit::Exited(0) => Ok(output),
        // The shell's "command not found".
        ShellExit::Exited(127) => Err(NetError::IpMissing {
            command: command.into(),
        }),
        ShellExit::TimedOut { after } => Err(NetError::TimedOut {
            command: command.into(),
            waited: after,
            output,
        }),
        exit => Err(NetError::Failed {
            command: command.into(),
            exit,
            output,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(NamespaceKind::UserAndNet, nix::errno::Errno::EPERM, "user namespace")]
    #[case(
        NamespaceKind::UserAndNet,
        nix::errno::Errno::ENOSPC,
        "max_user_namespaces"
    )]
    #[case(NamespaceKind::Net, nix::errno::Errno::EPERM, "needs root")]
    #[case(NamespaceKind::Net, nix::errno::Errno::ENOENT, "sleep infinity")]
    #[case(NamespaceKind::UserAndNet, nix::errno::Errno::ENOENT, "sleep infinity")]
    fn spawn_errors_name_their_cause(
        #[case] kind: NamespaceKind,
        #[case] errno: nix::errno::Errno,
        #[case] said: &str,
    ) {
        let message = spawn_error(kind, io::Error::from(errno)).to_string();
        assert!(
            message.contains(said),
            "{message:?} should mention {said:?}"
        );
    }

    #[test]
    fn missing_ip_says_install_iproute2() {
        let message = NetError::IpMissing {
            command: "ip link set lo up".into(),
        }
        .to_string();
        assert!(message.contains("install iproute2"), "{message}");
    }

    #[test]
    fn taps_need_no_check_as_root() {
        assert!(check_taps_usable(NamespaceKind::Net).is_ok());
    }

    #[test]
    fn an_unusable_tun_device_says_what_to_do() {
        let message = NetError::TunNotUsable {
            source: nix::errno::Errno::EACCES.into(),
        }
        .to_string();
        assert!(message.contains("chmod 0666 /dev/net/tun"), "{message}");
    }

    #[test]
    fn describe_names_the_namespaces() {
        assert!(NamespaceKind::UserAndNet
            .describe()
            .contains("user and network"));
        assert!(!NamespaceKind::Net.describe().contains("user"));
    }
}

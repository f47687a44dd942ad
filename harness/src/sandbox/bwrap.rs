//! The bubblewrap command line of a jail: pure, from a [`Plan`].

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// `PATH` inside the jail, after the lab's tool dir (if any).
const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The pieces of the host's `/etc` that programs in `/usr` need to start and
/// behave: the dynamic linker's cache, Debian's alternatives (`awk`,
/// `editor`…), iproute2's tables. Bound read-only when present; nothing else
/// of `/etc` (no passwd, no shadow, no host configuration) is visible.
const ETC_PIECES: &[&str] = &[
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/alternatives",
    "/etc/iproute2",
];

/// What runs first in the jail: prints the nonce on a line of its own (proof
/// that the jail was set up and the shell started, so a bubblewrap error is
/// never mistaken for the script's), then becomes a fresh `sh -c SCRIPT`.
/// `$0` is the script and `$1` the nonce.
const WRAPPER: &str = r#"printf '%s\n' "$1"; exec /bin/sh -c "$0""#;

/// A top-level entry of the host's `/` that programs in `/usr` reach through
/// (on merged-/usr systems `/bin` is a symlink to `usr/bin`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum TopLevel {
    Symlink { name: PathBuf, target: PathBuf },
    Dir(PathBuf),
}

/// Which network the jail has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum PlanNetwork {
    /// bwrap makes a user namespace (nested user namespaces disabled inside)
    /// and an empty network namespace with only `lo`.
    Isolated,
    /// The caller already joined the lab's user and network namespaces and
    /// is root there: keep them, keep only `CAP_NET_ADMIN`, give access to
    /// the tun device, put the lab's tool dir (its `sudo`) first on `PATH`.
    Lab { tool_dir: PathBuf },
}

/// Everything the command line depends on.
#[derive(Debug, Clone)]
pub(super) struct Plan<'a> {
    /// Bound as the jail's `/etc/passwd`.
    pub passwd: &'a Path,
    pub work_dir: &'a Path,
    pub read_only: &'a [PathBuf],
    pub network: PlanNetwork,
    pub top_level: &'a [TopLevel],
    pub tmp_size: u64,
    /// The fd (inherited) on which bwrap writes `{"child-pid": N, …}`.
    pub info_fd: i32,
    pub script: &'a str,
    pub nonce: &'a str,
}

/// bwrap's arguments (without `bwrap` itself).
pub(super) fn arguments(plan: &Plan<'_>) -> Vec<OsString> {
    let mut args = Args::default();
    // `--as-pid-1`: the script's shell is the PID namespace's init, and bwrap
    // reaps it. With bwrap's own init, bwrap exits on that init's report
    // without reaping it: its zombie, a task of the jail's user, waits for
    // the host's init (1 to 2 s measured here). The cost: orphans of the
    // script stay zombies until the script ends, within its process limit.
    args.flags(&[
        "--die-with-parent",
        "--new-session",
        "--unshare-pid",
        "--as-pid-1",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
    ]);
    match &plan.network {
        PlanNetwork::Isolated => {
            args.flags(&["--unshare-user", "--unshare-net", "--disable-userns"])
        }
        PlanNetwork::Lab { .. } => {
            args.flags(&["--cap-drop", "ALL", "--cap-add", "CAP_NET_ADMIN"]);
        }
    }
    args.flags(&["--clearenv"]);
    args.setenv("PATH", &search_path(&plan.network));
    args.setenv("HOME", plan.work_dir.as_os_str());
    args.bind("--ro-bind", Path::new("/usr"), Path::new("/usr"));
    for entry in plan.top_level {
        match entry {
            TopLevel::Symlink { name, target } => args.bind("--symlink", target, name),
            TopLevel::Dir(dir) => args.bind("--ro-bind", dir, dir),
        }
    }
    for piece in ETC_PIECES {
        args.bind("--ro-bind-try", Path::new(piece), Path::new(piece));
    }
    args.bind("--ro-bind", plan.passwd, Path::new("/etc/passwd"));
    args.flags(&["--proc", "/proc", "--dev", "/dev"]);
    if let PlanNetwork::Lab { .. } = plan.network {
        let tun = Path::new("/dev/net/tun");
        args.bind("--dev-bind", tun, tun);
    }
    args.flags(&["--size"]);
    args.push(plan.tmp_size.to_string());
    args.flags(&["--tmpfs", "/tmp"]);
    for path in plan.read_only {
        args.bind("--ro-bind", path, path);
    }
    if let PlanNetwork::Lab { tool_dir } = &plan.network {
        args.bind("--ro-bind", tool_dir, tool_dir);
    }
    args.bind("--bind", plan.work_dir, plan.work_dir);
    args.flags(&["--chdir"]);
    args.push(plan.work_dir);
    // Last: the root (a tmpfs bwrap made, holding the mount points) becomes
    // read-only, so nothing can be written outside the work dir and /tmp.
    args.flags(&["--remount-ro", "/", "--info-fd"]);
    args.push(plan.info_fd.to_string());
    args.flags(&["--", "/bin/sh", "-c", WRAPPER]);
    args.push(plan.script);
    args.push(plan.nonce);
    args.0
}

fn search_path(network: &PlanNetwork) -> OsString {
    let mut path = OsString::new();
    if let PlanNetwork::Lab { tool_dir } = network {
        path.push(tool_dir);
        path.push(":");
    }
    path.push(SYSTEM_PATH);
    path
}

#[derive(Debug, Default)]
struct Args(Vec<OsString>);

impl Args {
    fn push(&mut self, arg: impl Into<OsString>) {
        self.0.push(arg.into());
    }

    fn flags(&mut self, flags: &[&str]) {
        self.0.extend(flags.iter().map(OsString::from));
    }

    fn setenv(&mut self, name: &str, value: &std::ffi::OsStr) {
        self.flags(&["--setenv", name]);
        self.push(value);
    }

    fn bind(&mut self, option: &str, source: &Path, dest: &Path) {
        self.flags(&[option]);
        self.push(source);
        self.push(dest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(network: PlanNetwork) -> String {
        let top_level = [
            TopLevel::Symlink {
                name: "/bin".into(),
                target: "usr/bin".into(),
            },
            TopLevel::Dir("/lib32".into()),
        ];
        let read_only = [PathBuf::from("/srv/lab/inputs")];
        let plan = Plan {
            passwd: Path::new("/tmp/labcheck-passwd-x"),
            work_dir: Path::new("/srv/grade/alice"),
            read_only: &read_only,
            network,
            top_level: &top_level,
            tmp_size: 1024,
            info_fd: 7,
            script: "qemu-img create -f qcow2 vm2.qcow2 1G",
            nonce: "n0nce",
        };
        let args: Vec<String> = arguments(&plan)
            .iter()
            .map(|arg| {
                let arg = arg.to_string_lossy();
                shlex::try_quote(&arg).expect("no NUL").into_owned()
            })
            .collect();
        // Quoted as a shell would need, one option per line, so the snapshot
        // reads like the command.
        args.join(" ").replace(" --", "\n--")
    }

    #[test]
    fn isolated_jail_command_line() {
        insta::assert_snapshot!(rendered(PlanNetwork::Isolated));
    }

    #[test]
    fn lab_jail_command_line() {
        insta::assert_snapshot!(rendered(PlanNetwork::Lab {
            tool_dir: "/srv/lab/bin".into()
        }));
    }

    #[test]
    fn the_wrapper_prints_the_nonce_then_runs_the_script() {
        let output = std::process::Command::new("/bin/sh")
            .args(["-c", WRAPPER, "echo script; exit 3", "n0nce"])
            .output()
            .expect("sh runs");
        assert_eq!(output.stdout, b"n0nce\nscript\n");
        assert_eq!(output.status.code(), Some(3));
    }
}

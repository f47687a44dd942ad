//! The firmware of the guest's direct boot: qboot when QEMU has it.
//!
//! A direct boot needs no BIOS services: QEMU loads the kernel and initramfs
//! itself and the kernel enters through PVH. qboot, QEMU's own minimal
//! firmware, hands over to it about 0.1 to 0.2 s sooner than SeaBIOS under
//! TCG (BENCHMARKS.md) and still gives the guest QEMU's ACPI tables, so
//! power-off works as before. Debian and Ubuntu ship it in qemu-system-data;
//! where QEMU has none, the direct boot keeps QEMU's default firmware, and the
//! substitution in the report shows which one ran.

use std::path::PathBuf;
use std::time::Duration;

use tokio::process::Command;
use tokio::sync::OnceCell;

use super::QEMU;
use crate::process::{self, Enclosure, ShellExit};
use crate::time::Deadline;

/// QEMU's name for qboot, looked up in its data directories like its other
/// firmware.
pub const QBOOT: &str = "qboot.rom";

/// How long `-L help` may take. QEMU answers it without starting a VM, in a
/// few hundredths of a second; five seconds leave room on a loaded host, and
/// a QEMU that takes longer counts as one without qboot (its default
/// firmware boots the guest too, a little slower) rather than stalling every
/// direct boot of the run.
const DATA_DIRS_BUDGET: Duration = Duration::from_secs(5);

/// The firmware for direct boots on this host: [`QBOOT`] when QEMU has it,
/// otherwise `None` (QEMU's default). Asked once per process.
pub async fn direct_boot_firmware() -> Option<&'static str> {
    static FOUND: OnceCell<Option<&'static str>> = OnceCell::const_new();
    *FOUND
        .get_or_init(|| async {
            let dirs = data_dirs().await;
            has_file(&dirs, QBOOT).then_some(QBOOT)
        })
        .await
}

/// The directories QEMU looks its data files up in (`-L help`); none when
/// QEMU cannot say within [`DATA_DIRS_BUDGET`].
///
/// Spawns QEMU through the door: see [`process::ChildProcess::spawn`] about
/// which thread to call from.
async fn data_dirs() -> Vec<PathBuf> {
    let mut command = Command::new(QEMU);
    command.args(["-L", "help"]);
    let deadline = Deadline::after(DATA_DIRS_BUDGET);
    match process::run(command, &Enclosure::host(), deadline).await {
        // The door gives stdout and stderr as one: a warning line names no
        // directory with qboot in it, so it changes nothing.
        Ok(out) if out.exit == ShellExit::Exited(0) => parse_data_dirs(&out.text()),
        _ => Vec::new(),
    }
}

/// `-L help` prints one directory per line.
fn parse_data_dirs(listing: &str) -> Vec<PathBuf> {
    listing
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(PathBuf::from)
        .collect()
}

fn has_file(dirs: &[PathBuf], name: &str) -> bool {
    dirs.iter().any(|dir| dir.join(name).is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_dirs_are_the_lines_of_the_listing() {
        let listing = "/usr/bin/../share/qemu\n/usr/bin/../share/seabios\n\n/usr/lib/ipxe/qemu\n";
        assert_eq!(
            parse_data_dirs(listing),
            [
                "/usr/bin/../share/qemu",
                "/usr/bin/../share/seabios",
                "/usr/lib/ipxe/qemu"
            ]
            .map(PathBuf::from)
        );
    }

    /// The installed QEMU answers through the door, and SeaBIOS is in one of
    /// the directories it names.
    #[tokio::test]
    async fn the_installed_qemu_names_its_data_dirs() {
        let dirs = data_dirs().await;
        assert!(has_file(&dirs, "bios-256k.bin"), "{dirs:?}");
    }

    #[test]
    fn a_file_counts_only_in_a_listed_dir() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join(QBOOT), b"rom").expect("write");
        let other = tempfile::tempdir().expect("temp dir");
        assert!(has_file(&[other.path().into(), dir.path().into()], QBOOT));
        assert!(!has_file(&[other.path().into()], QBOOT));
        assert!(!has_file(&[dir.path().into()], "bios-256k.bin"));
    }
}

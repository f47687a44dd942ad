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

use tokio::sync::OnceCell;

use super::QEMU;

/// QEMU's name for qboot, looked up in its data directories like its other
/// firmware.
pub const QBOOT: &str = "qboot.rom";

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
/// QEMU cannot say.
async fn data_dirs() -> Vec<PathBuf> {
    match tokio::process::Command::new(QEMU)
        .args(["-L", "help"])
        .output()
        .await
    {
        Ok(out) if out.status.success() => parse_data_dirs(&String::from_utf8_lossy(&out.stdout)),
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

//! The bootable disk: syslinux on a FAT volume in an image file, made with the pinned dosfstools,
//! syslinux and mtools (none needs root or a loop device), then converted to qcow2.
//!
//! Determinism: `mkfs.fat --invariant` with a fixed volume id, and mtools (which syslinux also
//! uses to copy `ldlinux.sys`) stamping files with `SOURCE_DATE_EPOCH`, read in UTC.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::init::DISK_LABEL;
use super::tool::run_tool;
use super::GuestError;

/// Size of the FAT volume: room for the kernel, the initramfs and the state files.
const DISK_KIB: u64 = 64 * 1024;
/// Fixed FAT volume serial number (instead of one derived from the clock).
const VOLUME_ID: &str = "4C414243";

/// The pinned build tools, unpacked from their packages.
#[derive(Debug, Clone)]
pub struct Tools {
    /// `usr/bin` of the unpacked mtools package (mcopy, mmd…), put first on syslinux's PATH.
    pub mtools_bin: PathBuf,
    pub mkfs_fat: PathBuf,
    pub syslinux: PathBuf,
}

/// A file to put on the disk: its path on the volume and its bytes.
#[derive(Debug, Clone)]
pub struct DiskFile {
    pub path: String,
    pub bytes: Vec<u8>,
}

/// Writes the raw bootable disk image to `raw`, using `scratch` for staging files.
pub fn make_raw_disk(
    tools: &Tools,
    files: &[DiskFile],
    epoch: u64,
    scratch: &Path,
    raw: &Path,
) -> Result<(), GuestError> {
    let env = ToolEnv { tools, epoch };
    env.run(
        Command::new(&tools.mkfs_fat)
            .args(["--invariant", "-i", VOLUME_ID, "-n", DISK_LABEL, "-C"])
            .arg(raw)
            .arg(DISK_KIB.to_string()),
    )?;
    env.run(Command::new(&tools.syslinux).arg("--install").arg(raw))?;
    let mut dirs: Vec<&str> = files
        .iter()
        .filter_map(|f| f.path.rsplit_once('/').map(|(dir, _)| dir))
        .filter(|dir| !dir.is_empty())
        .collect();
    dirs.sort_unstable();
    dirs.dedup();
    for dir in dirs {
        env.run(mtool(tools, "mmd", raw).arg(format!("::{dir}")))?;
    }
    for (index, file) in files.iter().enumerate() {
        let staged = scratch.join(format!("disk-file-{index}"));
        write_with_mtime(&staged, &file.bytes, epoch)?;
        env.run(
            mtool(tools, "mcopy", raw)
                .arg("-m")
                .arg(&staged)
                .arg(format!("::{}", file.path.trim_start_matches('/'))),
        )?;
    }
    Ok(())
}

/// Converts the raw image to qcow2 with the system's `qemu-img` (deterministic for one input).
pub fn convert_to_qcow2(raw: &Path, qcow2: &Path) -> Result<(), GuestError> {
    let mut command = Command::new("qemu-img");
    command.args(["convert", "-O", "qcow2"]).arg(raw).arg(qcow2);
    run_tool("qemu-img convert", &mut command, " (install qemu-utils)").map(drop)
}

fn mtool(tools: &Tools, name: &str, image: &Path) -> Command {
    let mut command = Command::new(tools.mtools_bin.join(name));
    command.arg("-i").arg(image);
    command
}

struct ToolEnv<'a> {
    tools: &'a Tools,
    epoch: u64,
}

impl ToolEnv<'_> {
    /// Runs a pinned tool with the environment that makes its output reproducible.
    fn run(&self, command: &mut Command) -> Result<(), GuestError> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut search = vec![self.tools.mtools_bin.clone()];
        search.extend(std::env::split_paths(&path));
        let joined = std::env::join_paths(search).map_err(|e| GuestError::Tool {
            tool: "PATH".into(),
            reason: e.to_string(),
        })?;
        command
            .env("PATH", joined)
            .env("SOURCE_DATE_EPOCH", self.epoch.to_string())
            .env("TZ", "UTC")
            .env("MTOOLS_SKIP_CHECK", "1")
            .env_remove("MTOOLSRC");
        let label = format!("{command:?}");
        run_tool(&label, command, "").map(drop)
    }
}

/// Writes `bytes` to `path` and stamps it with `epoch` (mcopy -m copies the mtime).
pub fn write_with_mtime(path: &Path, bytes: &[u8], epoch: u64) -> Result<(), GuestError> {
    std::fs::write(path, bytes).map_err(|e| GuestError::io(path, e))?;
    let file = std::fs::File::options()
        .write(true)
        .open(path)
        .map_err(|e| GuestError::io(path, e))?;
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(epoch);
    file.set_modified(time).map_err(|e| GuestError::io(path, e))
}

//! What the runner decides for one VM before its line is rewritten: the
//! rewriter's input. Data only.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::vm::args::Accel;

/// What the runner decided for one VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The accelerator the probe found usable.
    pub accel: Accel,
    pub serial_socket: PathBuf,
    pub qmp_socket: PathBuf,
    /// labcheck's control channel: a second serial port (the guest's ttyS1,
    /// where the built-in guest runs a root shell of its own) on this socket.
    pub control_socket: Option<PathBuf>,
    /// Files the built-in guest stands in for, by the name the handout uses.
    pub stand_ins: Vec<StandIn>,
    /// Handout port → the free loopback port that stands in for it (see
    /// [`crate::vm::ports`]); empty when the VM's network is its lab's own.
    pub loopback_ports: BTreeMap<u16, u16>,
    /// When set, QEMU runs in a working directory of labcheck's own, and
    /// each image named relative to this dir is given by its full path: a
    /// submission's work dir must not be QEMU's working directory, where
    /// QEMU looks its firmware and keymaps up first.
    pub images_in: Option<PathBuf>,
}

/// A handout file provided by the built-in guest: the runner links or copies
/// `path` into the work dir under `name`, so the command line is unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandIn {
    pub name: String,
    pub path: PathBuf,
    /// When set, `-cdrom NAME` boots this kernel and initramfs instead.
    pub direct_boot: Option<DirectBoot>,
}

/// The guest's kernel and initramfs, for QEMU to load itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectBoot {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub append: String,
    /// Firmware to boot with (`-bios`), see [`crate::vm::firmware`]; `None`
    /// keeps QEMU's default, as does a line that names its own `-bios`.
    pub firmware: Option<String>,
}

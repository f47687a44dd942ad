//! QEMU: command lines, the accelerator probe, launching VMs, QMP. Every
//! child QEMU starts through [`crate::process`], the one door.
//!
//! - [`cmdline`] (the lab file's QEMU command lines, parsed in
//!   [`crate::scenario::qemu_line`]) and [`rewrite`] are pure: handout text in, argv and the list
//!   of declared substitutions out.
//! - [`args`] is the argument vocabulary they share with the launchers: the
//!   accelerator, the substitutions, the socket wiring. A leaf, so that the
//!   rewriter, [`ports`] and [`accel`] need not depend on one another for it.
//! - [`ports`] finds a line's fixed host ports and puts free loopback ports
//!   in their place (pure, but for picking the free ports).
//! - [`launch`] starts a VM and hands back its serial console and [`qmp`] client.
//! - [`accel`] decides between KVM and TCG by booting a guest, not by looking at
//!   `/dev/kvm`.
//! - [`firmware`] finds the firmware of the guest's direct boot (qboot, when
//!   QEMU has it).

/// The emulator labcheck runs, by its name on PATH (every handout line names it so).
pub const QEMU: &str = "qemu-system-x86_64";

pub mod accel;
pub mod allowlist;
pub mod args;
pub mod firmware;
pub mod launch;
pub mod ports;
pub mod qmp;
pub mod rewrite;

pub use crate::scenario::qemu_line as cmdline;
pub use accel::{probe, probe_cached, Probe};
pub use args::{Accel, Substitution, SubstitutionKind};
pub use cmdline::{CmdlineError, CommandLine, KeyValue, KeyValues, QemuOption};
pub use launch::{launch, LaunchError, RunningVm, Sockets};
pub use ports::{fixed_ports, free_loopback_ports, remap_ports, RemappedPorts};
pub use qmp::{Qmp, QmpError, QmpEvent};
pub use rewrite::{rewrite, DirectBoot, Plan, Rewritten, StandIn};

//! What the rewriter's tests share: the handout's command lines, a plan with
//! two stand-ins, and two helpers.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{rewrite, Plan, Rewritten, StandIn, Substitution, SubstitutionKind};
use crate::vm::args::Accel;
use crate::vm::cmdline::CommandLine;

// The five QEMU command lines of /work/shared/labs/day2-handout.md, verbatim.
pub(super) const CLONED_VM2: &str = "qemu-system-x86_64 -hda vm2.qcow2 \\
-m 1024 \\
-net user \\
-net nic,macaddr=52:54:00:12:34:56 ";
pub(super) const SOCKET_VM1: &str = "qemu-system-x86_64 \\
  -m 512 \\
  -enable-kvm \\
  -cdrom alpine-standard-3.20.0-x86_64.iso \\
  -boot d \\
  -netdev socket,id=net0,listen=:1234 \\
  -device virtio-net-pci,netdev=net0 \\
  -nographic";
pub(super) const SOCKET_VM2: &str = "qemu-system-x86_64 \\
  -m 512 \\
  -enable-kvm \\
  -cdrom alpine-standard-3.20.0-x86_64.iso \\
  -boot d \\
  -netdev socket,id=net0,connect=127.0.0.1:1234 \\
  -device virtio-net-pci,netdev=net0 \\
  -nographic";
pub(super) const TAP_VM1: &str = "qemu-system-x86_64 \\
  -m 512 \\
  -enable-kvm \\
  -cdrom alpine-standard-3.20.0-x86_64.iso \\
  -boot d \\
  -netdev tap,id=net0,ifname=tap0,script=no,downscript=no \\
  -device e1000,netdev=net0,mac=52:54:00:00:00:01 \\
  -nographic";
pub(super) const TAP_VM2: &str = "qemu-system-x86_64 \\
  -m 512 \\
  -enable-kvm \\
  -cdrom alpine-standard-3.20.0-x86_64.iso \\
  -boot d \\
  -netdev tap,id=net1,ifname=tap1,script=no,downscript=no \\
  -device e1000,netdev=net1,mac=52:54:00:00:00:02 \\
  -nographic";

pub(super) fn plan(accel: Accel) -> Plan {
    Plan {
        accel,
        serial_socket: PathBuf::from("/run/x/serial.sock"),
        qmp_socket: PathBuf::from("/run/x/qmp.sock"),
        control_socket: Some(PathBuf::from("/run/x/control.sock")),
        stand_ins: vec![
            StandIn {
                name: "alpine-standard-3.20.0-x86_64.iso".into(),
                path: PathBuf::from("/cache/guest/labcheck.iso"),
                direct_boot: None,
            },
            StandIn {
                name: "vm1.qcow2".into(),
                path: PathBuf::from("/cache/guest/disk.qcow2"),
                direct_boot: None,
            },
        ],
        loopback_ports: BTreeMap::new(),
        images_in: None,
    }
}

/// The first substitution of `kind`; the test fails without one.
pub(super) fn declared(rewritten: &Rewritten, kind: SubstitutionKind) -> &Substitution {
    rewritten
        .substitutions
        .iter()
        .find(|s| s.kind == kind)
        .unwrap_or_else(|| panic!("no {kind:?} substitution: {rewritten:?}"))
}

pub(super) fn rewrite_text(text: &str, accel: Accel) -> Rewritten {
    rewrite(
        &CommandLine::parse(text).expect("handout line parses"),
        &plan(accel),
    )
}

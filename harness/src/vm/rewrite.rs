//! From the handout's command line to the argv labcheck runs.
//!
//! Everything the harness changes is a declared [`Substitution`], listed in the
//! report; every other option is passed through exactly as written. Pure.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::args::{control_wiring, path_text, qmp_wiring, serial_wiring, Accel};
use super::cmdline::{CommandLine, KeyValues, QemuOption};
use super::ports::remap_ports;

/// The declarations a rewritten line carries, by the path callers know.
pub use super::args::{Substitution, SubstitutionKind};

/// Options whose value names a file directly.
const FILE_OPTIONS: &[&str] = &[
    "-cdrom", "-hda", "-hdb", "-hdc", "-hdd", "-kernel", "-initrd",
];

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
    /// [`super::ports`]); empty when the VM's network is its lab's own.
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
    /// Firmware to boot with (`-bios`), see [`super::firmware`]; `None`
    /// keeps QEMU's default, as does a line that names its own `-bios`.
    pub firmware: Option<String>,
}

/// The argv to run and why it differs from the handout.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Rewritten {
    pub argv: Vec<String>,
    pub substitutions: Vec<Substitution>,
    /// The accelerator this VM actually uses.
    pub accel: Accel,
}

const REASON_KVM: &str =
    "KVM is not usable on this host; the accelerator probe's finding is in the report";
const REASON_NOGRAPHIC: &str = "-nographic puts the serial console and the monitor on stdio; \
     labcheck drives the console over a unix socket, keeps QEMU's own output apart \
     and uses QMP instead of the monitor";
const REASON_WINDOW: &str = "QEMU would open a window; labcheck runs headless";
const REASON_SERIAL: &str = "labcheck drives the guest's first serial port over a unix socket";
const REASON_QMP: &str = "labcheck watches and stops the VM through QMP";
const REASON_CONTROL: &str = "labcheck's own shell on ttyS1, for observations that must not go \
     through the handout's shell";
const REASON_IMAGE_PATH: &str = "QEMU runs outside the submission's work dir (where it would look \
     its firmware up first), so the image is named by its full path";
const REASON_STAND_IN: &str =
    "the handout's image is not available here; labcheck's guest stands in under the same name";
const REASON_DIRECT_BOOT: &str = "the lab boots the ISO's guest directly (QEMU loads its kernel \
     and initramfs), without the boot loader and the kernel's decompression, and with qboot, \
     QEMU's minimal firmware, where QEMU has it, since how this VM boots is not what the lab shows";

/// Rewrites `line` according to `plan`.
///
/// Paths in `plan` must be valid UTF-8 (the runner makes them); anything else
/// is rendered lossily.
pub fn rewrite(line: &CommandLine, plan: &Plan) -> Rewritten {
    // No other substitution touches a network option, so remapping ports
    // first changes nothing else; their declarations still come last.
    let remapped = remap_ports(line, &plan.loopback_ports);
    let mut out = Rewriter {
        plan,
        argv: vec![remapped.line.program.clone()],
        substitutions: Vec::new(),
        mentions_kvm: false,
        display_set: false,
        serial_wired: false,
        line_names_firmware: remapped.line.options.iter().any(|o| o.name() == "-bios"),
    };
    for option in &remapped.line.options {
        out.option(option);
    }
    let mut rewritten = out.finish();
    rewritten.substitutions.extend(remapped.substitutions);
    rewritten
}

struct Rewriter<'a> {
    plan: &'a Plan,
    argv: Vec<String>,
    substitutions: Vec<Substitution>,
    mentions_kvm: bool,
    display_set: bool,
    serial_wired: bool,
    /// The handout's line chooses its firmware; a direct boot keeps it.
    line_names_firmware: bool,
}

impl<'a> Rewriter<'a> {
    fn option(&mut self, written: &QemuOption) {
        if let Some(boot) = self.direct_boot_for(written) {
            let firmware = boot
                .firmware
                .as_ref()
                .filter(|_| !self.line_names_firmware)
                .map(|rom| ["-bios".to_owned(), rom.clone()]);
            let with: Vec<String> = firmware
                .into_iter()
                .flatten()
                .chain([
                    "-kernel".to_owned(),
                    path_text(&boot.kernel),
                    "-initrd".to_owned(),
                    path_text(&boot.initrd),
                    "-append".to_owned(),
                    boot.append.clone(),
                ])
                .collect();
            self.replace(
                written,
                SubstitutionKind::StandIn,
                &with,
                REASON_DIRECT_BOOT,
            );
            return;
        }
        let located = self.located(written);
        let option = located.as_ref().unwrap_or(written);
        let value = option.value.as_deref().unwrap_or("");
        match option.name() {
            "-enable-kvm" => self.asks_for_kvm(option, &words(&["-accel", "tcg"])),
            "-accel" => self.accel_option(option, value),
            "-machine" | "-M" => self.machine_option(option, value),
            "-nographic" => self.nographic(option),
            "-display" if KeyValues::parse(value).kind() != Some("none") => {
                let with = words(&["-display", "none"]);
                self.replace(option, SubstitutionKind::Display, &with, REASON_WINDOW);
                self.display_set = true;
            }
            "-display" => {
                self.display_set = true;
                self.keep(option);
            }
            "-serial" if !self.serial_wired => {
                let wiring = serial_wiring(&self.plan.serial_socket);
                self.replace(
                    option,
                    SubstitutionKind::SerialWiring,
                    &wiring,
                    REASON_SERIAL,
                );
                self.serial_wired = true;
            }
            _ => self.keep(option),
        }
        self.note_stand_in(written);
    }

    /// The direct boot that stands in for the CD `option` names, if any.
    fn direct_boot_for(&self, option: &QemuOption) -> Option<&'a DirectBoot> {
        if option.name() != "-cdrom" {
            return None;
        }
        let file = option.value.as_deref()?;
        let plan = self.plan;
        plan.stand_ins
            .iter()
            .find(|s| s.name == file)
            .and_then(|s| s.direct_boot.as_ref())
    }

    /// `option` with its relative image path made full under
    /// [`Plan::images_in`], the change declared; `None` when nothing changes.
    fn located(&mut self, option: &QemuOption) -> Option<QemuOption> {
        let dir = self.plan.images_in.as_ref()?;
        let file = file_named_by(option)?;
        if Path::new(&file).is_absolute() {
            return None;
        }
        let full = path_text(&dir.join(&file));
        let value = match option.name() {
            "-drive" => {
                let mut items = KeyValues::parse(option.value.as_deref()?);
                items.set("file", &full);
                items.to_string()
            }
            _ => full.clone(),
        };
        self.substitutions.push(Substitution {
            kind: SubstitutionKind::ImagePath,
            original: file,
            replacement: full,
            reason: REASON_IMAGE_PATH.to_owned(),
        });
        Some(QemuOption {
            value: Some(value),
            ..option.clone()
        })
    }

    fn keep(&mut self, option: &QemuOption) {
        self.argv.extend(option.to_argv());
    }

    fn replace(
        &mut self,
        option: &QemuOption,
        kind: SubstitutionKind,
        with: &[String],
        reason: &str,
    ) {
        self.argv.extend(with.iter().cloned());
        self.substitutions.push(Substitution {
            kind,
            original: option.to_argv().collect::<Vec<_>>().join(" "),
            replacement: with.join(" "),
            reason: reason.to_owned(),
        });
    }

    fn add(&mut self, kind: SubstitutionKind, with: &[String], reason: &str) {
        self.argv.extend(with.iter().cloned());
        self.substitutions.push(Substitution {
            kind,
            original: String::new(),
            replacement: with.join(" "),
            reason: reason.to_owned(),
        });
    }

    /// An option that asks for KVM: replaced by `tcg_form` when the plan says TCG.
    fn asks_for_kvm(&mut self, option: &QemuOption, tcg_form: &[String]) {
        self.mentions_kvm = true;
        if self.plan.accel == Accel::Tcg {
            self.replace(option, SubstitutionKind::Accelerator, tcg_form, REASON_KVM);
        } else {
            self.keep(option);
        }
    }

    /// `-accel kvm[,props]`: the whole value goes, since KVM's properties mean
    /// nothing to TCG.
    fn accel_option(&mut self, option: &QemuOption, value: &str) {
        let parsed = KeyValues::parse(value);
        if parsed.kind().or_else(|| parsed.get("accel")) == Some("kvm") {
            self.asks_for_kvm(option, &words(&["-accel", "tcg"]));
        } else {
            self.keep(option);
        }
    }

    /// `-machine …,accel=kvm[:tcg]`: only the accel property changes, in place,
    /// since QEMU refuses to mix `-machine accel=` with `-accel`.
    fn machine_option(&mut self, option: &QemuOption, value: &str) {
        let mut parsed = KeyValues::parse(value);
        let names_kvm = parsed
            .get("accel")
            .is_some_and(|list| list.split(':').any(|name| name == "kvm"));
        if names_kvm {
            parsed.set("accel", "tcg");
            self.asks_for_kvm(option, &[option.flag.clone(), parsed.to_string()]);
        } else {
            self.keep(option);
        }
    }

    /// `-nographic` stays (it is what makes SeaBIOS print to the serial port);
    /// only where its console and monitor go changes.
    fn nographic(&mut self, option: &QemuOption) {
        let mut with = vec![option.flag.clone()];
        with.extend(serial_wiring(&self.plan.serial_socket));
        with.extend(words(&["-monitor", "none"]));
        self.replace(
            option,
            SubstitutionKind::SerialWiring,
            &with,
            REASON_NOGRAPHIC,
        );
        self.display_set = true;
        self.serial_wired = true;
    }

    fn note_stand_in(&mut self, option: &QemuOption) {
        let Some(file) = file_named_by(option) else {
            return;
        };
        let Some(stand_in) = self.plan.stand_ins.iter().find(|s| s.name == file) else {
            return;
        };
        let already = self
            .substitutions
            .iter()
            .any(|s| s.kind == SubstitutionKind::StandIn && s.original == stand_in.name);
        if !already {
            self.substitutions.push(Substitution {
                kind: SubstitutionKind::StandIn,
                original: stand_in.name.clone(),
                replacement: path_text(&stand_in.path),
                reason: REASON_STAND_IN.to_owned(),
            });
        }
    }

    fn finish(mut self) -> Rewritten {
        if !self.display_set {
            self.add(
                SubstitutionKind::Display,
                &words(&["-display", "none"]),
                REASON_WINDOW,
            );
        }
        if !self.serial_wired {
            let wiring = serial_wiring(&self.plan.serial_socket);
            self.add(SubstitutionKind::SerialWiring, &wiring, REASON_SERIAL);
        }
        let qmp = qmp_wiring(&self.plan.qmp_socket);
        self.add(SubstitutionKind::Monitor, &qmp, REASON_QMP);
        // Last, after every serial port the line wires: QEMU numbers serial
        // ports in argv order, and the console must stay ttyS0.
        if let Some(socket) = &self.plan.control_socket {
            let control = control_wiring(socket);
            self.add(SubstitutionKind::ControlChannel, &control, REASON_CONTROL);
        }
        // A line that never names KVM runs TCG, as it would for the student.
        let accel = if self.mentions_kvm {
            self.plan.accel
        } else {
            Accel::Tcg
        };
        Rewritten {
            argv: self.argv,
            substitutions: self.substitutions,
            accel,
        }
    }
}

/// The file an option names, if it names one: `-cdrom x.iso`, `-drive file=x`.
fn file_named_by(option: &QemuOption) -> Option<String> {
    let value = option.value.as_deref()?;
    match option.name() {
        name if FILE_OPTIONS.contains(&name) => Some(value.to_owned()),
        "-drive" => KeyValues::parse(value).get("file").map(str::to_owned),
        _ => None,
    }
}

fn words(items: &[&str]) -> Vec<String> {
    items.iter().map(|&item| item.to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::super::args::CONTROL_CHARDEV_ID;
    use super::*;
    use rstest::rstest;

    // The five QEMU command lines of /work/shared/labs/day2-handout.md, verbatim.
    const CLONED_VM2: &str = "qemu-system-x86_64 -hda vm2.qcow2 \\
-m 1024 \\
-net user \\
-net nic,macaddr=52:54:00:12:34:56 ";
    const SOCKET_VM1: &str = "qemu-system-x86_64 \\
  -m 512 \\
  -enable-kvm \\
  -cdrom alpine-standard-3.20.0-x86_64.iso \\
  -boot d \\
  -netdev socket,id=net0,listen=:1234 \\
  -device virtio-net-pci,netdev=net0 \\
  -nographic";
    const SOCKET_VM2: &str = "qemu-system-x86_64 \\
  -m 512 \\
  -enable-kvm \\
  -cdrom alpine-standard-3.20.0-x86_64.iso \\
  -boot d \\
  -netdev socket,id=net0,connect=127.0.0.1:1234 \\
  -device virtio-net-pci,netdev=net0 \\
  -nographic";
    const TAP_VM1: &str = "qemu-system-x86_64 \\
  -m 512 \\
  -enable-kvm \\
  -cdrom alpine-standard-3.20.0-x86_64.iso \\
  -boot d \\
  -netdev tap,id=net0,ifname=tap0,script=no,downscript=no \\
  -device e1000,netdev=net0,mac=52:54:00:00:00:01 \\
  -nographic";
    const TAP_VM2: &str = "qemu-system-x86_64 \\
  -m 512 \\
  -enable-kvm \\
  -cdrom alpine-standard-3.20.0-x86_64.iso \\
  -boot d \\
  -netdev tap,id=net1,ifname=tap1,script=no,downscript=no \\
  -device e1000,netdev=net1,mac=52:54:00:00:00:02 \\
  -nographic";

    fn plan(accel: Accel) -> Plan {
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

    #[rstest]
    #[case::hda("-hda vm2.qcow2", "-hda /work/alice/vm2.qcow2")]
    #[case::cdrom(
        "-cdrom alpine-standard-3.20.0-x86_64.iso",
        "-cdrom /work/alice/alpine-standard-3.20.0-x86_64.iso"
    )]
    #[case::drive(
        "-drive file=disks/vm2.qcow2,format=qcow2,if=virtio",
        "-drive file=/work/alice/disks/vm2.qcow2,format=qcow2,if=virtio"
    )]
    #[case::already_full("-hda /elsewhere/vm2.qcow2", "-hda /elsewhere/vm2.qcow2")]
    fn images_are_named_in_full_when_qemu_runs_elsewhere(#[case] written: &str, #[case] run: &str) {
        let plan = Plan {
            images_in: Some(PathBuf::from("/work/alice")),
            ..plan(Accel::Tcg)
        };
        let line = CommandLine::parse(&format!("qemu-system-x86_64 {written}")).expect("parses");
        let rewritten = rewrite(&line, &plan);
        assert!(
            rewritten.argv.join(" ").contains(run),
            "{:?}",
            rewritten.argv
        );
        let declared = rewritten
            .substitutions
            .iter()
            .any(|s| s.kind == SubstitutionKind::ImagePath);
        assert_eq!(declared, written != run, "{:?}", rewritten.substitutions);
    }

    #[test]
    fn a_stand_in_named_in_full_is_still_declared() {
        let plan = Plan {
            images_in: Some(PathBuf::from("/work/alice")),
            ..plan(Accel::Tcg)
        };
        let rewritten = rewrite(&CommandLine::parse(SOCKET_VM1).expect("parses"), &plan);
        assert!(rewritten
            .substitutions
            .iter()
            .any(|s| s.kind == SubstitutionKind::StandIn));
    }

    /// The first substitution of `kind`; the test fails without one.
    fn declared(rewritten: &Rewritten, kind: SubstitutionKind) -> &Substitution {
        rewritten
            .substitutions
            .iter()
            .find(|s| s.kind == kind)
            .unwrap_or_else(|| panic!("no {kind:?} substitution: {rewritten:?}"))
    }

    fn direct_boot() -> Option<DirectBoot> {
        Some(DirectBoot {
            kernel: PathBuf::from("/cache/guest/vmlinux"),
            initrd: PathBuf::from("/cache/guest/initramfs"),
            append: "console=ttyS0,115200 quiet".into(),
            firmware: None,
        })
    }

    /// `guest:direct`: the CD becomes the guest's kernel and initramfs, one
    /// declared substitution; `-boot d` and everything else stay as written.
    #[test]
    fn a_direct_boot_stand_in_replaces_the_cd_with_kernel_and_initramfs() {
        let mut plan = plan(Accel::Tcg);
        plan.stand_ins[0].direct_boot = direct_boot();
        let rewritten = rewrite(&CommandLine::parse(SOCKET_VM1).expect("parses"), &plan);
        let argv = rewritten.argv.join(" ");
        assert!(
            argv.contains(
                "-kernel /cache/guest/vmlinux -initrd /cache/guest/initramfs \
                 -append console=ttyS0,115200 quiet -boot d"
            ),
            "{argv}"
        );
        assert!(!argv.contains("-cdrom"), "{argv}");
        let stand_ins: Vec<_> = rewritten
            .substitutions
            .iter()
            .filter(|s| s.kind == SubstitutionKind::StandIn)
            .map(|s| s.original.as_str())
            .collect();
        assert_eq!(stand_ins, ["-cdrom alpine-standard-3.20.0-x86_64.iso"]);
    }

    /// The direct boot's firmware comes first in its replacement, unless the
    /// handout's line chose a firmware of its own; either way QEMU gets one
    /// `-bios`.
    #[rstest]
    #[case::default_firmware(SOCKET_VM1, "-bios qboot.rom -kernel ")]
    #[case::line_names_its_own(&format!("{SOCKET_VM1} -bios mine.bin"), "-kernel ")]
    fn a_direct_boot_brings_its_firmware(#[case] line: &str, #[case] replacement_starts: &str) {
        let mut plan = plan(Accel::Tcg);
        plan.stand_ins[0].direct_boot = direct_boot().map(|boot| DirectBoot {
            firmware: Some("qboot.rom".into()),
            ..boot
        });
        let rewritten = rewrite(&CommandLine::parse(line).expect("parses"), &plan);
        let stand_in = declared(&rewritten, SubstitutionKind::StandIn);
        assert!(
            stand_in.replacement.starts_with(replacement_starts),
            "{}",
            stand_in.replacement
        );
        let bios = rewritten.argv.iter().filter(|a| *a == "-bios").count();
        assert_eq!(bios, 1, "{:?}", rewritten.argv);
    }

    #[test]
    fn a_direct_boot_stand_in_named_by_another_option_stays_a_file() {
        let mut plan = plan(Accel::Tcg);
        plan.stand_ins[1].direct_boot = direct_boot();
        let line = CommandLine::parse("qemu-system-x86_64 -hda vm1.qcow2").expect("parses");
        let argv = rewrite(&line, &plan).argv;
        assert!(argv.join(" ").contains("-hda vm1.qcow2"), "{argv:?}");
        assert!(!argv.contains(&"-kernel".to_owned()), "{argv:?}");
    }

    fn rewrite_text(text: &str, accel: Accel) -> Rewritten {
        rewrite(
            &CommandLine::parse(text).expect("handout line parses"),
            &plan(accel),
        )
    }

    #[rstest]
    #[case::cloned_vm2("cloned_vm2", CLONED_VM2)]
    #[case::socket_vm1("socket_vm1", SOCKET_VM1)]
    #[case::socket_vm2("socket_vm2", SOCKET_VM2)]
    #[case::tap_vm1("tap_vm1", TAP_VM1)]
    #[case::tap_vm2("tap_vm2", TAP_VM2)]
    fn rewrites_handout_lines_for_tcg(#[case] name: &str, #[case] text: &str) {
        insta::assert_yaml_snapshot!(
            format!("handout_{name}_tcg"),
            rewrite_text(text, Accel::Tcg)
        );
    }

    /// Both ends of the handout's socket link get the same substitute port,
    /// declared after the other substitutions.
    #[rstest]
    #[case::socket_vm1("socket_vm1", SOCKET_VM1)]
    #[case::socket_vm2("socket_vm2", SOCKET_VM2)]
    fn substitutes_loopback_ports_on_the_socket_link(#[case] name: &str, #[case] text: &str) {
        let line = CommandLine::parse(text).expect("handout line parses");
        let with_ports = Plan {
            loopback_ports: BTreeMap::from([(1234, 40001)]),
            ..plan(Accel::Tcg)
        };
        insta::assert_yaml_snapshot!(
            format!("handout_{name}_loopback_ports"),
            rewrite(&line, &with_ports)
        );
    }

    #[test]
    fn keeps_kvm_when_the_probe_found_it_usable() {
        let rewritten = rewrite_text(SOCKET_VM1, Accel::Kvm);
        assert_eq!(rewritten.accel, Accel::Kvm);
        assert!(rewritten.argv.iter().any(|word| word == "-enable-kvm"));
        assert!(!rewritten
            .substitutions
            .iter()
            .any(|s| s.kind == SubstitutionKind::Accelerator));
    }

    #[test]
    fn a_line_without_accelerator_runs_tcg_even_with_kvm_available() {
        let rewritten = rewrite_text(CLONED_VM2, Accel::Kvm);
        assert_eq!(rewritten.accel, Accel::Tcg);
        assert!(!rewritten.argv.iter().any(|word| word.contains("kvm")));
    }

    /// Options other than the ones rewritten pass through untouched, in order.
    #[test]
    fn passes_other_options_through_in_order() {
        let rewritten = rewrite_text(TAP_VM1, Accel::Tcg);
        let tail: Vec<_> = rewritten.argv[1..].iter().map(String::as_str).collect();
        let kept = [
            "-m",
            "512",
            "-cdrom",
            "alpine-standard-3.20.0-x86_64.iso",
            "-boot",
            "d",
            "-netdev",
            "tap,id=net0,ifname=tap0,script=no,downscript=no",
            "-device",
            "e1000,netdev=net0,mac=52:54:00:00:00:01",
        ];
        let mut position = 0;
        for word in kept {
            let found = tail[position..].iter().position(|w| *w == word);
            position +=
                found.unwrap_or_else(|| panic!("{word} missing or out of order in {tail:?}")) + 1;
        }
    }

    #[rstest]
    #[case("-accel kvm", "-accel tcg")]
    #[case("-accel kvm,kernel-irqchip=on", "-accel tcg")]
    #[case("-machine q35,accel=kvm", "-machine q35,accel=tcg")]
    #[case("-M accel=kvm:tcg", "-M accel=tcg")]
    #[case("--enable-kvm", "-accel tcg")]
    fn replaces_every_way_of_asking_for_kvm(#[case] written: &str, #[case] replacement: &str) {
        let rewritten = rewrite_text(&format!("qemu-system-x86_64 {written}"), Accel::Tcg);
        assert_eq!(rewritten.accel, Accel::Tcg);
        let accel: Vec<_> = rewritten
            .substitutions
            .iter()
            .filter(|s| s.kind == SubstitutionKind::Accelerator)
            .map(|s| (s.original.as_str(), s.replacement.as_str()))
            .collect();
        assert_eq!(accel, [(written, replacement)]);
        assert_eq!(rewritten.argv[1..3].join(" "), replacement);
    }

    #[rstest]
    #[case("-accel tcg")]
    #[case("-machine pc,accel=tcg")]
    #[case("-m 64")]
    fn leaves_non_kvm_lines_alone(#[case] written: &str) {
        let rewritten = rewrite_text(&format!("qemu-system-x86_64 {written}"), Accel::Tcg);
        assert_eq!(rewritten.argv[1..3].join(" "), written);
        assert!(!rewritten
            .substitutions
            .iter()
            .any(|s| s.kind == SubstitutionKind::Accelerator));
    }

    #[test]
    fn rewires_an_explicit_display_and_serial() {
        let rewritten = rewrite_text(
            "qemu-system-x86_64 -display gtk -serial stdio -serial file:ttyS1.log",
            Accel::Tcg,
        );
        insta::assert_yaml_snapshot!(rewritten);
    }

    #[test]
    fn keeps_display_none_and_adds_only_serial_qmp_and_control() {
        let rewritten = rewrite_text("qemu-system-x86_64 -display none", Accel::Tcg);
        let kinds: Vec<_> = rewritten.substitutions.iter().map(|s| s.kind).collect();
        assert_eq!(
            kinds,
            [
                SubstitutionKind::SerialWiring,
                SubstitutionKind::Monitor,
                SubstitutionKind::ControlChannel
            ]
        );
        assert_eq!(rewritten.argv[1..3], ["-display", "none"]);
    }

    #[test]
    fn without_a_control_socket_adds_no_control_channel() {
        let line = CommandLine::parse(SOCKET_VM1).expect("handout line parses");
        let without = Plan {
            control_socket: None,
            ..plan(Accel::Tcg)
        };
        let rewritten = rewrite(&line, &without);
        assert!(!rewritten
            .argv
            .iter()
            .any(|w| w.contains(CONTROL_CHARDEV_ID)));
        assert!(!rewritten
            .substitutions
            .iter()
            .any(|s| s.kind == SubstitutionKind::ControlChannel));
    }

    /// QEMU numbers serial ports in argv order: the console's must come
    /// first (ttyS0), the control channel's after it (ttyS1), wherever the
    /// line put its own serial options.
    #[rstest]
    #[case::nographic(SOCKET_VM1)]
    #[case::no_nographic(CLONED_VM2)]
    #[case::explicit_serial("qemu-system-x86_64 -serial stdio -m 64")]
    fn wires_the_control_channel_as_the_second_serial_port(#[case] text: &str) {
        let rewritten = rewrite_text(text, Accel::Tcg);
        let serials: Vec<_> = rewritten
            .argv
            .windows(2)
            .filter(|pair| pair[0] == "-serial")
            .map(|pair| pair[1].as_str())
            .collect();
        assert_eq!(
            serials,
            ["chardev:labcheck-serial", "chardev:labcheck-control"]
        );
        let control = declared(&rewritten, SubstitutionKind::ControlChannel);
        assert_eq!(
            (control.original.as_str(), control.replacement.as_str()),
            (
                "",
                "-chardev socket,id=labcheck-control,path=/run/x/control.sock,server=on,wait=off \
                 -serial chardev:labcheck-control"
            )
        );
        assert!(rewritten
            .argv
            .ends_with(&control_wiring(Path::new("/run/x/control.sock"))));
    }

    #[test]
    fn records_a_stand_in_once_and_matches_drive_files() {
        let rewritten = rewrite_text(
            "qemu-system-x86_64 -drive file=vm1.qcow2,if=virtio -hdb vm1.qcow2 -hdc other.img",
            Accel::Tcg,
        );
        let stand_ins: Vec<_> = rewritten
            .substitutions
            .iter()
            .filter(|s| s.kind == SubstitutionKind::StandIn)
            .map(|s| (s.original.as_str(), s.replacement.as_str()))
            .collect();
        assert_eq!(stand_ins, [("vm1.qcow2", "/cache/guest/disk.qcow2")]);
        assert!(rewritten
            .argv
            .contains(&"file=vm1.qcow2,if=virtio".to_owned()));
    }
}

//! From the handout's command line to the argv labcheck runs.
//!
//! Everything the harness changes is a declared [`Substitution`], listed in the
//! report; every other option is passed through exactly as written. Pure.
//!
//! Here: the accelerator, the display, the serial console, QMP and the
//! control channel. Beside it: `plan` (the [`Plan`], the rewriter's input),
//! `images` (the files a line names: stand-ins declared, images named in
//! full) and `direct_boot` (the stand-in that replaces `-cdrom`); the ports
//! are [`super::ports`]'s.

mod direct_boot;
#[cfg(test)]
mod fixtures;
mod images;
mod plan;

use super::args::{control_wiring, qmp_wiring, serial_wiring, Accel};
use super::cmdline::{CommandLine, KeyValues, QemuOption};
use super::ports::remap_ports;

/// The declarations a rewritten line carries, by the path callers know.
pub use super::args::{Substitution, SubstitutionKind};
pub use plan::{DirectBoot, Plan, StandIn};

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

impl Rewriter<'_> {
    fn option(&mut self, written: &QemuOption) {
        if let Some(boot) = direct_boot::for_cd(written, &self.plan.stand_ins) {
            let with = direct_boot::argv(boot, self.line_names_firmware);
            self.replace(
                written,
                SubstitutionKind::StandIn,
                &with,
                direct_boot::REASON,
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

    /// `option` with its relative image path made full under
    /// [`Plan::images_in`], the change declared; `None` when nothing changes.
    fn located(&mut self, option: &QemuOption) -> Option<QemuOption> {
        let dir = self.plan.images_in.as_ref()?;
        let (located, declared) = images::named_in_full(option, dir)?;
        self.substitutions.push(declared);
        Some(located)
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

    /// Declares the stand-in `option` names, once however often it is named.
    fn note_stand_in(&mut self, option: &QemuOption) {
        let Some(declared) = images::stand_in_named_by(option, &self.plan.stand_ins) else {
            return;
        };
        let already = self
            .substitutions
            .iter()
            .any(|s| s.kind == declared.kind && s.original == declared.original);
        if !already {
            self.substitutions.push(declared);
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

fn words(items: &[&str]) -> Vec<String> {
    items.iter().map(|&item| item.to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use rstest::rstest;

    use super::fixtures::{
        declared, plan, rewrite_text, CLONED_VM2, SOCKET_VM1, SOCKET_VM2, TAP_VM1, TAP_VM2,
    };
    use super::*;
    use crate::vm::args::CONTROL_CHARDEV_ID;

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
}

//! The `guest:direct` stand-in, the one substitution that replaces an option.
//!
//! Every other stand-in keeps the line and swaps the file (see
//! [`super::images`]). A CD that the built-in guest stands in for with a
//! direct boot instead becomes QEMU loading the guest's kernel and initramfs
//! itself: `-cdrom NAME` is replaced by `-kernel`, `-initrd` and `-append`,
//! with the plan's firmware first where the handout's line names none.

use crate::vm::args::path_text;
use crate::vm::cmdline::QemuOption;

use super::plan::{DirectBoot, StandIn};

pub(super) const REASON: &str = "the lab boots the ISO's guest directly (QEMU loads its kernel \
     and initramfs), without the boot loader and the kernel's decompression, and with qboot, \
     QEMU's minimal firmware, where QEMU has it, since how this VM boots is not what the lab shows";

/// The direct boot that stands in for the CD `option` names, if any.
pub(super) fn for_cd<'a>(option: &QemuOption, stand_ins: &'a [StandIn]) -> Option<&'a DirectBoot> {
    if option.name() != "-cdrom" {
        return None;
    }
    let file = option.value.as_deref()?;
    stand_ins
        .iter()
        .find(|s| s.name == file)
        .and_then(|s| s.direct_boot.as_ref())
}

/// What replaces the CD: `boot`'s firmware, unless `line_names_firmware`
/// (the handout's line chose its own, and QEMU takes one `-bios`), then its
/// kernel, initramfs and kernel command line.
pub(super) fn argv(boot: &DirectBoot, line_names_firmware: bool) -> Vec<String> {
    let firmware = boot
        .firmware
        .as_ref()
        .filter(|_| !line_names_firmware)
        .map(|rom| ["-bios".to_owned(), rom.clone()]);
    firmware
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
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use rstest::rstest;

    use super::super::fixtures::{declared, plan, SOCKET_VM1};
    use super::super::{rewrite, SubstitutionKind};
    use super::*;
    use crate::vm::args::Accel;
    use crate::vm::cmdline::CommandLine;

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
}

//! The image files a line names, as the rewriter sees them.
//!
//! A stand-in keeps the line as printed: the runner puts labcheck's file in
//! the work dir under the handout's name, and the rewriter only declares it.
//! When QEMU runs outside the work dir ([`super::Plan::images_in`]), each image
//! named relative to it is given by its full path instead, declared too.

use std::path::Path;

use crate::vm::args::{path_text, Substitution, SubstitutionKind};
use crate::vm::cmdline::{KeyValues, QemuOption};

use super::plan::StandIn;

/// Options whose value names a file directly.
const FILE_OPTIONS: &[&str] = &[
    "-cdrom", "-hda", "-hdb", "-hdc", "-hdd", "-kernel", "-initrd",
];

const REASON_IMAGE_PATH: &str = "QEMU runs outside the submission's work dir (where it would look \
     its firmware up first), so the image is named by its full path";
const REASON_STAND_IN: &str =
    "the handout's image is not available here; labcheck's guest stands in under the same name";

/// `option` with its relative image path made full under `dir`, and the
/// substitution that declares it; `None` when nothing changes.
pub(super) fn named_in_full(option: &QemuOption, dir: &Path) -> Option<(QemuOption, Substitution)> {
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
    let declared = Substitution {
        kind: SubstitutionKind::ImagePath,
        original: file,
        replacement: full,
        reason: REASON_IMAGE_PATH.to_owned(),
    };
    let located = QemuOption {
        value: Some(value),
        ..option.clone()
    };
    Some((located, declared))
}

/// The declaration of the stand-in whose name `option` uses, if any.
pub(super) fn stand_in_named_by(
    option: &QemuOption,
    stand_ins: &[StandIn],
) -> Option<Substitution> {
    let file = file_named_by(option)?;
    let stand_in = stand_ins.iter().find(|s| s.name == file)?;
    Some(Substitution {
        kind: SubstitutionKind::StandIn,
        original: stand_in.name.clone(),
        replacement: path_text(&stand_in.path),
        reason: REASON_STAND_IN.to_owned(),
    })
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

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use rstest::rstest;

    use super::super::fixtures::{plan, rewrite_text, SOCKET_VM1};
    use super::super::{rewrite, Plan};
    use super::*;
    use crate::vm::args::Accel;
    use crate::vm::cmdline::CommandLine;

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

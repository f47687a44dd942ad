//! Lab files, end to end: every file in fixtures/bad-labs is rejected with a
//! stable diagnostic, and a full valid lab parses to the model it describes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use labcheck::scenario::model::{
    Action, Check, DigestMode, FieldExpect, GuestForm, ImageStandIn, Interaction,
};
use labcheck::scenario::{load, parse, LabFileError};
use miette::{GraphicalReportHandler, GraphicalTheme};
use rstest::rstest;

/// Renders a diagnostic the way snapshots keep it: no colour, ASCII, fixed
/// width, then the plain `file:line:col: message` lines.
fn render(error: &LabFileError) -> String {
    let mut rendered = String::new();
    GraphicalReportHandler::new_themed(GraphicalTheme::none())
        .with_width(100)
        .with_links(false)
        .render_report(&mut rendered, error)
        .expect("rendering into a String cannot fail");
    format!(
        "{rendered}\n--- located messages ---\n{}\n",
        error.located_messages().join("\n")
    )
}

#[rstest]
fn bad_lab_is_rejected_with_its_position(#[files("../fixtures/bad-labs/*.toml")] path: PathBuf) {
    let text = std::fs::read_to_string(&path).expect("fixture is readable");
    let file_name = path.file_name().expect("fixture has a file name");
    // A relative name keeps the snapshots independent of the checkout's path.
    let shown = Path::new("fixtures/bad-labs").join(file_name);
    let error = match parse(&shown, &text) {
        Ok(lab) => panic!("{} should be rejected, parsed as {lab:?}", path.display()),
        Err(error) => error,
    };
    let located = error.located_messages();
    assert!(
        !located.is_empty(),
        "no problem reported for {}",
        path.display()
    );
    for line in &located {
        let prefix = format!("{}:", shown.display());
        let position = line.strip_prefix(&prefix).unwrap_or_default();
        let mut parts = position.splitn(3, ':');
        let numbers = (parts.next(), parts.next());
        assert!(
            matches!(numbers, (Some(l), Some(c)) if l.parse::<usize>().is_ok() && c.parse::<usize>().is_ok()),
            "not file:line:col: {line}"
        );
    }
    let name = Path::new(file_name)
        .file_stem()
        .and_then(|stem| stem.to_str())
        .expect("fixture names are UTF-8");
    insta::assert_snapshot!(name, render(&error));
}

const GOOD_LAB: &str = r#"[lab]
id = "clone-cow"
title = "Cloning a QEMU VM: a copy-on-write clone"
handout = "Lab - Cloning a QEMU VM to create another Virtual machine"

[images]
"vm1.qcow2" = "guest:disk"
"alpine-standard-3.20.0-x86_64.iso" = "guest:iso"

[vm.vm2]
qemu = """qemu-system-x86_64 -hda vm2.qcow2 \
-m 1024 \
-net user \
-net nic,macaddr=52:54:00:12:34:56"""

[vm.vm1]
qemu = '''qemu-system-x86_64 -hda vm1.qcow2 \
-m 1024'''

[[step]]
name = "Create a partial clone"
host = "qemu-img create -f qcow2 -b vm1.qcow2 vm2.qcow2"
erratum = { reason = "QEMU ≥ 6.1 requires the backing format", fix = "qemu-img create -f qcow2 -F qcow2 -b vm1.qcow2 vm2.qcow2", observed = { exit = 1, output = "Backing file specified without backing format" } }

[[step]]
name = "vm2.qcow2 is backed by vm1.qcow2"
check = { qemu-img-info = "vm2.qcow2", field = "backing-filename", equals = "vm1.qcow2" }

[[step]]
name = "Boot VM2"
boot = "vm2"
timeout = "60s"

[[step]]
name = "The NIC has the MAC from the command line"
on = "vm2"
run = "cat /sys/class/net/eth0/address"
expect = { output = ["52:54:00:12:34:56"], matches = '^52:54', absent = "error" }

[[step]]
name = "Interactive"
on = "vm2"
interact = [ { send = "ping -c 1 127.0.0.1\n" }, { expect = "1 packets received" } ]

[[step]]
name = "Reboot"
reboot = "vm2"

[[step]]
name = "Digest"
check = { digest = "vm1.qcow2", save = "vm1-before" }

[[step]]
name = "Digest unchanged"
check = { digest = "vm1.qcow2", same-as = "vm1-before" }

[[step]]
name = "File"
check = { file = "vm2.qcow2", exists = true }

[[step]]
name = "Power off"
poweroff = "vm2"

[[step]]
name = "Boot both"
boot = ["vm1", "vm2"]
expect = { exit = 1 }

[[cleanup]]
name = "Remove the clone"
host = "rm -f vm2.qcow2"
"#;

#[test]
fn full_lab_parses_to_the_model() {
    let lab = parse(Path::new("labs/clone-cow.toml"), GOOD_LAB).expect("the lab is valid");
    assert_eq!(lab.id, "clone-cow");
    assert_eq!(
        lab.handout,
        "Lab - Cloning a QEMU VM to create another Virtual machine"
    );
    assert_eq!(lab.source, Path::new("labs/clone-cow.toml"));
    assert_eq!(
        lab.images,
        [
            ImageStandIn {
                name: "vm1.qcow2".into(),
                form: GuestForm::Disk
            },
            ImageStandIn {
                name: "alpine-standard-3.20.0-x86_64.iso".into(),
                form: GuestForm::Iso
            },
        ],
        "images in file order"
    );

    let vm_names: Vec<&str> = lab.vms.iter().map(|vm| vm.name.as_str()).collect();
    assert_eq!(vm_names, ["vm2", "vm1"], "VMs in file order");
    // TOML's `"""` joins lines at a trailing backslash; `'''` keeps it.
    assert_eq!(
        lab.vms[0].qemu,
        "qemu-system-x86_64 -hda vm2.qcow2 -m 1024 -net user -net nic,macaddr=52:54:00:12:34:56"
    );
    assert_eq!(
        lab.vms[1].qemu,
        "qemu-system-x86_64 -hda vm1.qcow2 \\\n-m 1024"
    );
    assert_eq!(
        (lab.vms[0].location.line, lab.vms[0].location.column),
        (10, 1)
    );

    assert_eq!(lab.steps.len(), 11);
    assert_eq!(lab.cleanup.len(), 1);
    let step = |name: &str| {
        lab.steps
            .iter()
            .chain(&lab.cleanup)
            .find(|step| step.name == name)
            .unwrap_or_else(|| panic!("no step {name}"))
    };

    let clone = step("Create a partial clone");
    assert_eq!(
        (clone.location.line, clone.location.column),
        (20, 1),
        "the [[step]] header"
    );
    assert!(
        matches!(&clone.action, Action::Host { command } if command.starts_with("qemu-img create"))
    );
    assert_eq!(
        clone.expect.exit,
        Some(0),
        "host commands default to exit 0"
    );
    let erratum = clone.erratum.as_ref().expect("erratum");
    assert_eq!(
        erratum.fix.as_deref(),
        Some("qemu-img create -f qcow2 -F qcow2 -b vm1.qcow2 vm2.qcow2")
    );
    assert_eq!(erratum.observed.exit, Some(1));
    assert_eq!(
        erratum.observed.output,
        ["Backing file specified without backing format"]
    );

    let Action::Check(Check::QemuImgInfo {
        image,
        field,
        expect,
    }) = &step("vm2.qcow2 is backed by vm1.qcow2").action
    else {
        panic!("not a qemu-img-info check");
    };
    assert_eq!(
        (image.as_str(), field.as_str()),
        ("vm2.qcow2", "backing-filename")
    );
    assert_eq!(*expect, FieldExpect::Equals(serde_json::json!("vm1.qcow2")));

    let boot = step("Boot VM2");
    assert!(matches!(&boot.action, Action::Boot { vms } if vms == &["vm2"]));
    assert_eq!(boot.timeout, Some(Duration::from_secs(60)));
    assert_eq!(boot.expect.exit, None, "boot has no default exit status");

    let mac = step("The NIC has the MAC from the command line");
    assert!(matches!(&mac.action, Action::Guest { vm, .. } if vm == "vm2"));
    assert_eq!(mac.expect.exit, Some(0));
    assert_eq!(mac.expect.output, ["52:54:00:12:34:56"]);
    assert_eq!(mac.expect.absent, ["error"]);
    assert!(mac
        .expect
        .matches
        .as_ref()
        .is_some_and(|regex| regex.is_match("52:54:00")));

    let Action::Interact { vm, script } = &step("Interactive").action else {
        panic!("not interactive");
    };
    assert_eq!(vm, "vm2");
    assert!(matches!(&script[0], Interaction::Send(text) if text == "ping -c 1 127.0.0.1\n"));
    assert!(
        matches!(&script[1], Interaction::Expect(regex) if regex.as_str() == "1 packets received")
    );
    assert_eq!(
        step("Interactive").expect.exit,
        None,
        "interact has no default exit status"
    );

    assert!(matches!(&step("Reboot").action, Action::Reboot { vm } if vm == "vm2"));
    assert!(matches!(&step("Power off").action, Action::Poweroff { vm } if vm == "vm2"));
    assert!(matches!(
        &step("Digest").action,
        Action::Check(Check::Digest { mode: DigestMode::Save(name), .. }) if name == "vm1-before"
    ));
    assert!(matches!(
        &step("Digest unchanged").action,
        Action::Check(Check::Digest { mode: DigestMode::SameAs(name), .. }) if name == "vm1-before"
    ));
    assert!(matches!(
        &step("File").action,
        Action::Check(Check::File { path, exists: true }) if path == "vm2.qcow2"
    ));
    assert!(matches!(&step("Boot both").action, Action::Boot { vms } if vms == &["vm1", "vm2"]));
    assert_eq!(step("Boot both").expect.exit, Some(1));
    assert!(
        matches!(&step("Remove the clone").action, Action::Host { command } if command == "rm -f vm2.qcow2")
    );
}

#[test]
fn load_reads_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("clone-cow.toml");
    std::fs::write(&path, GOOD_LAB).expect("write lab file");
    let lab = load(&path).expect("the lab is valid");
    assert_eq!(lab.source, path);
    assert_eq!(lab.steps[0].location.file, path);
}

#[test]
fn an_unreadable_file_is_an_error_that_names_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("missing.toml");
    let error = load(&path).expect_err("there is no such file");
    assert!(matches!(error, LabFileError::Unreadable { .. }));
    let located = error.located_messages();
    assert_eq!(located.len(), 1);
    assert!(
        located[0].starts_with(&format!("{}: cannot read lab file", path.display())),
        "{located:?}"
    );
    assert!(located[0].contains("No such file"), "{located:?}");
}

/// The first TOML example of docs/lab-format.md is a complete lab; it must
/// stay one.
#[test]
fn the_documented_example_is_a_valid_lab() {
    let doc_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/lab-format.md");
    let doc = std::fs::read_to_string(&doc_path).expect("docs/lab-format.md is readable");
    let example = doc
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("the doc has a TOML example");
    let lab = parse(Path::new("docs/lab-format.md"), example)
        .unwrap_or_else(|error| panic!("{}", error.located_messages().join("\n")));
    assert!(!lab.steps.is_empty());
}

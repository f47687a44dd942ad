//! The runner's step logic on host-only labs: no VM, so these run anywhere
//! and fast. Errata (reproduced, stale, or failing another way), skipping
//! after a failure, and cleanup that always runs.

mod support;

use std::path::{Path, PathBuf};

use labcheck::events::EventSink;
use labcheck::guest::Artifacts;
use labcheck::report::{CanonicalLab, LabReport, ReportBuilder};
use labcheck::runner::{run_lab, RunContext};
use labcheck::vm::{Accel, Probe};
use support::{assert_no_host_link, assert_nothing_left};

/// A context whose guest is never used: these labs boot nothing.
fn context(root: &Path) -> RunContext {
    let unused = PathBuf::from("/nonexistent");
    RunContext {
        guest: Artifacts {
            dir: unused.clone(),
            iso: unused.clone(),
            disk_qcow2: unused.clone(),
            vmlinux: unused.clone(),
            initramfs: unused,
            digest: "test".into(),
        },
        probe: Probe {
            accel: Accel::Tcg,
            detail: "not probed: host-only test".into(),
        },
        out_dir: root.join("out"),
        work_root: root.join("work"),
        keep: false,
        namespaces: labcheck::net::NamespaceKind::for_this_process(),
        parallel: false,
        jail_slot: 0,
    }
}

async fn run(lab_text: &str) -> LabReport {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("lab.toml");
    std::fs::write(&file, lab_text).expect("write lab");
    let lab = labcheck::scenario::load(&file).expect("valid lab");
    let ctx = context(dir.path());
    let (events, mut received) = EventSink::channel();
    run_lab(&lab, &ctx, &events).await.expect("lab starts");
    drop(events);
    let mut builder = ReportBuilder::new();
    while let Some(event) = received.recv().await {
        builder.apply(&event);
    }
    assert_nothing_left(&dir.path().join("work"));
    builder.finish().labs.remove(0)
}

const ERRATA_LAB: &str = r#"
[lab]
id = "errata"
title = "Errata, stale errata and errata that fail another way"
handout = "none"

[[step]]
name = "A handout command that fails in the known way; the fix works"
host = "echo 'Backing file specified without backing format' >&2; exit 1"
erratum = { reason = "needs -F", fix = "echo fixed", observed = { exit = 1, output = "without backing format" } }

[[step]]
name = "An erratum that no longer reproduces"
host = "echo works now"
erratum = { reason = "was broken once", fix = "echo fixed", observed = { exit = 1 } }

[[step]]
name = "A failure that is not the known erratum"
host = "echo something else >&2; exit 2"
erratum = { reason = "needs -F", fix = "echo fixed", observed = { exit = 1 } }

[[step]]
name = "Skipped after the failure"
host = "echo never"

[[cleanup]]
name = "Cleanup runs anyway"
host = "echo cleaned"
expect = { output = "cleaned" }
"#;

#[tokio::test(flavor = "multi_thread")]
async fn errata_skips_and_cleanup() {
    let report = run(ERRATA_LAB).await;
    insta::assert_yaml_snapshot!(CanonicalLab::of(&report));
}

const DEADLINE_LAB: &str = r#"
[lab]
id = "deadline"
title = "A host command past its deadline is killed, with its whole group"
handout = "none"

[[step]]
name = "Never ends"
host = "sleep 1000 & sleep 1000"
timeout = "200ms"
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_host_command_past_its_deadline_fails() {
    let report = run(DEADLINE_LAB).await;
    let step = &report.steps[0];
    assert_eq!(step.outcome, labcheck::report::Outcome::Failed);
    assert!(
        step.mismatches[0].contains("did not finish within 1.0s"),
        "{:?}",
        step.mismatches
    );
}

/// The tap lab's set-up with a cleanup that deletes the taps but forgets the
/// bridge: labcheck's own check must catch it.
const FORGOTTEN_BRIDGE_LAB: &str = r#"
[lab]
id = "forgotten-bridge"
title = "A cleanup that forgets the bridge"
handout = "Lab - VM1 to VM2 communication over Tap device"
network = "namespace"

[[step]]
name = "Set up as the handout does"
host = '''set -e
sudo ip tuntap add tap0 mode tap user $(whoami)
sudo ip tuntap add tap1 mode tap user $(whoami)
sudo ip link add name br0 type bridge
sudo ip link set tap0 master br0
sudo ip link set tap1 master br0
sudo ip link set br0 up'''

[[step]]
name = "Clean up, forgetting the bridge"
host = '''sudo ip tuntap del mode tap dev tap0
sudo ip tuntap del mode tap dev tap1'''

[[step]]
name = "No tap or bridge device is left"
check = { no-links = ["tun", "bridge"] }
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_cleanup_that_forgets_the_bridge_is_caught() {
    let report = run(FORGOTTEN_BRIDGE_LAB).await;
    insta::assert_yaml_snapshot!(CanonicalLab::of(&report));
    let check = &report.steps[2];
    assert_eq!(check.outcome, labcheck::report::Outcome::Failed);
    assert_eq!(check.mismatches, ["left in the namespace: br0 (bridge)"]);
    // The bridge was the namespace's, never the host's, and went with it.
    assert_no_host_link("br0");
    assert_no_host_link("tap0");
}

const BACKGROUND_LAB: &str = r#"
[lab]
id = "background"
title = "Host commands in the background, probes and waits"
handout = "none"
network = "namespace"

[[step]]
name = "A slow writer"
host = "sleep 0.3; echo ready > flag; echo written"
background = "writer"

[[step]]
name = "The flag appears"
probe = "cat flag"
expect = { output = "ready" }

[[step]]
name = "The writer ended well"
wait = "writer"
expect = { output = "written" }

[[step]]
name = "Something never waited for"
host = 'cp "$(command -v sleep)" lingering && exec "$PWD/lingering" 1000'
background = "lingering"

[[step]]
name = "A claim"
not-checked = "cannot be shown here"

[[step]]
name = "A probe that never passes"
probe = "echo not yet; false"
timeout = "200ms"
"#;

#[tokio::test(flavor = "multi_thread")]
async fn background_commands_probes_and_waits() {
    // `run` also checks that the never-waited command was killed: its
    // command line names the work dir.
    let report = run(BACKGROUND_LAB).await;
    use labcheck::report::Outcome::*;
    let outcomes: Vec<_> = report.steps.iter().map(|s| s.outcome).collect();
    assert_eq!(
        outcomes,
        [Passed, Passed, Passed, Passed, NotChecked, Failed]
    );
    assert_eq!(
        report.steps[4].note.as_deref(),
        Some("cannot be shown here")
    );
    let probe = &report.steps[5];
    assert!(
        probe
            .mismatches
            .iter()
            .any(|m| m.contains("still not so after")),
        "{:?}",
        probe.mismatches
    );
    assert_eq!(probe.output, "not yet");
}

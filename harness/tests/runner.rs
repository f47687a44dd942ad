//! The runner's step logic on host-only labs: no VM, so these run anywhere
//! and fast. Errata (reproduced, stale, or failing another way), skipping
//! after a failure, and cleanup that always runs.

mod support;

use std::path::{Path, PathBuf};

use labcheck::guest::Artifacts;
use labcheck::report::{CanonicalLab, LabReport, ReportBuilder};
use labcheck::runner::{run_lab, EventSink, RunContext};
use labcheck::vm::{Accel, Probe};
use support::assert_nothing_left;

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

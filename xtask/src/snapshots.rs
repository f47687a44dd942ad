//! Snapshot review for `cargo xtask verify-labs`: each lab's canonical report
//! against its committed snapshot in `scenarios/snapshots/`, the same files
//! and the same comparison (insta's) as the lab tests use.

use std::path::Path;

use labcheck::report::{CanonicalLab, Report};

use super::Failure;

/// Compares every lab of the report in `out` with its snapshot. insta
/// prints a diff for each one that differs; with `accept`, the snapshot is
/// updated instead. Without it, insta leaves a `.snap.new` beside each
/// differing snapshot unless `INSTA_UPDATE` says otherwise, so
/// `cargo insta review` works too.
pub fn review(out: &Path, snapshots: &Path, accept: bool) -> Result<(), Failure> {
    let path = out.join("report.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let report: Report = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not a report: {e}", path.display()))?;
    if accept {
        // Read by insta when it asserts: write the new snapshot, no .snap.new.
        std::env::set_var("INSTA_UPDATE", "always");
    }
    let differing: Vec<&str> = report
        .labs
        .iter()
        .filter(|lab| !matches_snapshot(lab, snapshots))
        .map(|lab| lab.id.as_str())
        .collect();
    match (differing.is_empty(), accept) {
        (true, _) => Ok(()),
        (false, true) => {
            eprintln!("xtask: updated the snapshots of {}", differing.join(", "));
            Ok(())
        }
        (false, false) => Err(Failure::Message(format!(
            "{} differ from their snapshots in {} (diffs above). If the change is intended, \
             accept it: `cargo xtask verify-labs --accept` (or `cargo insta review`)",
            differing.join(", "),
            snapshots.display()
        ))),
    }
}

/// Whether `lab`'s canonical report equals its snapshot. insta reports a
/// difference by panicking (having printed the diff): caught here, with the
/// panic message itself silenced, as it only repeats the diff's verdict.
fn matches_snapshot(lab: &labcheck::report::LabReport, snapshots: &Path) -> bool {
    let canonical = CanonicalLab::of(lab);
    let quiet = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let outcome = std::panic::catch_unwind(|| {
        insta::with_settings!({
            snapshot_path => snapshots,
            prepend_module_to_snapshot => false,
            omit_expression => true,
        }, {
            insta::assert_yaml_snapshot!(lab.id.as_str(), canonical);
        });
    });
    std::panic::set_hook(quiet);
    outcome.is_ok()
}

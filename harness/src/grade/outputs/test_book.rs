//! Test support for every renderer of grading results: a gradebook whose
//! students hold every check status and visibility, a lab that could not be
//! graded, and text a hostile student could make a check observe.

use crate::grade::model::{
    CheckResult, CheckStatus, Gradebook, LabResult, LabRubric, StudentResult, Visibility,
    SCHEMA_VERSION,
};

/// What a student could make a check observe: backtick runs longer
/// than a plain fence, HTML, table pipes, a CDATA end, an ANSI escape
/// and a NUL.
pub(super) const HOSTILE: &str = "$ ping 10.0.0.2\n```` not a fence\n<script>alert(1)</script> | a | b |\n]]> & \u{1b}[31mred\u{0}";

pub(super) fn check(
    id: &str,
    status: CheckStatus,
    visibility: Visibility,
    points: u32,
) -> CheckResult {
    CheckResult {
        id: id.to_string(),
        title: format!("{id} works"),
        points,
        awarded: if status == CheckStatus::Passed {
            points
        } else {
            0
        },
        status,
        visibility,
        slots: vec![format!("socket/{id}.qemu")],
        expected: format!("{id} to hold"),
        observed: format!("{id} held"),
        hint: None,
    }
}

pub(super) fn lab(id: &str, checks: Vec<CheckResult>) -> LabResult {
    LabResult {
        lab: id.to_string(),
        title: format!("The {id} lab"),
        max_points: checks.iter().map(|c| c.points).sum(),
        not_gradable: None,
        checks,
        notes: Vec::new(),
        duration_ms: 61_500,
    }
}

/// Alice's labs hold every status and visibility; the second student,
/// with a name to break CSV and XML, has a lab that could not be graded.
pub(super) fn book() -> Gradebook {
    let mut failed = check("ping-vm1", CheckStatus::Failed, Visibility::Visible, 4);
    failed.title = "VM2 pings VM1 | *twice* <b>".to_string();
    failed.observed = HOSTILE.to_string();
    failed.hint = Some("Both VMs need the same `-netdev socket` port".to_string());
    let mut skipped = check("ssh-vm1", CheckStatus::Skipped, Visibility::Visible, 2);
    skipped.observed = "not run: ping-vm1 did not pass".to_string();
    let alice = StudentResult {
        student: "alice".to_string(),
        labs: vec![
            lab(
                "socket",
                vec![
                    check("boot-vm1", CheckStatus::Passed, Visibility::Visible, 1),
                    failed,
                    skipped,
                    check("mtu", CheckStatus::Passed, Visibility::Hidden, 2),
                    check(
                        "mac-unique",
                        CheckStatus::Failed,
                        Visibility::AfterDueDate,
                        3,
                    ),
                ],
            ),
            lab(
                "tap",
                vec![
                    check("bridge", CheckStatus::Passed, Visibility::Visible, 5),
                    check("forward", CheckStatus::Failed, Visibility::Hidden, 5),
                ],
            ),
        ],
        problems: vec![],
    };
    let mut not_gradable = lab("tap", vec![]);
    not_gradable.max_points = 10;
    not_gradable.not_gradable = Some("QEMU could not start: <out of memory>".to_string());
    let bob = StudentResult {
        student: "=HYPERLINK(\"x\",\"<b>&\")".to_string(),
        labs: vec![
            lab(
                "socket",
                vec![check(
                    "boot-vm1",
                    CheckStatus::Passed,
                    Visibility::Visible,
                    1,
                )],
            ),
            not_gradable,
        ],
        problems: vec![
            "`evil` is a symbolic link: not read".to_string(),
            "disk_*big*.qcow2 is over the size limit of 64 MiB".to_string(),
        ],
    };
    Gradebook {
        schema: SCHEMA_VERSION,
        labs: vec![
            LabRubric {
                id: "socket".to_string(),
                title: "The socket lab".to_string(),
                max_points: 12,
            },
            LabRubric {
                id: "tap".to_string(),
                title: "The tap lab".to_string(),
                max_points: 10,
            },
        ],
        students: vec![alice, bob],
    }
}

pub(super) fn alice() -> StudentResult {
    book().students.remove(0)
}

pub(super) fn bob() -> StudentResult {
    book().students.remove(1)
}

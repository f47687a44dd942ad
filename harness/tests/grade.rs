//! `labcheck grade` and `labcheck selftest` on real VMs: the sample
//! submissions of `fixtures/submissions/` get their expected scores, the
//! hostile ones gain nothing and harm nothing, and every shipped lab's
//! reference submission scores full marks, run after run.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use labcheck::grade::model::{CheckStatus, StudentResult};
use support::{assert_nothing_left, workspace_root};

const GRADED_LABS: &str = "clone-cow,clone-full,socket,tap";

/// Files the hostile `mallory` tries to write outside her work dir.
const OUTSIDE: [&str; 2] = [
    "/tmp/labcheck-pwned-by-mallory",
    "/labcheck-pwned-by-mallory",
];

fn labcheck(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_labcheck"));
    command
        .current_dir(workspace_root())
        .env("LABCHECK_WORK_ROOT", dir.join("work"));
    command
}

/// A temp dir the sandbox users can pass through (a `TempDir` is 0700):
/// the work dirs in it are theirs.
fn grading_area() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod the temp dir");
    dir
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn results(out: &Path, student: &str) -> StudentResult {
    let path = out.join("results").join(format!("{student}.json"));
    let json = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&json).expect("results parse")
}

/// Every check of every student, one line each: the scores' evidence.
fn check_table(out: &Path, students: &[&str]) -> String {
    let mut lines = Vec::new();
    for student in students {
        for lab in results(out, student).labs {
            for check in &lab.checks {
                let status = match check.status {
                    CheckStatus::Passed => "passed",
                    CheckStatus::Failed => "failed",
                    CheckStatus::Skipped => "skipped",
                };
                lines.push(format!(
                    "{student:<10} {:<10} {:<18} {status:<7} {}/{}",
                    lab.lab, check.id, check.awarded, check.points
                ));
            }
        }
    }
    lines.join("\n")
}

/// The students in gradebook order.
fn students(gradebook: &str) -> Vec<&str> {
    gradebook
        .lines()
        .skip(1)
        .filter_map(|row| row.split(',').next())
        .collect()
}

fn feedback(out: &Path, student: &str) -> String {
    std::fs::read_to_string(out.join("feedback").join(format!("{student}.md")))
        .expect("feedback written")
}

#[test]
#[allow(
    clippy::print_stdout,
    reason = "the feedback explains a failure; nextest shows it only then"
)]
fn the_sample_submissions_get_their_expected_scores() {
    let area = grading_area();
    let out = area.path().join("out");
    let graded = labcheck(area.path())
        .args([
            "grade",
            "--lab",
            GRADED_LABS,
            "fixtures/submissions",
            "--jobs",
            "2",
        ])
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run labcheck grade");
    let shown = text(&graded);
    // Some checks fail (the mistakes), none is not gradable.
    assert_eq!(graded.status.code(), Some(1), "{shown}");

    let gradebook = std::fs::read_to_string(out.join("gradebook.csv")).expect("gradebook");
    // Shown only when the test fails (nextest keeps a passing test's output
    // to itself): why each check went as it did, before the out dir is gone.
    println!("{shown}");
    for student in students(&gradebook) {
        println!("── feedback of {student}\n{}", feedback(&out, student));
    }
    insta::assert_snapshot!("checks", check_table(&out, &students(&gradebook)));
    insta::assert_snapshot!("gradebook", gradebook);

    // Each hostile sample's feedback says what was refused or cut off.
    for (student, said) in [
        ("mallory", "/etc/shadow: No such file or directory"),
        ("hostfile", "refused: -hda /etc/shadow"),
        (
            "backing",
            "`/etc/passwd` leads to /etc/passwd, outside your work dir",
        ),
        ("flood", "[stopped: more than 65536 bytes of output]"),
        ("forever", "[stopped: still running after"),
        ("forkbomb", "Cannot fork"),
    ] {
        let text = feedback(&out, student);
        assert!(
            text.contains(said),
            "{student}'s feedback lacks {said:?}:\n{text}"
        );
    }
    // clone-cow's `vm1-unchanged` is shown after the due date only.
    let alice = feedback(&out, "alice");
    assert!(alice.contains("1 check is hidden."), "{alice}");
    assert!(!alice.contains("vm1-unchanged"), "{alice}");
    assert!(results(&out, "alice").labs[0]
        .checks
        .iter()
        .any(|check| check.id == "vm1-unchanged" && check.status == CheckStatus::Passed));
    for path in OUTSIDE {
        assert!(!Path::new(path).exists(), "mallory wrote {path}");
    }
    assert_nothing_left(&area.path().join("work"));
    assert_no_sandbox_process();
}

#[test]
fn selftest_passes_for_every_shipped_lab() {
    let area = grading_area();
    let mut labs: Vec<String> = std::fs::read_dir(workspace_root().join("scenarios"))
        .expect("scenarios")
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".toml").map(str::to_string)
        })
        .collect();
    labs.sort();
    let ran = labcheck(area.path())
        .arg("selftest")
        .args(&labs)
        .args(["--runs", "3", "--jobs", "2", "--out"])
        .arg(area.path().join("out"))
        .output()
        .expect("run labcheck selftest");
    let shown = text(&ran);
    assert_eq!(ran.status.code(), Some(0), "{shown}");
    assert!(
        shown.contains("selftest passed: the reference scores full marks and an empty submission 0, 3 times alike"),
        "{shown}"
    );
    // The labs without a rubric are named, not silently passed.
    assert!(shown.contains("network-types: no rubric"), "{shown}");
    assert_nothing_left(&area.path().join("work"));
    assert_no_sandbox_process();
}

/// No process of a grading slot's sandbox user (slots 0 and 1 at
/// `--jobs 2`) outlives the run.
fn assert_no_sandbox_process() {
    use labcheck::sandbox::Identity;
    if !Identity::for_slot(0).is_dedicated() {
        // Not root: the sandbox runs as this very user, whose processes
        // cannot be told apart from the test's own.
        return;
    }
    let uids: Vec<u32> = (0..2).map(|slot| Identity::for_slot(slot).uid()).collect();
    let left: Vec<String> = std::fs::read_dir("/proc")
        .expect("read /proc")
        .filter_map(|entry| {
            let status = std::fs::read_to_string(entry.ok()?.path().join("status")).ok()?;
            let uid: u32 = status
                .lines()
                .find_map(|line| line.strip_prefix("Uid:"))?
                .split_whitespace()
                .next()?
                .parse()
                .ok()?;
            uids.contains(&uid)
                .then(|| status.lines().next().unwrap_or("").to_string())
        })
        .collect();
    assert!(left.is_empty(), "sandbox processes left: {left:?}");
}

//! The files a grading run leaves: the instructor's full view of each
//! submission (`results/<student>.json`), the student's feedback
//! (`feedback/<student>.md`), a gradebook (`gradebook.csv`), Gradescope's
//! autograder results (`gradescope/<student>/results.json`) and a JUnit
//! report (`junit.xml`).
//!
//! Each renderer is a pure function of the [`Gradebook`] model and decides
//! no score of its own. Much of what they render was typed by a student
//! (names, and what a check observed), so every format escapes it: Markdown
//! by code fences and backslashes, CSV by RFC 4180 quoting and a defused
//! leading formula character, XML by entities.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::model::{CheckResult, CheckStatus, Gradebook, LabResult, StudentResult, Visibility};
use crate::report::junit::{attr, seconds, text_content};
use crate::report::markdown::{fenced, longest_backtick_run};

/// `results/<student>.json`: the submission's whole result, hidden checks
/// and all.
pub fn student_json(result: &StudentResult) -> String {
    pretty_json(result)
}

/// `feedback/<student>.md`: what the student may see. Hidden checks, and
/// `after_due_date` ones before the due date, are only counted.
pub fn feedback(result: &StudentResult, after_due_date: bool) -> String {
    let mut out = format!(
        "# Feedback for {}\n\n{}\n",
        code(&result.student),
        total_sentence(result, after_due_date)
    );
    if !result.problems.is_empty() {
        out.push_str("\n## Problems with your submission\n\n");
        for problem in &result.problems {
            out.push_str(&format!("- {}\n", inline(problem)));
        }
    }
    for lab in &result.labs {
        out.push_str(&lab_feedback(lab, after_due_date));
    }
    out
}

fn total_sentence(result: &StudentResult, after_due_date: bool) -> String {
    let hidden = result
        .labs
        .iter()
        .flat_map(|lab| &lab.checks)
        .any(|check| !is_shown(check.visibility, after_due_date));
    match result.total() {
        Some(_) if hidden => "Total: given once every check can be shown.".to_string(),
        Some(total) => format!("Total: **{total} / {}** points.", result.max_points()),
        None => "Total: none yet, because a lab below could not be graded \
                 (this is not a zero)."
            .to_string(),
    }
}

fn lab_feedback(lab: &LabResult, after_due_date: bool) -> String {
    let mut out = format!("\n## Lab {}: {}\n\n", code(&lab.lab), inline(&lab.title));
    if let Some(reason) = &lab.not_gradable {
        out.push_str(&format!(
            "Not gradable: {}. The grader could not grade this lab; no score is \
             given for it (this is not a zero).\n",
            inline(reason)
        ));
        return out;
    }
    let (shown, hidden): (Vec<&CheckResult>, Vec<&CheckResult>) = lab
        .checks
        .iter()
        .partition(|check| is_shown(check.visibility, after_due_date));
    // With checks hidden, the lab's whole score would tell how they went.
    let (awarded, points) = shown.iter().fold((0, 0), |(a, p), check| {
        (a + check.awarded, p + check.points)
    });
    out.push_str(&if hidden.is_empty() {
        format!("Score: **{awarded} / {points}** points.\n")
    } else {
        format!("Score on the checks shown: **{awarded} / {points}** points.\n")
    });
    for check in shown {
        out.push_str(&check_feedback(check));
    }
    match hidden.len() {
        0 => {}
        1 => out.push_str("\n1 check is hidden.\n"),
        n => out.push_str(&format!("\n{n} checks are hidden.\n")),
    }
    if !lab.notes.is_empty() {
        out.push_str("\n### What your files did\n\n");
        for note in &lab.notes {
            out.push_str(&fenced(&show_controls(note)));
        }
    }
    out
}

/// Whether the student may see a check now.
fn is_shown(visibility: Visibility, after_due_date: bool) -> bool {
    match visibility {
        Visibility::Visible => true,
        Visibility::Hidden => false,
        Visibility::AfterDueDate => after_due_date,
    }
}

fn check_feedback(check: &CheckResult) -> String {
    let mut out = format!(
        "\n### {} {}: {} / {} points, {}\n\nCheck {}. Expected: {}\n\n",
        status_mark(check.status),
        inline(&check.title),
        check.awarded,
        check.points,
        status_word(check.status),
        code(&check.id),
        inline(&check.expected),
    );
    if check.observed.is_empty() {
        out.push_str("Observed: nothing.\n");
    } else {
        let observed = show_controls(&check.observed);
        out.push_str(&format!("Observed:\n\n{}", fenced(&observed)));
    }
    if let Some(hint) = &check.hint {
        out.push_str(&format!("\nHint: {}\n", inline(hint)));
    }
    out
}

fn status_mark(status: CheckStatus) -> &'static str {
    match status {
        CheckStatus::Passed => "✓",
        CheckStatus::Failed => "✗",
        CheckStatus::Skipped => "–",
    }
}

fn status_word(status: CheckStatus) -> &'static str {
    match status {
        CheckStatus::Passed => "passed",
        CheckStatus::Failed => "failed",
        CheckStatus::Skipped => "skipped",
    }
}

/// Text as an inline code span, on one line.
fn code(text: &str) -> String {
    let one_line = show_controls(&text.replace(['\n', '\r'], " "));
    let ticks = "`".repeat(longest_backtick_run(&one_line) + 1);
    // A span that starts or ends with a backtick needs a space inside.
    let pad = if one_line.starts_with('`') || one_line.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{ticks}{pad}{one_line}{pad}{ticks}")
}

/// Text with its control characters (an ANSI escape, a NUL, a lone
/// carriage return) written as `\u{1b}`, so a terminal or browser shows
/// them instead of acting on them. Line breaks and tabs stay; a CRLF
/// (a serial console's line end) becomes a line break.
fn show_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.replace("\r\n", "\n").chars() {
        if c.is_control() && c != '\n' && c != '\t' {
            out.push_str(&c.escape_unicode().to_string());
        } else {
            out.push(c);
        }
    }
    out
}

/// Text inside a line of Markdown, shown as written: on one line (so it
/// cannot start a heading, list or block), with every character that could
/// open emphasis, a link, HTML, a table cell or math backslash-escaped
/// (CommonMark lets any ASCII punctuation be escaped).
fn inline(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' | '\r' => out.push(' '),
            c if c.is_control() => out.push_str(&c.escape_unicode().to_string()),
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '#' | '~' | '!' | '&' | '$' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// `gradebook.csv`: a row per student with each lab's score (or `not
/// gradable`), the total and the points available. RFC 4180, CRLF lines.
pub fn gradebook_csv(book: &Gradebook) -> String {
    let header = std::iter::once("student".to_string())
        .chain(book.labs.iter().map(|lab| lab.id.clone()))
        .chain(["total".to_string(), "max".to_string()]);
    let mut out = csv_row(header);
    for student in &book.students {
        let scores = book.labs.iter().map(|rubric| {
            student
                .labs
                .iter()
                .find(|lab| lab.lab == rubric.id)
                .map_or_else(|| "missing".to_string(), |lab| score_cell(lab.score()))
        });
        let row = std::iter::once(student.student.clone())
            .chain(scores)
            .chain([
                score_cell(student.total()),
                student.max_points().to_string(),
            ]);
        out.push_str(&csv_row(row));
    }
    out
}

fn score_cell(score: Option<u32>) -> String {
    score.map_or_else(|| NOT_GRADABLE.to_string(), |points| points.to_string())
}

const NOT_GRADABLE: &str = "not gradable";

fn csv_row(cells: impl Iterator<Item = String>) -> String {
    let cells: Vec<String> = cells.map(|cell| csv_cell(&cell)).collect();
    format!("{}\r\n", cells.join(","))
}

/// One CSV field. A spreadsheet runs a field that starts with `=`, `+`,
/// `-`, `@`, a tab or a carriage return as a formula, so such a field gets
/// a leading `'` (OWASP's advice on CSV injection); then a field holding a
/// comma, quote or line break is quoted, its quotes doubled (RFC 4180).
fn csv_cell(text: &str) -> String {
    let defused = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_string()
    };
    if defused.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", defused.replace('"', "\"\""))
    } else {
        defused
    }
}

/// `gradescope/<student>/results.json`, in the format of Gradescope's
/// autograder specification: a test per check, named `<lab>: <title>` and
/// numbered `<lab>.<check>`, with its points, status, visibility and
/// evidence. Names and outputs are declared plain text, so nothing a
/// student typed is read as HTML or Markdown.
///
/// A submission with a lab that could not be graded gets neither a `score`
/// nor `tests`, only an `output` saying which lab and why. The
/// specification makes the top-level score optional only when every test
/// carries one, and `tests` optional only when there is a top-level score;
/// a results file with neither gives Gradescope no score to record, so it
/// reports the run as an autograder failure (not the student's fault, no
/// score shown) instead of the zero or partial sum it would record from
/// per-test scores. The instructor regrades once the machine is fixed;
/// `results/<student>.json` keeps the checks that did run.
pub fn gradescope_json(result: &StudentResult) -> String {
    let execution_ms: u64 = result.labs.iter().map(|lab| lab.duration_ms).sum();
    let tests = result.total().map(|_| gradescope_tests(result));
    pretty_json(&GradescopeResults {
        score: result.total(),
        execution_time: execution_ms.div_ceil(1000),
        output: gradescope_summary(result),
        output_format: "text",
        test_output_format: "text",
        test_name_format: "text",
        // labcheck's own output is for the instructor's debugging.
        stdout_visibility: "hidden",
        tests,
    })
}

#[derive(Serialize)]
struct GradescopeResults {
    #[serde(skip_serializing_if = "Option::is_none")]
    score: Option<u32>,
    /// Seconds.
    execution_time: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<String>,
    output_format: &'static str,
    test_output_format: &'static str,
    test_name_format: &'static str,
    stdout_visibility: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    tests: Option<Vec<GradescopeTest>>,
}

#[derive(Serialize)]
struct GradescopeTest {
    name: String,
    number: String,
    score: u32,
    max_score: u32,
    status: &'static str,
    visibility: &'static str,
    output: String,
}

fn gradescope_tests(result: &StudentResult) -> Vec<GradescopeTest> {
    let mut tests = Vec::new();
    for (lab_number, lab) in (1..).zip(&result.labs) {
        for (check_number, check) in (1..).zip(&lab.checks) {
            tests.push(GradescopeTest {
                name: format!("{}: {}", lab.lab, check.title),
                number: format!("{lab_number}.{check_number}"),
                score: check.awarded,
                max_score: check.points,
                // Gradescope knows passed and failed only: a skipped check
                // earned nothing, and its output says why it did not run.
                status: match check.status {
                    CheckStatus::Passed => "passed",
                    CheckStatus::Failed | CheckStatus::Skipped => "failed",
                },
                visibility: match check.visibility {
                    Visibility::Visible => "visible",
                    Visibility::Hidden => "hidden",
                    Visibility::AfterDueDate => "after_due_date",
                },
                output: evidence(check),
            });
        }
    }
    tests
}

/// The top-level output, which students see: what the tests do not say,
/// the labs that could not be graded and the problems with the
/// submission's files. No lab scores: a score counts hidden tests, and
/// Gradescope hides the total while any test is hidden. None when there is
/// nothing to say.
fn gradescope_summary(result: &StudentResult) -> Option<String> {
    let mut lines: Vec<String> = result
        .labs
        .iter()
        .filter_map(|lab| {
            let reason = lab.not_gradable.as_ref()?;
            Some(format!(
                "{}: not gradable: {reason} (the autograder could not grade this lab; \
                 this is not a zero)",
                lab.lab
            ))
        })
        .collect();
    if !result.problems.is_empty() {
        lines.push("Problems with the submission:".to_string());
        lines.extend(result.problems.iter().map(|p| format!("- {p}")));
    }
    (!lines.is_empty()).then(|| show_controls(&lines.join("\n")))
}

/// A check's evidence as plain text, for Gradescope and JUnit. Observed
/// text of several lines starts on a line of its own.
fn evidence(check: &CheckResult) -> String {
    let observed_break = if check.observed.contains('\n') {
        "\n"
    } else {
        " "
    };
    let mut lines = vec![
        format!(
            "{}: {} / {} points",
            status_word(check.status),
            check.awarded,
            check.points
        ),
        format!("expected: {}", check.expected),
        format!("observed:{observed_break}{}", check.observed),
    ];
    if let Some(hint) = &check.hint {
        lines.push(format!("hint: {hint}"));
    }
    show_controls(&lines.join("\n"))
}

/// `junit.xml`: a `<testsuite>` per student, a `<testcase>` per check named
/// `<lab>::<check id>`, and an erroring `<testcase>` named `<lab>` for a
/// lab that could not be graded.
pub fn junit(book: &Gradebook) -> String {
    let counts = JunitCounts::of(book.students.iter().flat_map(cases));
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&format!(
        "<testsuites name=\"labcheck grade\" {}>\n",
        counts.attributes()
    ));
    for student in &book.students {
        write_junit_suite(&mut out, student);
    }
    out.push_str("</testsuites>\n");
    out
}

/// What JUnit reports as one test case.
enum Case<'a> {
    Check(&'a LabResult, &'a CheckResult),
    NotGradable(&'a LabResult, &'a str),
}

fn cases(student: &StudentResult) -> Vec<Case<'_>> {
    let mut cases = Vec::new();
    for lab in &student.labs {
        match &lab.not_gradable {
            Some(reason) => cases.push(Case::NotGradable(lab, reason)),
            None => cases.extend(lab.checks.iter().map(|check| Case::Check(lab, check))),
        }
    }
    cases
}

struct JunitCounts {
    tests: usize,
    failures: usize,
    errors: usize,
    skipped: usize,
}

impl JunitCounts {
    fn of<'a>(cases: impl Iterator<Item = Case<'a>>) -> Self {
        let mut counts = JunitCounts {
            tests: 0,
            failures: 0,
            errors: 0,
            skipped: 0,
        };
        for case in cases {
            counts.tests += 1;
            match case {
                Case::NotGradable(..) => counts.errors += 1,
                Case::Check(_, check) => match check.status {
                    CheckStatus::Failed => counts.failures += 1,
                    CheckStatus::Skipped => counts.skipped += 1,
                    CheckStatus::Passed => {}
                },
            }
        }
        counts
    }

    fn attributes(&self) -> String {
        format!(
            "tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\"",
            self.tests, self.failures, self.errors, self.skipped
        )
    }
}

fn write_junit_suite(out: &mut String, student: &StudentResult) {
    let duration_ms: u64 = student.labs.iter().map(|lab| lab.duration_ms).sum();
    out.push_str(&format!(
        "  <testsuite name=\"{}\" {} time=\"{}\">\n",
        attr(&student.student),
        JunitCounts::of(cases(student).into_iter()).attributes(),
        seconds(duration_ms)
    ));
    for case in cases(student) {
        out.push_str(&junit_case(&student.student, &case));
    }
    out.push_str("  </testsuite>\n");
}

fn junit_case(student: &str, case: &Case<'_>) -> String {
    let (name, body) = match case {
        Case::NotGradable(lab, reason) => (
            lab.lab.clone(),
            Some(format!(
                "<error message=\"{}\" type=\"not_gradable\"/>",
                attr(&format!("not gradable: {reason}"))
            )),
        ),
        Case::Check(lab, check) => (
            format!("{}::{}", lab.lab, check.id),
            match check.status {
                CheckStatus::Passed => None,
                CheckStatus::Failed => Some(format!(
                    "<failure message=\"{}\" type=\"failed\">{}</failure>",
                    attr(&check.title),
                    text_content(&evidence(check))
                )),
                CheckStatus::Skipped => {
                    Some(format!("<skipped message=\"{}\"/>", attr(&check.observed)))
                }
            },
        ),
    };
    let open = format!(
        "    <testcase classname=\"{}\" name=\"{}\"",
        attr(student),
        attr(&name)
    );
    match body {
        Some(body) => format!("{open}>\n      {body}\n    </testcase>\n"),
        None => format!("{open}/>\n"),
    }
}

/// Writes every file of a grading run under `out`, creating directories,
/// and returns the paths written. Every student name is checked to be a
/// plain file name first, so nothing is written when one is not.
pub fn write_all(book: &Gradebook, out: &Path, after_due_date: bool) -> io::Result<Vec<PathBuf>> {
    check_student_names(book)?;
    let mut files = Vec::new();
    for student in &book.students {
        let name = &student.student;
        files.push((
            out.join("results").join(format!("{name}.json")),
            student_json(student),
        ));
        files.push((
            out.join("feedback").join(format!("{name}.md")),
            feedback(student, after_due_date),
        ));
        files.push((
            out.join("gradescope").join(name).join("results.json"),
            gradescope_json(student),
        ));
    }
    files.push((out.join("gradebook.csv"), gradebook_csv(book)));
    files.push((out.join("junit.xml"), junit(book)));
    let mut written = Vec::with_capacity(files.len());
    for (path, text) in files {
        write_file(&path, &text)?;
        written.push(path);
    }
    Ok(written)
}

fn write_file(path: &Path, text: &str) -> io::Result<()> {
    let with_path = |error: io::Error| {
        io::Error::new(error.kind(), format!("writing {}: {error}", path.display()))
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(with_path)?;
    }
    std::fs::write(path, text).map_err(with_path)
}

/// Student names become path components: each must match
/// `[A-Za-z0-9][A-Za-z0-9._-]*` (no `/`, no leading `.`, so no `..`), and
/// no two may be equal (one's files would overwrite the other's).
fn check_student_names(book: &Gradebook) -> io::Result<()> {
    let mut seen = HashSet::new();
    for student in &book.students {
        let name = student.student.as_str();
        if !is_plain_file_name(name) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "student name {name:?} is not a plain file name \
                     (expected [A-Za-z0-9][A-Za-z0-9._-]*): nothing written"
                ),
            ));
        }
        if !seen.insert(name) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("student name {name:?} appears twice: nothing written"),
            ));
        }
    }
    Ok(())
}

fn is_plain_file_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Pretty JSON with a final newline.
fn pretty_json(value: &impl Serialize) -> String {
    // Serializing cannot fail here: the types are plain structs of strings,
    // integers and unit enums written to memory.
    let mut text = serde_json::to_string_pretty(value).expect("grading results serialize to JSON");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;
    use crate::grade::model::{LabRubric, SCHEMA_VERSION};

    /// What a student could make a check observe: backtick runs longer
    /// than a plain fence, HTML, table pipes, a CDATA end, an ANSI escape
    /// and a NUL.
    const HOSTILE: &str = "$ ping 10.0.0.2\n```` not a fence\n<script>alert(1)</script> | a | b |\n]]> & \u{1b}[31mred\u{0}";

    fn check(id: &str, status: CheckStatus, visibility: Visibility, points: u32) -> CheckResult {
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

    fn lab(id: &str, checks: Vec<CheckResult>) -> LabResult {
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
    fn book() -> Gradebook {
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

    fn alice() -> StudentResult {
        book().students.remove(0)
    }

    fn bob() -> StudentResult {
        book().students.remove(1)
    }

    #[test]
    fn student_json_round_trips() {
        let result = bob();
        let text = student_json(&result);
        insta::assert_snapshot!(text);
        let parsed: StudentResult = serde_json::from_str(&text).expect("parses");
        assert_eq!(parsed, result);
    }

    #[test]
    fn feedback_before_the_due_date() {
        insta::assert_snapshot!(feedback(&alice(), false));
    }

    #[test]
    fn feedback_after_the_due_date_shows_after_due_date_checks() {
        let before = feedback(&alice(), false);
        let after = feedback(&alice(), true);
        assert!(!before.contains("mac-unique"));
        assert!(after.contains("Check `mac-unique`"));
        assert!(before.contains("2 checks are hidden."));
        assert!(after.contains("1 check is hidden."));
        // The hidden checks stay hidden either way.
        for text in [&before, &after] {
            assert!(!text.contains("mtu"));
            assert!(!text.contains("forward"));
        }
    }

    #[test]
    fn feedback_for_a_lab_not_gradable() {
        let text = feedback(&bob(), false);
        insta::assert_snapshot!(text);
        assert!(!text.contains("0 / 10"));
    }

    #[test]
    fn feedback_fences_outlast_the_observed_backticks() {
        let text = feedback(&alice(), false);
        assert!(text.contains("`````text\n$ ping 10.0.0.2\n```` not a fence\n"));
        assert!(!text.contains("<b>"));
    }

    #[rstest]
    #[case("x", "```text\nx\n```\n")]
    #[case("a ```` b", "`````text\na ```` b\n`````\n")]
    fn a_fence_outlasts_the_backticks_inside(#[case] text: &str, #[case] block: &str) {
        assert_eq!(fenced(text), block);
    }

    #[rstest]
    #[case("alice", "`alice`")]
    #[case("a`b", "``a`b``")]
    #[case("`x", "`` `x ``")]
    #[case("two\nlines", "`two lines`")]
    fn code_spans_hold_any_text(#[case] text: &str, #[case] span: &str) {
        assert_eq!(code(text), span);
    }

    #[rstest]
    #[case("VM1: ip a", "VM1: ip a")]
    #[case("2*2 <b> | _x_ $y$", "2\\*2 \\<b\\> \\| \\_x\\_ \\$y\\$")]
    #[case("one\ntwo\r", "one two ")]
    fn inline_text_shows_as_written(#[case] text: &str, #[case] shown: &str) {
        assert_eq!(inline(text), shown);
    }

    #[rstest]
    #[case("line\r\nnext", "line\nnext")]
    #[case("\u{1b}[0m\u{0}", "\\u{1b}[0m\\u{0}")]
    #[case("lone\rreturn", "lone\\u{d}return")]
    #[case("csi \u{9b}", "csi \\u{9b}")]
    #[case("tab\tkept\n", "tab\tkept\n")]
    fn control_characters_are_shown_not_sent(#[case] text: &str, #[case] shown: &str) {
        assert_eq!(show_controls(text), shown);
    }

    #[test]
    fn feedback_holds_no_raw_control_character() {
        let mut result = alice();
        result.student = "al\u{1b}ice".to_string();
        result.problems = vec!["bell\u{7}".to_string()];
        let text = feedback(&result, true);
        assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "{text}");
    }

    #[test]
    fn gradebook() {
        insta::assert_snapshot!(gradebook_csv(&book()));
    }

    #[test]
    fn a_lab_missing_from_a_result_reads_missing() {
        let mut book = book();
        book.students[0].labs.pop();
        let csv = gradebook_csv(&book);
        assert!(csv.contains("\r\nalice,3,missing,3,12\r\n"), "{csv}");
    }

    #[rstest]
    #[case("alice", "alice")]
    #[case("=HYPERLINK(\"http://x\")", "\"'=HYPERLINK(\"\"http://x\"\")\"")]
    #[case("-1+1", "'-1+1")]
    #[case("+1", "'+1")]
    #[case("@SUM(A1:A2)", "'@SUM(A1:A2)")]
    #[case("\tx", "'\tx")]
    #[case("\rx", "\"'\rx\"")]
    #[case("smith, jo", "\"smith, jo\"")]
    #[case("say \"hi\"", "\"say \"\"hi\"\"\"")]
    #[case("two\nlines", "\"two\nlines\"")]
    #[case("a=b-c", "a=b-c")]
    #[case("", "")]
    fn csv_cells_are_quoted_and_defused(#[case] text: &str, #[case] cell: &str) {
        assert_eq!(csv_cell(text), cell);
    }

    #[test]
    fn gradescope_results() {
        insta::assert_snapshot!(gradescope_json(&alice()));
    }

    #[test]
    fn gradescope_scores_add_up() {
        let result = alice();
        let json: serde_json::Value =
            serde_json::from_str(&gradescope_json(&result)).expect("parses");
        let tests = json["tests"].as_array().expect("tests");
        let sum = |field: &str| -> u64 {
            tests
                .iter()
                .map(|test| test[field].as_u64().expect("a whole number"))
                .sum()
        };
        assert_eq!(tests.len(), 7);
        assert_eq!(json["score"].as_u64(), Some(sum("score")));
        assert_eq!(json["score"].as_u64(), Some(8));
        assert_eq!(sum("max_score"), u64::from(result.max_points()));
        let visibilities: HashSet<&str> = tests
            .iter()
            .filter_map(|test| test["visibility"].as_str())
            .collect();
        assert_eq!(
            visibilities,
            HashSet::from(["visible", "hidden", "after_due_date"])
        );
    }

    #[test]
    fn gradescope_gets_no_score_for_a_lab_not_gradable() {
        let text = gradescope_json(&bob());
        insta::assert_snapshot!(text);
        let json: serde_json::Value = serde_json::from_str(&text).expect("parses");
        assert!(json.get("score").is_none());
        assert!(json.get("tests").is_none());
        let output = json["output"].as_str().expect("output");
        assert!(output.contains("tap: not gradable: QEMU could not start"));
    }

    #[test]
    fn junit_report() {
        insta::assert_snapshot!(junit(&book()));
    }

    #[test]
    fn junit_holds_no_character_xml_forbids() {
        let xml = junit(&book());
        assert!(!xml.contains("]]>"));
        assert!(!xml.contains("<script>"));
        assert!(!xml
            .chars()
            .any(|c| c < ' ' && !matches!(c, '\n' | '\r' | '\t')));
        assert!(xml.contains("\\u{1b}[31mred\\u{0}"));
    }

    #[rstest]
    #[case("a < b && c > d ]]>", "a &lt; b &amp;&amp; c &gt; d ]]&gt;")]
    #[case("line\none\ttab", "line\none\ttab")]
    #[case("\u{1b}[0m\u{FFFE}", "\\u{1b}[0m\\u{fffe}")]
    fn xml_text_is_escaped(#[case] text: &str, #[case] escaped: &str) {
        assert_eq!(text_content(text), escaped);
    }

    #[rstest]
    #[case("say \"hi\" & go", "say &quot;hi&quot; &amp; go")]
    #[case("two\nlines", "two&#10;lines")]
    fn xml_attributes_are_escaped(#[case] text: &str, #[case] escaped: &str) {
        assert_eq!(attr(text), escaped);
    }

    /// The fixture with file-safe student names.
    fn writable_book() -> Gradebook {
        let mut book = book();
        book.students[1].student = "bob.smith-2".to_string();
        book
    }

    /// Every file under `dir`, recursively.
    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut files = Vec::new();
        let mut dirs = vec![dir.to_path_buf()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).expect("reads the dir") {
                let path = entry.expect("an entry").path();
                if path.is_dir() {
                    dirs.push(path);
                } else {
                    files.push(path);
                }
            }
        }
        files
    }

    #[test]
    fn write_all_writes_exactly_the_expected_files() {
        let out = tempfile::tempdir().expect("a temp dir");
        let book = writable_book();
        let written = write_all(&book, out.path(), false).expect("writes");
        let expected = [
            "results/alice.json",
            "feedback/alice.md",
            "gradescope/alice/results.json",
            "results/bob.smith-2.json",
            "feedback/bob.smith-2.md",
            "gradescope/bob.smith-2/results.json",
            "gradebook.csv",
            "junit.xml",
        ];
        let relative = |paths: Vec<PathBuf>| -> HashSet<PathBuf> {
            paths
                .into_iter()
                .map(|p| p.strip_prefix(out.path()).expect("under out").to_path_buf())
                .collect()
        };
        let expected: HashSet<PathBuf> = expected.iter().map(PathBuf::from).collect();
        assert_eq!(relative(written.clone()), expected);
        assert_eq!(relative(walk(out.path())), expected);
        let feedback_text =
            std::fs::read_to_string(out.path().join("feedback/alice.md")).expect("reads");
        assert_eq!(feedback_text, feedback(&book.students[0], false));
    }

    #[rstest]
    #[case("../escape")]
    #[case(".hidden")]
    #[case("a/b")]
    #[case("")]
    #[case("-rf")]
    #[case("bob smith")]
    fn write_all_refuses_a_name_that_is_not_a_plain_file_name(#[case] name: &str) {
        let out = tempfile::tempdir().expect("a temp dir");
        let mut book = writable_book();
        book.students[1].student = name.to_string();
        let error = write_all(&book, out.path(), false).expect_err("refuses");
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        assert!(walk(out.path()).is_empty(), "nothing is written");
    }

    #[test]
    fn write_all_refuses_two_students_of_one_name() {
        let out = tempfile::tempdir().expect("a temp dir");
        let mut book = writable_book();
        book.students[1].student = "alice".to_string();
        let error = write_all(&book, out.path(), false).expect_err("refuses");
        assert!(error.to_string().contains("appears twice"), "{error}");
    }
}

//! The files a grading run leaves: the instructor's full view of each
//! submission (`results/<student>.json`), the student's feedback
//! (`feedback/<student>.md`), a gradebook (`gradebook.csv`), Gradescope's
//! autograder results (`gradescope/<student>/results.json`) and a JUnit
//! report (`junit.xml`).
//!
//! Each renderer is a pure function of the
//! [`Gradebook`](super::model::Gradebook) model and decides no score of its
//! own. Much of what they render was typed by a student
//! (names, and what a check observed), so every format escapes it through
//! [`crate::text`]: Markdown by code fences and backslashes, CSV by RFC 4180
//! quoting and a defused leading formula character, XML by entities, and
//! control characters alike in all of them.
//!
//! One file per rendering, as `report/` has: `feedback`, `gradebook`,
//! `gradescope` and `junit` (the student JSON is the model serialized, here);
//! `write` puts them all on disk.

mod feedback;
mod gradebook;
mod gradescope;
mod junit;
#[cfg(test)]
mod test_book;
mod write;

use serde::Serialize;

use super::model::{CheckResult, CheckStatus, StudentResult};

pub use feedback::feedback;
pub use gradebook::gradebook_csv;
pub use gradescope::gradescope_json;
pub use junit::junit;
pub use write::write_all;

/// `results/<student>.json`: the submission's whole result, hidden checks
/// and all.
pub fn student_json(result: &StudentResult) -> String {
    pretty_json(result)
}

fn status_word(status: CheckStatus) -> &'static str {
    match status {
        CheckStatus::Passed => "passed",
        CheckStatus::Failed => "failed",
        CheckStatus::Skipped => "skipped",
    }
}

/// A check's evidence as plain text, for Gradescope and JUnit (each shows
/// its control characters as its syntax wants). Observed text of several
/// lines starts on a line of its own.
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
    lines.join("\n")
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
    use super::test_book::bob;
    use super::*;

    #[test]
    fn student_json_round_trips() {
        let result = bob();
        let text = student_json(&result);
        insta::assert_snapshot!(text);
        let parsed: StudentResult = serde_json::from_str(&text).expect("parses");
        assert_eq!(parsed, result);
    }
}

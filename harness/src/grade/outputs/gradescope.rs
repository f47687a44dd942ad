//! `gradescope/<student>/results.json`: Gradescope's autograder results,
//! a test per check.

use serde::Serialize;

use super::{evidence, pretty_json};
use crate::grade::model::{CheckStatus, StudentResult, Visibility};
use crate::text;

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
                output: text::show_controls(&evidence(check)),
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
    (!lines.is_empty()).then(|| text::show_controls(&lines.join("\n")))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::grade::outputs::test_book::{alice, bob};

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
}

//! `feedback/<student>.md`: what the student may see of the grade, in
//! Markdown. Everything a student typed is escaped: names as code spans,
//! sentences inline, observed output in fences no backtick run can close.

use super::status_word;
use crate::grade::model::{CheckResult, CheckStatus, LabResult, StudentResult, Visibility};
use crate::text;

/// `feedback/<student>.md`: what the student may see. Hidden checks, and
/// `after_due_date` ones before the due date, are only counted.
pub fn feedback(result: &StudentResult, after_due_date: bool) -> String {
    let mut out = format!(
        "# Feedback for {}\n\n{}\n",
        text::markdown_code(&result.student),
        total_sentence(result, after_due_date)
    );
    if !result.problems.is_empty() {
        out.push_str("\n## Problems with your submission\n\n");
        for problem in &result.problems {
            out.push_str(&format!("- {}\n", text::markdown_inline(problem)));
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
    let mut out = format!(
        "\n## Lab {}: {}\n\n",
        text::markdown_code(&lab.lab),
        text::markdown_inline(&lab.title)
    );
    if let Some(reason) = &lab.not_gradable {
        out.push_str(&format!(
            "Not gradable: {}. The grader could not grade this lab; no score is \
             given for it (this is not a zero).\n",
            text::markdown_inline(reason)
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
            out.push_str(&text::markdown_fenced(note));
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
        text::markdown_inline(&check.title),
        check.awarded,
        check.points,
        status_word(check.status),
        text::markdown_code(&check.id),
        text::markdown_inline(&check.expected),
    );
    if check.observed.is_empty() {
        out.push_str("Observed: nothing.\n");
    } else {
        let observed = text::markdown_fenced(&check.observed);
        out.push_str(&format!("Observed:\n\n{observed}"));
    }
    if let Some(hint) = &check.hint {
        out.push_str(&format!("\nHint: {}\n", text::markdown_inline(hint)));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grade::outputs::test_book::{alice, bob};

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

    #[test]
    fn feedback_holds_no_raw_control_character() {
        let mut result = alice();
        result.student = "al\u{1b}ice".to_string();
        result.problems = vec!["bell\u{7}".to_string()];
        let text = feedback(&result, true);
        assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "{text}");
    }
}

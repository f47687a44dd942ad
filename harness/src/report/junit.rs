//! The JUnit XML renderer, for CI test reports (GitHub and GitLab test
//! reports, nextest's format): one `<testsuite>` per lab, one `<testcase>`
//! per step. Renders the model; decides no outcome of its own.
//!
//! quick-junit, cargo-nextest's own writer, writes the XML, here and for
//! grading (`grade::outputs::junit`), through the few builders below that
//! pass every text through [`crate::text`] first: quick-junit escapes
//! markup, and would silently delete control characters, which the policy
//! shows instead.

use std::time::Duration;

use quick_junit::{NonSuccessKind, Property, TestCase, TestCaseStatus, TestSuite};

use super::failure::{describe_failure, FailureDescription};
use super::model::{LabReport, Outcome, Report, StepReport};
use crate::text;

/// The report as JUnit XML. Deterministic: it holds no timestamp or host
/// name the model does not hold. Counts are JUnit's: a not-checked claim
/// counts as skipped, an erratum as a test that ran (and passed).
pub fn junit(report: &Report) -> String {
    // No `time` on `<testsuites>`: labs may run in parallel, and the model
    // holds no wall time of the whole run (a sum of the labs' would
    // overstate it).
    let mut document = quick_junit::Report::new("labcheck");
    document.add_test_suites(report.labs.iter().map(|lab| suite(report, lab)));
    to_xml(&document)
}

fn suite(report: &Report, lab: &LabReport) -> TestSuite {
    let mut suite = TestSuite::new(text::xml_attr(&lab.id));
    suite.set_time(Duration::from_millis(lab.duration_ms));
    let env = &report.environment;
    let substitutions = lab.substitutions.len().to_string();
    let properties = [
        ("title", lab.title.as_str()),
        ("handout", lab.handout.as_str()),
        ("network", lab.network.as_str()),
        ("substitutions", substitutions.as_str()),
        ("qemu", env.qemu.as_str()),
        ("accelerator", env.accelerator.as_str()),
        ("guest_digest", env.guest_digest.as_str()),
    ];
    suite.add_properties(
        properties
            .into_iter()
            .map(|(name, value)| Property::new(name, text::xml_attr(value))),
    );
    suite.add_test_cases(lab.steps.iter().map(|step| case(&lab.id, step)));
    suite
}

fn case(lab_id: &str, step: &StepReport) -> TestCase {
    let note = step.note.as_deref().unwrap_or_default();
    // `describe_failure` describes exactly the failed and errored steps.
    let (status, system_out) = match (step.outcome, describe_failure(step)) {
        (Outcome::Failed, Some(failure)) => {
            (verdict(NonSuccessKind::Failure, step, &failure), None)
        }
        (Outcome::Error, Some(failure)) => (verdict(NonSuccessKind::Error, step, &failure), None),
        (Outcome::Skipped, _) => (skipped(note), None),
        (Outcome::NotChecked, _) => (skipped(&format!("not checked: {note}")), None),
        _ => (TestCaseStatus::success(), erratum_note(step)),
    };
    let mut case = test_case(lab_id, &step.name, status);
    case.set_time(Duration::from_millis(step.duration_ms));
    if let Some(system_out) = system_out {
        case.set_system_out(text::xml_text(&system_out));
    }
    case
}

/// A `<failure>` or `<error>`: the first thing that did not hold as its
/// message, and everything a reader needs to see why as its text.
fn verdict(
    kind: NonSuccessKind,
    step: &StepReport,
    failure: &FailureDescription<'_>,
) -> TestCaseStatus {
    let element = match kind {
        NonSuccessKind::Failure => "failure",
        NonSuccessKind::Error => "error",
    };
    let message = failure.headline.unwrap_or(element);
    non_success(
        kind,
        message,
        step.kind.as_str(),
        Some(&evidence(step, failure)),
    )
}

/// The evidence of a failed or errored step, as plain text.
fn evidence(step: &StepReport, failure: &FailureDescription<'_>) -> String {
    let mut lines = Vec::new();
    if let Some(vm) = &step.vm {
        lines.push(format!("vm: {vm}"));
    }
    lines.extend(
        failure
            .facts
            .iter()
            .map(|fact| format!("{}: {}", fact.label.word(), fact.text)),
    );
    if !failure.output.is_empty() {
        lines.push("output:".to_string());
        lines.extend(failure.output.iter().map(|l| format!("> {l}")));
    }
    if !failure.console_tail.is_empty() {
        lines.push(format!(
            "console (last {} lines):",
            failure.console_tail.len()
        ));
        lines.extend(failure.console_tail.iter().map(|l| format!("| {l}")));
    }
    format!("\n{}\n", lines.join("\n"))
}

/// What a step's erratum means, so a known erratum reads as one and not as
/// a plain pass. None for a step without an erratum.
fn erratum_note(step: &StepReport) -> Option<String> {
    let erratum = step.erratum.as_ref()?;
    if !erratum.reproduced {
        return Some(format!(
            "erratum no longer reproduces: the handout's command works as printed ({})",
            erratum.reason
        ));
    }
    Some(match &erratum.fix {
        // One per line: reasons and fixes hold `;` themselves.
        Some(fix) => format!("known erratum: {}\nfix used: {fix}", erratum.reason),
        None => format!("known erratum: {}\nno fix", erratum.reason),
    })
}

/// A test case of `class` named `name`, with both made safe for XML.
pub(crate) fn test_case(class: &str, name: &str, status: TestCaseStatus) -> TestCase {
    let mut case = TestCase::new(text::xml_attr(name), status);
    case.set_classname(text::xml_attr(class));
    case
}

/// A `<failure>` or `<error>` with its message, type and text (if any), all
/// made safe for XML.
pub(crate) fn non_success(
    kind: NonSuccessKind,
    message: &str,
    ty: &str,
    description: Option<&str>,
) -> TestCaseStatus {
    let mut status = TestCaseStatus::non_success(kind);
    status
        .set_message(text::xml_attr(message))
        .set_type(text::xml_attr(ty));
    if let Some(description) = description {
        status.set_description(text::xml_text(description));
    }
    status
}

/// A `<skipped>` with its message made safe for XML.
pub(crate) fn skipped(message: &str) -> TestCaseStatus {
    let mut status = TestCaseStatus::skipped();
    status.set_message(text::xml_attr(message));
    status
}

/// The document as XML, with a final newline.
pub(crate) fn to_xml(document: &quick_junit::Report) -> String {
    // Serializing cannot fail here: it writes to memory, and every text in
    // the document is a Rust string.
    document
        .to_string()
        .expect("a JUnit document serializes to XML")
}

#[cfg(test)]
mod tests {
    use quick_junit::XmlString;
    use rstest::rstest;

    use super::*;

    /// quick-junit deletes ANSI escapes and control characters from any
    /// text it is given: after the policy there is none left to delete.
    #[rstest]
    #[case::ansi_colour("\u{1b}[31mred\u{1b}[0m")]
    #[case::c0_and_del("\u{0}\u{7}\u{8}\u{7f}")]
    #[case::c1_csi("\u{9b}31m")]
    #[case::line_ends_and_tabs("a\r\nb\rc\td\n")]
    #[case::xml_noncharacters("\u{fffe}\u{ffff}")]
    fn quick_junit_finds_nothing_to_strip_after_the_policy(#[case] raw: &str) {
        for safe in [text::xml_text(raw), text::xml_attr(raw)] {
            assert_eq!(XmlString::new(&safe).as_str(), safe);
        }
    }

    fn broken() -> Report {
        let json = include_str!("../../../fixtures/reports/broken.json");
        serde_json::from_str(json).expect("a recorded report fits the model")
    }

    #[test]
    fn console_control_characters_show_in_the_xml() {
        let mut report = broken();
        let failed = report.labs[0]
            .steps
            .iter_mut()
            .find(|step| step.outcome == Outcome::Failed)
            .expect("a failed step");
        failed.mismatches[0] = "a\nb \u{1b}[0m".to_string();
        failed.console_tail = vec!["\u{1b}[31mred\u{0}\tx \u{9b} \u{fffe} a\rb".to_string()];
        let xml = junit(&report);
        assert!(xml.contains("message=\"a b ␛[0m\""), "{xml}");
        // The tab goes to column 16 of the line `| ␛[31mred␀` starts.
        assert!(
            xml.contains("| ␛[31mred␀     x \\u{9b} \\u{fffe} a␍b\n"),
            "{xml}"
        );
        assert!(!xml
            .chars()
            .any(|c| c.is_control() && c != '\n' || matches!(c, '\u{fffe}' | '\u{ffff}')));
    }

    #[test]
    fn durations_are_seconds_with_milliseconds() {
        let mut report = broken();
        report.labs[0].duration_ms = 7;
        report.labs[0].steps[0].duration_ms = 81_531;
        let xml = junit(&report);
        assert!(xml.contains("failures=\"1\" time=\"0.007\">"), "{xml}");
        assert!(
            xml.contains("classname=\"socket\" time=\"81.531\">"),
            "{xml}"
        );
    }
}

//! `junit.xml`: the grading run as JUnit XML, so a CI system that grades
//! shows each student's checks as test cases.

use std::time::Duration;

use quick_junit::{NonSuccessKind, TestCase, TestCaseStatus, TestSuite};

use super::evidence;
use crate::grade::model::{CheckResult, CheckStatus, Gradebook, LabResult, StudentResult};
use crate::report::junit::{non_success, skipped, test_case, to_xml};
use crate::text;

/// `junit.xml`: a `<testsuite>` per student, a `<testcase>` per check named
/// `<lab>::<check id>`, and an erroring `<testcase>` named `<lab>` for a
/// lab that could not be graded.
pub fn junit(book: &Gradebook) -> String {
    let mut document = quick_junit::Report::new("labcheck grade");
    document.add_test_suites(book.students.iter().map(suite));
    to_xml(&document)
}

fn suite(student: &StudentResult) -> TestSuite {
    let duration_ms: u64 = student.labs.iter().map(|lab| lab.duration_ms).sum();
    let mut suite = TestSuite::new(text::xml_attr(&student.student));
    suite.set_time(Duration::from_millis(duration_ms));
    for lab in &student.labs {
        match &lab.not_gradable {
            Some(reason) => suite.add_test_case(not_gradable(&student.student, lab, reason)),
            None => suite.add_test_cases(
                lab.checks
                    .iter()
                    .map(|check| check_case(&student.student, lab, check)),
            ),
        };
    }
    suite
}

/// An erroring test case for a lab that could not be graded: no score, not a
/// failure.
fn not_gradable(student: &str, lab: &LabResult, reason: &str) -> TestCase {
    let status = non_success(
        NonSuccessKind::Error,
        &format!("not gradable: {reason}"),
        "not_gradable",
        None,
    );
    test_case(student, &lab.lab, status)
}

fn check_case(student: &str, lab: &LabResult, check: &CheckResult) -> TestCase {
    let status = match check.status {
        CheckStatus::Passed => TestCaseStatus::success(),
        CheckStatus::Failed => non_success(
            NonSuccessKind::Failure,
            &check.title,
            "failed",
            Some(&evidence(check)),
        ),
        CheckStatus::Skipped => skipped(&check.observed),
    };
    test_case(student, &format!("{}::{}", lab.lab, check.id), status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grade::outputs::test_book::book;

    /// The end of the test book's hostile observation, as the policy shows it.
    const HOSTILE_SHOWN: &str = "<script>alert(1)</script> | a | b |\n]]> & ␛[31mred␀";

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
        assert!(xml.contains("␛[31mred␀"));
    }

    /// Read back by quick-junit's own parser, the hostile text a student
    /// could make a check observe is all there, as the policy shows it.
    #[test]
    fn junit_reads_back_as_written() {
        let book = book();
        let document =
            quick_junit::Report::deserialize_from_str(&junit(&book)).expect("well-formed");
        let alice = &document.test_suites[0];
        let ping = alice
            .test_cases
            .iter()
            .find(|case| case.name.as_str() == "socket::ping-vm1")
            .expect("the failed check");
        let TestCaseStatus::NonSuccess {
            message,
            description,
            ..
        } = &ping.status
        else {
            panic!("{:?}", ping.status);
        };
        let check = &book.students[0].labs[0].checks[1];
        assert_eq!(message.as_deref(), Some(check.title.as_str()));
        let evidence = text::xml_text(&evidence(check));
        assert_eq!(description.as_deref(), Some(evidence.as_str()));
        assert!(evidence.contains(HOSTILE_SHOWN), "{evidence}");
        let bob = &document.test_suites[1];
        assert_eq!(bob.name.as_str(), book.students[1].student);
    }
}

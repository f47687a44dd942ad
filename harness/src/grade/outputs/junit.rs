//! `junit.xml`: the grading run as JUnit XML, so a CI system that grades
//! shows each student's checks as test cases.

use super::evidence;
use crate::grade::model::{CheckResult, CheckStatus, Gradebook, LabResult, StudentResult};
use crate::report::junit::{attr, seconds, text_content};
use crate::text;

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
                    text_content(&text::show_controls(&evidence(check)))
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

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;
    use crate::grade::outputs::test_book::book;

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
}

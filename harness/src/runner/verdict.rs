//! Holding an observation against an expectation. Pure.

use crate::scenario::model::Expectation;

/// What a step showed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observation {
    pub exit: Option<i32>,
    pub output: String,
}

/// The expectation in words, for reports.
pub fn describe(expect: &Expectation) -> Vec<String> {
    let mut words = Vec::new();
    if let Some(exit) = expect.exit {
        words.push(format!("exit status {exit}"));
    }
    words.extend(
        expect
            .output
            .iter()
            .map(|s| format!("output contains {s:?}")),
    );
    if let Some(re) = &expect.matches {
        words.push(format!("output matches /{}/", re.as_str()));
    }
    words.extend(expect.absent.iter().map(|s| format!("output lacks {s:?}")));
    words
}

/// Every part of `expect` that `seen` does not satisfy, in words. Empty when
/// the expectation holds.
pub fn mismatches(expect: &Expectation, seen: &Observation) -> Vec<String> {
    let mut found = Vec::new();
    if let Some(exit) = expect.exit {
        match seen.exit {
            Some(actual) if actual == exit => {}
            Some(actual) => found.push(format!("exit status {actual}, not {exit}")),
            None => found.push(format!("no exit status (expected {exit})")),
        }
    }
    for wanted in &expect.output {
        if !seen.output.contains(wanted.as_str()) {
            found.push(format!("output does not contain {wanted:?}"));
        }
    }
    if let Some(re) = &expect.matches {
        if !re.is_match(&seen.output) {
            found.push(format!("output does not match /{}/", re.as_str()));
        }
    }
    for unwanted in &expect.absent {
        if seen.output.contains(unwanted.as_str()) {
            found.push(format!("output contains {unwanted:?}"));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn expectation(exit: Option<i32>, output: &[&str], absent: &[&str]) -> Expectation {
        Expectation {
            exit,
            output: output.iter().map(|s| s.to_string()).collect(),
            matches: None,
            absent: absent.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[rstest]
    #[case::all_hold(Some(0), &["vm2"], &[], Some(0), "hostname vm2", 0)]
    #[case::wrong_exit(Some(0), &[], &[], Some(1), "", 1)]
    #[case::no_exit(Some(0), &[], &[], None, "", 1)]
    #[case::missing_text(None, &["3 packets received"], &[], Some(0), "1 packets received", 1)]
    #[case::unwanted_text(None, &[], &["error"], Some(0), "an error", 1)]
    #[case::everything_wrong(Some(0), &["a", "b"], &["c"], Some(2), "c", 4)]
    fn counts_what_does_not_hold(
        #[case] exit: Option<i32>,
        #[case] output: &[&str],
        #[case] absent: &[&str],
        #[case] seen_exit: Option<i32>,
        #[case] seen_output: &str,
        #[case] expected_mismatches: usize,
    ) {
        let seen = Observation {
            exit: seen_exit,
            output: seen_output.to_string(),
        };
        let found = mismatches(&expectation(exit, output, absent), &seen);
        assert_eq!(found.len(), expected_mismatches, "{found:?}");
    }

    #[test]
    fn regex_is_matched_against_output() {
        let expect = Expectation {
            matches: Some(regex::Regex::new(r"^\d+ KiB$").unwrap()),
            ..Expectation::default()
        };
        let seen = |text: &str| Observation {
            exit: Some(0),
            output: text.to_string(),
        };
        assert!(mismatches(&expect, &seen("640 KiB")).is_empty());
        assert_eq!(
            mismatches(&expect, &seen("big")),
            vec![r"output does not match /^\d+ KiB$/".to_string()]
        );
    }

    #[test]
    fn describes_expectations_in_words() {
        assert_eq!(
            describe(&expectation(Some(0), &["vm2"], &["x"])),
            vec![
                "exit status 0".to_string(),
                "output contains \"vm2\"".to_string(),
                "output lacks \"x\"".to_string()
            ]
        );
    }
}

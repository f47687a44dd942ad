//! One description of a step that failed or could not run, computed once
//! and shown by every renderer (cargo-nextest's `error_description` is the
//! model): the terminal, JUnit, Markdown and HTML say the same facts in the
//! same order, each in its own syntax, so a reader moving from a CI log to
//! the HTML page finds what they saw before.

use super::model::{Outcome, StepReport};

/// Why a step did not pass, in the order every renderer shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureDescription<'a> {
    /// The first thing that did not hold, or why the step could not run: a
    /// one-line summary (JUnit's `message`); `None` when the step says neither.
    pub headline: Option<&'a str>,
    /// What the step ran and expected, and what was seen instead.
    pub facts: Vec<Fact<'a>>,
    /// What the step printed (bounded already; renderers may show less).
    pub output: Vec<&'a str>,
    /// The console's last lines, commands shown as typed.
    pub console_tail: &'a [String],
}

/// One labelled line of a [`FailureDescription`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact<'a> {
    pub label: FactLabel,
    pub text: std::borrow::Cow<'a, str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactLabel {
    Command,
    Exit,
    Expected,
    Observed,
    Note,
}

impl FactLabel {
    /// The label in words, the same in every renderer.
    pub fn word(self) -> &'static str {
        match self {
            FactLabel::Command => "command",
            FactLabel::Exit => "exit status",
            FactLabel::Expected => "expected",
            FactLabel::Observed => "observed",
            FactLabel::Note => "note",
        }
    }
}

/// What any step ran, expected and saw, and its note, in the order every
/// renderer shows them (a failure's [`FailureDescription::facts`]).
pub fn step_facts(step: &StepReport) -> Vec<Fact<'_>> {
    let fact = |label, text| Fact {
        label,
        text: std::borrow::Cow::Borrowed(text),
    };
    let mut facts = Vec::new();
    facts.extend(step.command.as_deref().map(|c| fact(FactLabel::Command, c)));
    facts.extend(step.exit.map(|exit| Fact {
        label: FactLabel::Exit,
        text: exit.to_string().into(),
    }));
    facts.extend(step.expected.iter().map(|e| fact(FactLabel::Expected, e)));
    facts.extend(step.mismatches.iter().map(|m| fact(FactLabel::Observed, m)));
    facts.extend(step.note.as_deref().map(|n| fact(FactLabel::Note, n)));
    facts
}

/// The description of `step` if it failed or could not run; `None` for
/// every other outcome.
pub fn describe_failure(step: &StepReport) -> Option<FailureDescription<'_>> {
    if !matches!(step.outcome, Outcome::Failed | Outcome::Error) {
        return None;
    }
    let headline = step
        .mismatches
        .first()
        .or(step.note.as_ref())
        .map(String::as_str);
    Some(FailureDescription {
        headline,
        facts: step_facts(step),
        output: step.output.lines().collect(),
        console_tail: &step.console_tail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::StepKind;

    fn failed() -> StepReport {
        StepReport {
            outcome: Outcome::Failed,
            command: Some("ping -c 3 10.0.0.2".into()),
            exit: Some(1),
            expected: vec!["exit status 0".into()],
            mismatches: vec!["exit status was 1".into()],
            note: Some("the link is down".into()),
            output: "PING 10.0.0.2\n3 packets transmitted, 0 received".into(),
            console_tail: vec!["# ping -c 3 10.0.0.2".into()],
            ..StepReport::new("ping VM2", StepKind::Guest)
        }
    }

    #[test]
    fn facts_come_in_one_order_with_the_first_mismatch_as_headline() {
        let step = failed();
        let description = describe_failure(&step).expect("a failure is described");
        assert_eq!(description.headline, Some("exit status was 1"));
        let labels: Vec<&str> = description.facts.iter().map(|f| f.label.word()).collect();
        assert_eq!(
            labels,
            ["command", "exit status", "expected", "observed", "note"]
        );
        assert_eq!(description.output.len(), 2);
        assert_eq!(description.console_tail, ["# ping -c 3 10.0.0.2"]);
    }

    #[test]
    fn an_error_without_mismatches_is_headed_by_its_note() {
        let step = StepReport {
            outcome: Outcome::Error,
            mismatches: Vec::new(),
            ..failed()
        };
        let description = describe_failure(&step).expect("an error is described");
        assert_eq!(description.headline, Some("the link is down"));
    }

    #[test]
    fn only_failures_and_errors_are_described() {
        for outcome in [
            Outcome::Passed,
            Outcome::Erratum,
            Outcome::Skipped,
            Outcome::NotChecked,
        ] {
            let step = StepReport {
                outcome,
                ..failed()
            };
            assert_eq!(describe_failure(&step), None, "{outcome:?}");
        }
    }
}

//! The JUnit XML renderer, for CI test reports (GitHub and GitLab test
//! reports, nextest's format): one `<testsuite>` per lab, one `<testcase>`
//! per step. Renders the model; decides no outcome of its own.

use super::model::{LabReport, Outcome, Report, StepReport};

/// The report as JUnit XML. Deterministic: it holds no timestamp or host
/// name the model does not hold.
pub fn junit(report: &Report) -> String {
    let counts = Counts::of(report.labs.iter().flat_map(|lab| &lab.steps));
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    // No `time` here: labs may run in parallel, and the model holds no wall
    // time of the whole run (a sum of the labs' would overstate it).
    out.push_str(&format!(
        "<testsuites name=\"labcheck\" {}>\n",
        counts.attributes()
    ));
    for lab in &report.labs {
        write_suite(&mut out, report, lab);
    }
    out.push_str("</testsuites>\n");
    out
}

/// Step counts in JUnit's terms: a not-checked claim counts as skipped, an
/// erratum as a test that ran (and passed).
struct Counts {
    tests: usize,
    failures: usize,
    errors: usize,
    skipped: usize,
}

impl Counts {
    fn of<'a>(steps: impl Iterator<Item = &'a StepReport>) -> Self {
        let mut counts = Counts {
            tests: 0,
            failures: 0,
            errors: 0,
            skipped: 0,
        };
        for step in steps {
            counts.tests += 1;
            match step.outcome {
                Outcome::Failed => counts.failures += 1,
                Outcome::Error => counts.errors += 1,
                Outcome::Skipped | Outcome::NotChecked => counts.skipped += 1,
                Outcome::Passed | Outcome::Erratum => {}
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

fn write_suite(out: &mut String, report: &Report, lab: &LabReport) {
    out.push_str(&format!(
        "  <testsuite name=\"{}\" {} time=\"{}\">\n",
        attr(&lab.id),
        Counts::of(lab.steps.iter()).attributes(),
        seconds(lab.duration_ms)
    ));
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
    out.push_str("    <properties>\n");
    for (name, value) in properties {
        out.push_str(&format!(
            "      <property name=\"{name}\" value=\"{}\"/>\n",
            attr(value)
        ));
    }
    out.push_str("    </properties>\n");
    for step in &lab.steps {
        write_case(out, &lab.id, step);
    }
    out.push_str("  </testsuite>\n");
}

fn write_case(out: &mut String, lab_id: &str, step: &StepReport) {
    let open = format!(
        "    <testcase classname=\"{}\" name=\"{}\" time=\"{}\"",
        attr(lab_id),
        attr(&step.name),
        seconds(step.duration_ms)
    );
    let note = step.note.as_deref().unwrap_or_default();
    let body = match step.outcome {
        Outcome::Failed => Some(verdict("failure", step)),
        Outcome::Error => Some(verdict("error", step)),
        Outcome::Skipped => Some(format!("<skipped message=\"{}\"/>", attr(note))),
        Outcome::NotChecked => Some(format!(
            "<skipped message=\"{}\"/>",
            attr(&format!("not checked: {note}"))
        )),
        Outcome::Passed | Outcome::Erratum => erratum_note(step)
            .map(|text| format!("<system-out>{}</system-out>", text_content(&text))),
    };
    match body {
        Some(body) => out.push_str(&format!("{open}>\n      {body}\n    </testcase>\n")),
        None => out.push_str(&format!("{open}/>\n")),
    }
}

/// A `<failure>` or `<error>`: the first thing that did not hold as its
/// message, and everything a reader needs to see why as its text.
fn verdict(element: &str, step: &StepReport) -> String {
    let message = step
        .mismatches
        .first()
        .or(step.note.as_ref())
        .map_or(element, String::as_str);
    format!(
        "<{element} message=\"{}\" type=\"{}\">{}</{element}>",
        attr(message),
        attr(step.kind.as_str()),
        text_content(&evidence(step))
    )
}

/// The evidence of a failed or errored step, as plain text.
fn evidence(step: &StepReport) -> String {
    let mut lines = Vec::new();
    if let Some(vm) = &step.vm {
        lines.push(format!("vm: {vm}"));
    }
    if let Some(command) = &step.command {
        lines.push(format!("command: {command}"));
    }
    if let Some(exit) = step.exit {
        lines.push(format!("exit status: {exit}"));
    }
    lines.extend(step.expected.iter().map(|e| format!("expected: {e}")));
    lines.extend(step.mismatches.iter().map(|m| format!("observed: {m}")));
    if let Some(note) = &step.note {
        lines.push(format!("note: {note}"));
    }
    if !step.output.is_empty() {
        lines.push("output:".to_string());
        lines.extend(step.output.lines().map(|l| format!("> {l}")));
    }
    if !step.console_tail.is_empty() {
        lines.push(format!("console (last {} lines):", step.console_tail.len()));
        lines.extend(step.console_tail.iter().map(|l| format!("| {l}")));
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

/// Milliseconds as JUnit's seconds.
pub(crate) fn seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// Text escaped for an attribute value: line breaks and tabs too, which an
/// XML parser would otherwise fold into spaces.
pub(crate) fn attr(text: &str) -> String {
    escape(text, true)
}

/// Text escaped for element content.
pub(crate) fn text_content(text: &str) -> String {
    escape(text, false)
}

fn escape(text: &str, in_attribute: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if in_attribute => out.push_str("&quot;"),
            '\n' | '\r' | '\t' if in_attribute => out.push_str(&format!("&#{};", u32::from(c))),
            '\n' | '\r' | '\t' => out.push(c),
            // XML 1.0 forbids these even as character references; a console
            // transcript can hold them (e.g. ESC), so show them as text.
            c if is_forbidden_in_xml(c) => out.push_str(&c.escape_unicode().to_string()),
            c => out.push(c),
        }
    }
    out
}

fn is_forbidden_in_xml(c: char) -> bool {
    c < ' ' || c == '\u{FFFE}' || c == '\u{FFFF}'
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::{attr, seconds, text_content};

    #[rstest]
    #[case("a < b && c > d", "a &lt; b &amp;&amp; c &gt; d")]
    #[case("line\none\ttab", "line\none\ttab")]
    #[case("\u{1b}[0m", "\\u{1b}[0m")]
    #[case("say \"hi\"", "say \"hi\"")]
    fn text_is_escaped(#[case] text: &str, #[case] escaped: &str) {
        assert_eq!(text_content(text), escaped);
    }

    #[rstest]
    #[case("say \"hi\" & go", "say &quot;hi&quot; &amp; go")]
    #[case("two\nlines", "two&#10;lines")]
    #[case("\u{7}bell", "\\u{7}bell")]
    fn attributes_are_escaped(#[case] text: &str, #[case] escaped: &str) {
        assert_eq!(attr(text), escaped);
    }

    #[rstest]
    #[case(0, "0.000")]
    #[case(7, "0.007")]
    #[case(81_531, "81.531")]
    fn milliseconds_become_seconds(#[case] ms: u64, #[case] text: &str) {
        assert_eq!(seconds(ms), text);
    }
}

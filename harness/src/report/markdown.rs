//! The Markdown renderer, for `$GITHUB_STEP_SUMMARY` and a pull-request
//! comment: the environment, a table of labs, what failed and why, then the
//! errata and unchecked claims of each lab folded away. Renders the model;
//! decides no outcome of its own.

use super::model::{LabOutcome, LabReport, Outcome, Report, StepReport};
use crate::time::format_millis;

/// How large the summary may grow, in bytes. A pull-request comment holds at
/// most 65 536 characters and a step summary 1 MiB: the smaller bound
/// decides, less room for the line saying what was left out. The header and
/// the table (a line per lab) are always written; a section after them that
/// would not fit is left out whole; report.json keeps everything.
const BUDGET: usize = 65_000 - OMISSION_ROOM;
const OMISSION_ROOM: usize = 200;
/// Lines of a failed step's output shown: its end says most about the failure.
const OUTPUT_LINES: usize = 20;
/// Console lines shown (the runner keeps 20).
const CONSOLE_LINES: usize = 20;
/// Characters kept of one line of output or console: a guest can print a
/// line of any length.
const LINE_CHARS: usize = 300;

/// The report as GitHub-flavoured Markdown.
pub fn markdown(report: &Report) -> String {
    let mut out = header(report);
    out.push_str(&summary_table(&report.labs));
    let sections = report
        .labs
        .iter()
        .filter(|lab| lab.outcome != LabOutcome::Passed)
        .map(failure_section)
        .chain(report.labs.iter().filter_map(details_section));
    let mut omitted = 0;
    for section in sections {
        if out.len() + section.len() > BUDGET {
            omitted += 1;
        } else {
            out.push_str(&section);
        }
    }
    if omitted > 0 {
        out.push_str(&format!(
            "\n_{omitted} section(s) left out to keep this summary under {BUDGET} bytes: report.json has everything._\n"
        ));
    }
    out
}

fn header(report: &Report) -> String {
    let env = &report.environment;
    let passed = report
        .labs
        .iter()
        .filter(|lab| lab.outcome == LabOutcome::Passed)
        .count();
    format!(
        "## labcheck: {passed} of {} lab(s) passed\n\nlabcheck {} · {} · accelerator {} · guest `{}`\n\n",
        report.labs.len(),
        inline(&env.labcheck),
        inline(&env.qemu),
        inline(env.accelerator.as_str()),
        short_digest(&env.guest_digest),
    )
}

fn summary_table(labs: &[LabReport]) -> String {
    let mut out = String::from(
        "| Lab | Result | Passed | Errata | Failed | Errors | Skipped | Not checked | Duration |\n\
         |---|---|--:|--:|--:|--:|--:|--:|--:|\n",
    );
    for lab in labs {
        let count = |o: Outcome| lab.steps.iter().filter(|s| s.outcome == o).count();
        out.push_str(&format!(
            "| {} | {} {} | {} | {} | {} | {} | {} | {} | {} |\n",
            inline(&lab.id),
            lab.outcome.mark(),
            lab.outcome.word(),
            count(Outcome::Passed),
            count(Outcome::Erratum),
            count(Outcome::Failed),
            count(Outcome::Error),
            count(Outcome::Skipped),
            count(Outcome::NotChecked),
            format_millis(lab.duration_ms),
        ));
    }
    out
}

/// A lab that did not pass: each step that failed or could not run, with
/// what it ran, expected and saw.
fn failure_section(lab: &LabReport) -> String {
    let mut out = format!(
        "\n### {} {}: {} ({})\n\nHandout: {} · network: {}\n",
        lab.outcome.mark(),
        inline(&lab.id),
        inline(&lab.title),
        lab.outcome.word(),
        inline(&lab.handout),
        inline(&lab.network),
    );
    for step in lab
        .steps
        .iter()
        .filter(|s| matches!(s.outcome, Outcome::Failed | Outcome::Error))
    {
        out.push_str(&failed_step(step));
    }
    out
}

fn failed_step(step: &StepReport) -> String {
    let mark = if step.outcome == Outcome::Error {
        "E"
    } else {
        "✗"
    };
    let on = step
        .vm
        .as_ref()
        .map(|vm| format!(" on {}", code(vm)))
        .unwrap_or_default();
    let mut out = format!(
        "\n#### {mark} {}\n\n{} step{on}, {}\n\n",
        inline(&step.name),
        code(step.kind.as_str()),
        format_millis(step.duration_ms),
    );
    let mut facts = Vec::new();
    if let Some(command) = &step.command {
        facts.push(format!("command:  {command}"));
    }
    if let Some(exit) = step.exit {
        facts.push(format!("exit:     {exit}"));
    }
    facts.extend(step.expected.iter().map(|e| format!("expected: {e}")));
    facts.extend(step.mismatches.iter().map(|m| format!("observed: {m}")));
    if let Some(note) = &step.note {
        facts.push(format!("note:     {note}"));
    }
    out.push_str(&fenced(&facts.join("\n")));
    let output: Vec<&str> = step.output.lines().collect();
    out.push_str(&last_lines("Output", &output, OUTPUT_LINES));
    let console: Vec<&str> = step.console_tail.iter().map(String::as_str).collect();
    out.push_str(&last_lines("Console tail", &console, CONSOLE_LINES));
    out
}

/// The last `keep` lines, each clipped, in a fenced block under a caption
/// saying how many of how many are shown; nothing for no lines.
fn last_lines(caption: &str, lines: &[&str], keep: usize) -> String {
    if lines.is_empty() {
        return String::new();
    }
    let from = lines.len().saturating_sub(keep);
    let shown: Vec<String> = lines[from..].iter().map(|l| clip(l)).collect();
    let which = if lines.len() == 1 {
        "1 line".to_string()
    } else if from == 0 {
        format!("{} lines", lines.len())
    } else {
        format!("last {} of {} lines", shown.len(), lines.len())
    };
    format!("\n{caption} ({which}):\n\n{}", fenced(&shown.join("\n")))
}

/// A lab's errata and unchecked claims, folded: what a reader checks once,
/// not on every run. None when the lab has neither.
fn details_section(lab: &LabReport) -> Option<String> {
    let errata: Vec<String> = lab.steps.iter().filter_map(erratum_item).collect();
    let claims: Vec<String> = lab
        .steps
        .iter()
        .filter(|s| s.outcome == Outcome::NotChecked)
        .map(|s| {
            format!(
                "- **{}**: {}\n",
                inline(&s.name),
                inline(s.note.as_deref().unwrap_or("no reason given"))
            )
        })
        .collect();
    if errata.is_empty() && claims.is_empty() {
        return None;
    }
    let mut out = format!(
        "\n<details><summary>{}: {} errata, {} not checked</summary>\n",
        html(&lab.id),
        errata.len(),
        claims.len()
    );
    for (title, items) in [("Errata", errata), ("Not checked", claims)] {
        if !items.is_empty() {
            out.push_str(&format!("\n**{title}**\n\n{}", items.concat()));
        }
    }
    out.push_str("\n</details>\n");
    Some(out)
}

fn erratum_item(step: &StepReport) -> Option<String> {
    let erratum = step.erratum.as_ref()?;
    let name = inline(&step.name);
    let reason = inline(&erratum.reason);
    if !erratum.reproduced {
        return Some(format!(
            "- **{name}**: no longer reproduces, the handout's command works as printed (erratum: {reason})\n"
        ));
    }
    // The fix on a line of its own: reasons and commands hold `;` themselves.
    let fix = erratum
        .fix
        .as_ref()
        .map(|fix| format!("fix used: {}", code(fix)))
        .unwrap_or_else(|| "no fix".to_string());
    Some(format!("- **{name}**: {reason}\n  - {fix}\n"))
}

fn short_digest(digest: &str) -> &str {
    digest.get(..12).unwrap_or(digest)
}

/// One line cut to [`LINE_CHARS`] characters, with a marker when cut.
fn clip(line: &str) -> String {
    match line.char_indices().nth(LINE_CHARS) {
        Some((end, _)) => format!("{}[… line cut]", &line[..end]),
        None => line.to_string(),
    }
}

/// Text in a fenced block whose fence no run of backticks in it can close.
pub(crate) fn fenced(text: &str) -> String {
    let fence = "`".repeat(longest_backtick_run(text).max(2) + 1);
    format!("{fence}text\n{text}\n{fence}\n")
}

/// Text as an inline code span, on one line.
fn code(text: &str) -> String {
    let one_line = text.replace(['\n', '\r'], " ");
    let ticks = "`".repeat(longest_backtick_run(&one_line) + 1);
    // A span that starts or ends with a backtick needs a space inside.
    let pad = if one_line.starts_with('`') || one_line.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{ticks}{pad}{one_line}{pad}{ticks}")
}

pub(crate) fn longest_backtick_run(text: &str) -> usize {
    text.split(|c| c != '`').map(str::len).max().unwrap_or(0)
}

/// Text that Markdown shows as written, on one line: its punctuation is
/// backslash-escaped (a step name like `VM1: 2*2 <b>` stays as it is). An
/// `_` inside a word is left alone: it cannot start emphasis there, and an
/// escape would break a URL GitHub links (`x86_64`).
fn inline(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    for (i, &c) in chars.iter().enumerate() {
        let in_word = |at: Option<&char>| at.is_some_and(|c| c.is_alphanumeric());
        let intraword =
            in_word(i.checked_sub(1).and_then(|j| chars.get(j))) && in_word(chars.get(i + 1));
        match c {
            '\n' | '\r' => out.push(' '),
            '_' if intraword => out.push(c),
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '#' | '~' | '!' | '&' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// Text inside an HTML element (`<summary>`), where Markdown is not read.
fn html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::{clip, code, fenced, inline, LINE_CHARS};

    #[rstest]
    #[case("plain", "`plain`")]
    #[case("a `b` c", "``a `b` c``")]
    #[case("`start", "`` `start ``")]
    #[case("two\nlines", "`two lines`")]
    fn code_spans_hold_any_text(#[case] text: &str, #[case] span: &str) {
        assert_eq!(code(text), span);
    }

    #[test]
    fn a_fence_outlasts_the_backticks_inside() {
        assert_eq!(fenced("x"), "```text\nx\n```\n");
        assert_eq!(fenced("a ```` b"), "`````text\na ```` b\n`````\n");
    }

    #[rstest]
    #[case("VM1: ip a", "VM1: ip a")]
    #[case("2*2 <b> | _x_ x_y", "2\\*2 \\<b\\> \\| \\_x\\_ x_y")]
    #[case("one\ntwo", "one two")]
    fn inline_text_shows_as_written(#[case] text: &str, #[case] shown: &str) {
        assert_eq!(inline(text), shown);
    }

    #[test]
    fn long_lines_are_clipped_on_a_char_boundary() {
        let line = "é".repeat(LINE_CHARS + 5);
        let clipped = clip(&line);
        assert!(clipped.starts_with(&"é".repeat(LINE_CHARS)));
        assert!(clipped.ends_with("[… line cut]"));
        assert_eq!(clip("short"), "short");
    }
}

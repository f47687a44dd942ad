//! The Markdown renderer, for `$GITHUB_STEP_SUMMARY` and a pull-request
//! comment: the environment, a table of labs, what failed and why, then the
//! errata and unchecked claims of each lab folded away. Renders the model;
//! decides no outcome of its own.

use super::failure::describe_failure;
use super::model::{LabOutcome, LabReport, Outcome, Report, StepReport};
use crate::text;
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
        text::markdown_inline(&env.labcheck),
        text::markdown_inline(&env.qemu),
        text::markdown_inline(env.accelerator.as_str()),
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
            text::markdown_inline(&lab.id),
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
        text::markdown_inline(&lab.id),
        text::markdown_inline(&lab.title),
        lab.outcome.word(),
        text::markdown_inline(&lab.handout),
        text::markdown_inline(lab.network.as_str()),
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
        .map(|vm| format!(" on {}", text::markdown_code(vm)))
        .unwrap_or_default();
    let mut out = format!(
        "\n#### {mark} {}\n\n{} step{on}, {}\n\n",
        text::markdown_inline(&step.name),
        text::markdown_code(step.kind.as_str()),
        format_millis(step.duration_ms),
    );
    let Some(failure) = describe_failure(step) else {
        return out;
    };
    let facts: Vec<String> = failure
        .facts
        .iter()
        .map(|fact| format!("{:<13}{}", format!("{}:", fact.label.word()), fact.text))
        .collect();
    out.push_str(&text::markdown_fenced(&facts.join("\n")));
    out.push_str(&last_lines("Output", &failure.output, OUTPUT_LINES));
    let console: Vec<&str> = failure.console_tail.iter().map(String::as_str).collect();
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
    format!(
        "\n{caption} ({which}):\n\n{}",
        text::markdown_fenced(&shown.join("\n"))
    )
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
                text::markdown_inline(&s.name),
                text::markdown_inline(s.note.as_deref().unwrap_or("no reason given"))
            )
        })
        .collect();
    if errata.is_empty() && claims.is_empty() {
        return None;
    }
    let mut out = format!(
        "\n<details><summary>{}: {} errata, {} not checked</summary>\n",
        text::html(&lab.id),
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
    let name = text::markdown_inline(&step.name);
    let reason = text::markdown_inline(&erratum.reason);
    if !erratum.reproduced {
        return Some(format!(
            "- **{name}**: no longer reproduces, the handout's command works as printed (erratum: {reason})\n"
        ));
    }
    // The fix on a line of its own: reasons and commands hold `;` themselves.
    let fix = erratum
        .fix
        .as_ref()
        .map(|fix| format!("fix used: {}", text::markdown_code(fix)))
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

#[cfg(test)]
mod tests {
    use super::{clip, LINE_CHARS};

    #[test]
    fn long_lines_are_clipped_on_a_char_boundary() {
        let line = "é".repeat(LINE_CHARS + 5);
        let clipped = clip(&line);
        assert!(clipped.starts_with(&"é".repeat(LINE_CHARS)));
        assert!(clipped.ends_with("[… line cut]"));
        assert_eq!(clip("short"), "short");
    }
}

//! The HTML renderer: the whole report as one self-contained page to open
//! from a CI artifact or a laptop. Inline CSS only: no script, and nothing
//! fetched (no font, stylesheet or image by URL), so the page reads the same
//! offline and leaks nothing when opened. `<details>` folds what a reader
//! checks only now and then. Renders the model; decides no outcome of its
//! own.

use std::fmt::Write as _;
use std::path::{Component, Path};

use super::failure::{step_facts, FactLabel};
use super::model::{
    ErratumReport, LabOutcome, LabReport, Outcome, Report, StepReport, SubstitutionReport,
    TranscriptReport,
};
use crate::text;
use crate::time::format_millis;

/// Bytes of one transcript kept in the page: a console left running can
/// print without end. The end is kept, where a failure shows.
const TRANSCRIPT_BYTES: usize = 512 * 1024;

const STYLE: &str = "
body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:78em;padding:0 1em;color:#1f2328;line-height:1.4}
h1,h2,h3,h4{margin:.8em 0 .3em}
h4{font-size:1em}
pre{background:#f6f8fa;border:1px solid #d0d7de;padding:.5em;overflow-x:auto;white-space:pre-wrap;word-break:break-all;margin:.3em 0}
code{background:#f6f8fa;padding:0 .2em}
table{border-collapse:collapse;margin:.5em 0}
th,td{border:1px solid #d0d7de;padding:.2em .5em;text-align:left;vertical-align:top}
td.n{text-align:right}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.1em 1em;margin:.3em 0}
dl.facts dt{font-weight:600}
dl.facts dd{margin:0}
section.lab{border-top:3px solid #d0d7de;margin-top:2em}
article.step{border-left:4px solid var(--c,#d0d7de);padding:.1em .8em;margin:.6em 0}
.meta{color:#59636e;margin:0}
.mark{display:inline-block;min-width:1.3em;text-align:center;font-weight:700}
.o-passed{--c:#1a7f37}
.o-failed{--c:#cf222e}
.o-error{--c:#8250df}
.o-erratum{--c:#9a6700}
.o-skipped{--c:#6e7781}
.o-not_checked{--c:#0969da}
.mark,.outcome,.tl-bar{color:var(--c)}
.console{background:#fff8f8;border-color:#cf222e}
.timeline{margin:.5em 0}
.tl-row{display:grid;grid-template-columns:22em 1fr 5em;gap:.5em;align-items:center;font-size:.85em}
.tl-label{overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.tl-track{position:relative;height:1em;background:#f6f8fa}
.tl-bar{position:absolute;top:0;bottom:0;min-width:2px;background:currentColor}
.tl-bar.k-vm{background:repeating-linear-gradient(45deg,currentColor 0 4px,transparent 4px 7px)}
.tl-dur{text-align:right}
";

/// The report as one HTML page. `transcript` reads a transcript by its path
/// relative to the report's directory (see [`transcripts_in`]); None shows
/// the transcript as unavailable.
pub fn html(report: &Report, transcript: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
    );
    let _ = writeln!(out, "<title>{}</title>", text::html(&headline(report)));
    let _ = writeln!(out, "<style>{STYLE}</style>\n</head>\n<body>");
    out.push_str(&environment(report));
    out.push_str(&summary_table(&report.labs));
    for (index, lab) in report.labs.iter().enumerate() {
        out.push_str(&lab_section(index, lab, transcript));
    }
    out.push_str("</body>\n</html>\n");
    out
}

/// Reads transcripts under `report_dir`, as `html` wants them: bytes that
/// are not UTF-8 are shown as U+FFFD. A path that is absolute or climbs out
/// of the directory (`..`) reads as unavailable: a report is text anyone can
/// edit, and rendering it must not embed other files.
pub fn transcripts_in(report_dir: &Path) -> impl Fn(&str) -> Option<String> + '_ {
    move |relative| {
        let path = Path::new(relative);
        let inside = path
            .components()
            .all(|part| matches!(part, Component::Normal(_) | Component::CurDir));
        if !inside {
            return None;
        }
        let bytes = std::fs::read(report_dir.join(path)).ok()?;
        Some(String::from_utf8_lossy(&bytes).into_owned())
    }
}

fn headline(report: &Report) -> String {
    let passed = report
        .labs
        .iter()
        .filter(|lab| lab.outcome == LabOutcome::Passed)
        .count();
    format!("labcheck: {passed} of {} lab(s) passed", report.labs.len())
}

fn environment(report: &Report) -> String {
    let env = &report.environment;
    let accelerator = format!("{} ({})", env.accelerator, env.accelerator_detail);
    let mut facts = vec![
        ("labcheck", env.labcheck.as_str()),
        ("QEMU", env.qemu.as_str()),
        ("Accelerator", accelerator.as_str()),
        ("Guest digest", env.guest_digest.as_str()),
    ];
    if !env.namespaces.is_empty() {
        facts.push(("Namespaces", env.namespaces.as_str()));
    }
    format!(
        "<h1>{}</h1>\n<h2>Environment</h2>\n{}",
        text::html(&headline(report)),
        fact_list(&facts)
    )
}

/// A `<dl>` of label and text pairs.
fn fact_list(facts: &[(&str, &str)]) -> String {
    let mut out = String::from("<dl class=\"facts\">\n");
    for (label, value) in facts {
        let _ = writeln!(out, "<dt>{label}</dt><dd>{}</dd>", text::html(value));
    }
    out.push_str("</dl>\n");
    out
}

/// The outcomes counted in the summary table, in its column order.
const COUNTED: [(Outcome, &str); 6] = [
    (Outcome::Passed, "Passed"),
    (Outcome::Erratum, "Errata"),
    (Outcome::Failed, "Failed"),
    (Outcome::Error, "Errors"),
    (Outcome::Skipped, "Skipped"),
    (Outcome::NotChecked, "Not checked"),
];

fn summary_table(labs: &[LabReport]) -> String {
    let mut out = String::from("<h2>Labs</h2>\n<table>\n<tr><th>Lab</th><th>Result</th>");
    for (_, heading) in COUNTED {
        let _ = write!(out, "<th>{heading}</th>");
    }
    out.push_str("<th>Duration</th></tr>\n");
    for (index, lab) in labs.iter().enumerate() {
        let _ = write!(
            out,
            "<tr><td><a href=\"#{}\">{}</a></td><td class=\"outcome {}\">{} {}</td>",
            lab_anchor(index),
            text::html(&lab.id),
            lab_class(lab.outcome),
            lab.outcome.mark(),
            lab.outcome.word(),
        );
        for (outcome, _) in COUNTED {
            let count = lab.steps.iter().filter(|s| s.outcome == outcome).count();
            let _ = write!(out, "<td class=\"n\">{count}</td>");
        }
        let _ = writeln!(
            out,
            "<td class=\"n\">{}</td></tr>",
            format_millis(lab.duration_ms)
        );
    }
    out.push_str("</table>\n");
    out
}

/// Anchors by position: a lab id may hold any character.
fn lab_anchor(index: usize) -> String {
    format!("lab-{}", index + 1)
}

fn lab_section(
    index: usize,
    lab: &LabReport,
    transcript: &dyn Fn(&str) -> Option<String>,
) -> String {
    let mut out = format!(
        "\n<section class=\"lab\" id=\"{}\">\n<h2><span class=\"mark {}\">{}</span> {}: {} <span class=\"outcome {}\">({})</span></h2>\n",
        lab_anchor(index),
        lab_class(lab.outcome),
        lab.outcome.mark(),
        text::html(&lab.id),
        text::html(&lab.title),
        lab_class(lab.outcome),
        lab.outcome.word(),
    );
    let lab_duration = format_millis(lab.duration_ms);
    out.push_str(&fact_list(&[
        ("Handout section", &lab.handout),
        ("Network", lab.network.as_str()),
        ("Duration", &lab_duration),
        ("Lab file", &lab.source),
    ]));
    out.push_str(&stand_ins(lab));
    out.push_str(&substitutions(&lab.substitutions));
    out.push_str(&timeline(&lab.steps));
    out.push_str("<h3>Steps</h3>\n");
    for step in &lab.steps {
        out.push_str(&step_article(step));
    }
    out.push_str(&transcripts(&lab.transcripts, transcript));
    out.push_str("</section>\n");
    out
}

fn stand_ins(lab: &LabReport) -> String {
    if lab.stand_ins.is_empty() {
        return String::new();
    }
    let mut out = String::from("<h3>Stand-ins</h3>\n<ul>\n");
    for stand_in in &lab.stand_ins {
        let _ = writeln!(
            out,
            "<li><code>{}</code>: the built-in guest as <code>{}</code></li>",
            text::html(&stand_in.name),
            text::html(stand_in.form.as_str())
        );
    }
    out.push_str("</ul>\n");
    out
}

fn substitutions(substitutions: &[SubstitutionReport]) -> String {
    let mut out = String::from("<h3>Substitutions</h3>\n");
    if substitutions.is_empty() {
        out.push_str("<p>None: the handout's commands ran as printed.</p>\n");
        return out;
    }
    out.push_str(
        "<table>\n<tr><th>VM</th><th>Kind</th><th>Original → replacement</th><th>Reason</th></tr>\n",
    );
    for s in substitutions {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{} → <code>{}</code></td><td>{}</td></tr>",
            text::html(&s.vm),
            text::html(&s.kind),
            original(&s.original),
            text::html(&s.replacement),
            text::html(&s.reason),
        );
    }
    out.push_str("</table>\n");
    out
}

/// What a substitution replaced; nothing when it added to the command line.
fn original(text: &str) -> String {
    if text.is_empty() {
        "<em>(added)</em>".to_string()
    } else {
        format!("<code>{}</code>", text::html(text))
    }
}

/// One bar per step, placed by its start and length as a share of the
/// steps' total time. The model holds each step's duration, not its start:
/// a lab runs its steps one after the other (a background step counts only
/// the time to start it), so a step starts where the steps before it end,
/// the cumulative sum of their durations. Steps that start, restart or stop
/// a VM are hatched, so its boots stand out.
fn timeline(steps: &[StepReport]) -> String {
    let total: u64 = steps.iter().map(|s| s.duration_ms).sum();
    let mut out = format!(
        "<h3>Timeline</h3>\n<p class=\"meta\">Steps one after the other, {} in all; hatched bars start, restart or stop a VM.</p>\n<div class=\"timeline\">\n",
        format_millis(total)
    );
    let mut start = 0;
    for step in steps {
        let vm_class = if step.kind.is_vm_lifecycle() {
            " k-vm"
        } else {
            ""
        };
        let label = match &step.vm {
            Some(vm) => format!("{} · {}", step.kind, vm),
            None => step.kind.to_string(),
        };
        let _ = writeln!(
            out,
            "<div class=\"tl-row\"><span class=\"tl-label\" title=\"{name}\">{label}: {name}</span>\
             <span class=\"tl-track\"><span class=\"tl-bar {class}{vm_class}\" style=\"left:{left};width:{width}\" title=\"{name}\"></span></span>\
             <span class=\"tl-dur\">{dur}</span></div>",
            name = text::html(&step.name),
            label = text::html(&label),
            class = outcome_class(step.outcome),
            left = percent(start, total),
            width = percent(step.duration_ms, total),
            dur = format_millis(step.duration_ms),
        );
        start += step.duration_ms;
    }
    out.push_str("</div>\n");
    out
}

/// `part` of `whole` as a CSS percentage with two decimals, in integers so
/// the page is the same on every machine; 0% of nothing.
fn percent(part: u64, whole: u64) -> String {
    let hundredths = u128::from(part) * 10_000 / u128::from(whole.max(1));
    format!("{}.{:02}%", hundredths / 100, hundredths % 100)
}

fn step_article(step: &StepReport) -> String {
    let class = outcome_class(step.outcome);
    let mut meta = vec![step.kind.to_string()];
    meta.extend(step.vm.clone());
    meta.push(outcome_word(step.outcome).to_string());
    meta.push(format_millis(step.duration_ms));
    let mut out = format!(
        "<article class=\"step {class}\">\n<h4><span class=\"mark {class}\">{}</span> {}</h4>\n<p class=\"meta\">{}</p>\n",
        step.outcome.mark(),
        text::html(&step.name),
        text::html(&meta.join(" · ")),
    );
    out.push_str(&step_facts_list(step));
    if let Some(erratum) = &step.erratum {
        out.push_str(&erratum_block(erratum));
    }
    let failed = matches!(step.outcome, Outcome::Failed | Outcome::Error);
    if !step.output.is_empty() {
        // A failure's output is evidence to read; any other step's is there
        // to check, folded.
        let open = if failed { " open" } else { "" };
        let _ = writeln!(
            out,
            "<details{open}><summary>Output ({})</summary><pre>{}</pre></details>",
            line_count(&step.output),
            text::html(&step.output)
        );
    }
    if !step.console_tail.is_empty() {
        let _ = writeln!(
            out,
            "<p>Console tail (last {} lines):</p>\n<pre class=\"console\">{}</pre>",
            step.console_tail.len(),
            text::html(&step.console_tail.join("\n"))
        );
    }
    out.push_str("</article>\n");
    out
}

/// What the step ran, expected and saw, and why it was skipped or not
/// checked: [`step_facts`], the facts every renderer shows, as a list.
fn step_facts_list(step: &StepReport) -> String {
    let mut out = String::from("<dl class=\"facts\">\n");
    for fact in step_facts(step) {
        let (label, class) = match fact.label {
            FactLabel::Command => ("Command", ""),
            FactLabel::Exit => ("Exit", ""),
            FactLabel::Expected => ("Expected", ""),
            FactLabel::Observed => ("Observed", " class=\"outcome o-failed\""),
            FactLabel::Note if step.outcome == Outcome::NotChecked => ("Not checked because", ""),
            FactLabel::Note => ("Note", ""),
        };
        let text = text::html(&fact.text);
        let text = match fact.label {
            FactLabel::Command => format!("<pre>{text}</pre>"),
            _ => text,
        };
        let _ = writeln!(out, "<dt{class}>{label}</dt><dd>{text}</dd>");
    }
    out.push_str("</dl>\n");
    out
}

fn erratum_block(erratum: &ErratumReport) -> String {
    let mut out = String::from("<dl class=\"facts o-erratum\">\n");
    let _ = writeln!(
        out,
        "<dt class=\"outcome\">Erratum</dt><dd>{}</dd>",
        text::html(&erratum.reason)
    );
    if !erratum.reproduced {
        out.push_str(
            "<dt>Stale</dt><dd>no longer reproduces: the handout's command works as printed</dd>\n",
        );
    }
    match &erratum.fix {
        Some(fix) => {
            let _ = writeln!(out, "<dt>Fix</dt><dd><pre>{}</pre></dd>", text::html(fix));
        }
        None if erratum.reproduced => out.push_str("<dt>Fix</dt><dd>none</dd>\n"),
        None => {}
    }
    if let Some(exit) = erratum.fix_exit {
        let _ = writeln!(out, "<dt>Fix exit</dt><dd>{exit}</dd>");
    }
    out.push_str("</dl>\n");
    if !erratum.fix_output.is_empty() {
        let _ = writeln!(
            out,
            "<details><summary>Fix output ({})</summary><pre>{}</pre></details>",
            line_count(&erratum.fix_output),
            text::html(&erratum.fix_output)
        );
    }
    out
}

fn transcripts(transcripts: &[TranscriptReport], read: &dyn Fn(&str) -> Option<String>) -> String {
    if transcripts.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "<h3>Transcripts</h3>\n<p class=\"meta\">Raw console bytes: control characters show as symbols (␛ is ESC).</p>\n",
    );
    for t in transcripts {
        let summary = format!("{} — {}", t.vm, t.path);
        match read(&t.path) {
            Some(text) => {
                let (kept, cut) = tail(&text, TRANSCRIPT_BYTES);
                let cut_note = if cut > 0 {
                    format!("<p class=\"meta\">First {cut} bytes left out; the file has them.</p>")
                } else {
                    String::new()
                };
                let _ = writeln!(
                    out,
                    "<details class=\"transcript\"><summary>{} ({})</summary>{cut_note}<pre>{}</pre></details>",
                    text::html(&summary),
                    line_count(&text),
                    text::html(kept)
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "<details class=\"transcript\"><summary>{}: not available</summary><p>The file could not be read next to the report.</p></details>",
                    text::html(&summary)
                );
            }
        }
    }
    out
}

/// The last `max` bytes of `text` (moved forward to a character boundary),
/// and how many bytes were left out before them.
fn tail(text: &str, max: usize) -> (&str, usize) {
    let mut from = text.len().saturating_sub(max);
    while !text.is_char_boundary(from) {
        from += 1;
    }
    (&text[from..], from)
}

fn line_count(text: &str) -> String {
    match text.lines().count() {
        1 => "1 line".to_string(),
        n => format!("{n} lines"),
    }
}

fn outcome_class(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Passed => "o-passed",
        Outcome::Failed => "o-failed",
        Outcome::Erratum => "o-erratum",
        Outcome::Skipped => "o-skipped",
        Outcome::Error => "o-error",
        Outcome::NotChecked => "o-not_checked",
    }
}

fn outcome_word(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Passed => "passed",
        Outcome::Erratum => "erratum",
        Outcome::Failed => "failed",
        Outcome::Skipped => "skipped",
        Outcome::Error => "error",
        Outcome::NotChecked => "not checked",
    }
}

fn lab_class(outcome: LabOutcome) -> &'static str {
    match outcome {
        LabOutcome::Passed => "o-passed",
        LabOutcome::Failed => "o-failed",
        LabOutcome::Error => "o-error",
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::{percent, tail, transcripts_in};

    #[rstest]
    #[case(0, 0, "0.00%")]
    #[case(1, 3, "33.33%")]
    #[case(50_001, 50_001, "100.00%")]
    #[case(17, 81_531, "0.02%")]
    fn shares_are_percentages(#[case] part: u64, #[case] whole: u64, #[case] shown: &str) {
        assert_eq!(percent(part, whole), shown);
    }

    #[test]
    fn a_long_transcript_keeps_its_end_on_a_char_boundary() {
        assert_eq!(tail("short", 10), ("short", 0));
        assert_eq!(tail("aé b", 3), (" b", 3));
    }

    #[test]
    fn transcripts_are_read_only_inside_the_report_dir() {
        let dir = tempfile::tempdir().expect("temp dir");
        let lab = dir.path().join("lab");
        std::fs::create_dir(&lab).expect("lab dir");
        std::fs::write(lab.join("vm1.log"), b"boot\xff\n").expect("write transcript");
        std::fs::write(dir.path().join("secret"), "no").expect("write secret");
        let read = transcripts_in(&lab);
        assert_eq!(read("vm1.log").as_deref(), Some("boot\u{fffd}\n"));
        assert_eq!(read("missing.log"), None);
        assert_eq!(read("../secret"), None);
        let absolute = dir.path().join("secret");
        assert_eq!(read(&absolute.to_string_lossy()), None);
    }
}

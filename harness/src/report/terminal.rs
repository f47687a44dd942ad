//! The terminal reporter: one line per thing that happened, then a summary.
//! On a terminal it also keeps a status line at the bottom, redrawn after
//! every event: what each running lab is doing (a progress bar over its
//! steps, the step running, its VMs booting or ready). Off a terminal (CI logs, pipes) there are only the plain lines.
//! Consumes events and the finished report; computes no outcome of its own.

use std::collections::BTreeMap;
use std::io::{self, Write};

use super::failure::describe_failure;
use super::model::{Outcome, Report, StepReport};
use crate::events::Event;
use crate::time::{format_duration, format_millis};

#[derive(Debug)]
pub struct TerminalReporter<W: Write> {
    out: W,
    /// The running labs, for the status line; `None` off a terminal.
    live: Option<BTreeMap<String, LabStatus>>,
}

/// What a running lab is doing, as the status line shows it.
#[derive(Debug, Default)]
struct LabStatus {
    steps: usize,
    /// Steps started so far (the one running included).
    started: usize,
    step: Option<String>,
    /// VM → `booting` or `ready`.
    vms: BTreeMap<String, &'static str>,
}

/// A ten-cell progress bar: `done` of `total`.
fn bar(done: usize, total: usize) -> String {
    const CELLS: usize = 10;
    let filled = (done * CELLS).checked_div(total).unwrap_or(0).min(CELLS);
    format!("{}{}", "▰".repeat(filled), "▱".repeat(CELLS - filled))
}

/// Erases the line the cursor is on and returns to its start.
const CLEAR_LINE: &str = "\r\x1b[2K";
/// The status line is cut here: wider, it would wrap, and a wrapped line
/// cannot be erased by CLEAR_LINE.
const STATUS_WIDTH: usize = 100;

impl<W: Write> TerminalReporter<W> {
    /// Plain lines only.
    pub fn new(out: W) -> Self {
        Self { out, live: None }
    }

    /// The writer, back (tests read what was printed).
    pub fn into_inner(self) -> W {
        self.out
    }

    /// Plain lines, and a status line kept at the bottom (for a terminal).
    pub fn live(out: W) -> Self {
        Self {
            out,
            live: Some(BTreeMap::new()),
        }
    }

    /// Prints one event as it happens (and, live, redraws the status line).
    pub fn event(&mut self, event: &Event) -> io::Result<()> {
        if self.live.is_none() {
            return self.line(event);
        }
        write!(self.out, "{CLEAR_LINE}")?;
        self.line(event)?;
        self.track(event);
        let status = self.status();
        write!(self.out, "{status}")?;
        self.out.flush()
    }

    /// Follows what each lab is doing.
    fn track(&mut self, event: &Event) {
        let Some(labs) = &mut self.live else { return };
        match event {
            Event::LabStarted { lab, steps, .. } => {
                let status = LabStatus {
                    steps: *steps,
                    ..LabStatus::default()
                };
                labs.insert(lab.clone(), status);
            }
            Event::LabFinished { lab, .. } => {
                labs.remove(lab);
            }
            Event::StepStarted { lab, index, name } => {
                if let Some(status) = labs.get_mut(lab) {
                    status.started = index + 1;
                    status.step = Some(format!("step {}/{}: {name}", index + 1, status.steps));
                }
            }
            Event::VmBooting { lab, vm } | Event::VmReady { lab, vm, .. } => {
                if let Some(status) = labs.get_mut(lab) {
                    let state = if matches!(event, Event::VmBooting { .. }) {
                        "booting"
                    } else {
                        "ready"
                    };
                    status.vms.insert(vm.clone(), state);
                }
            }
            _ => {}
        }
    }

    /// `[lab] ▰▰▱… step N/M: name · vm1 ready, vm2 booting | [lab2] …`, cut to fit.
    fn status(&self) -> String {
        let Some(labs) = &self.live else {
            return String::new();
        };
        let parts: Vec<String> = labs
            .iter()
            .map(|(lab, status)| {
                let vms: Vec<String> = status
                    .vms
                    .iter()
                    .map(|(vm, state)| format!("{vm} {state}"))
                    .collect();
                let doing = [status.step.clone().unwrap_or_default(), vms.join(", ")]
                    .into_iter()
                    .filter(|part| !part.is_empty())
                    .collect::<Vec<_>>()
                    .join(" · ");
                format!("[{lab}] {} {doing}", bar(status.started, status.steps))
            })
            .collect();
        parts.join(" | ").chars().take(STATUS_WIDTH).collect()
    }

    /// The plain line(s) an event gets.
    fn line(&mut self, event: &Event) -> io::Result<()> {
        let out = &mut self.out;
        match event {
            Event::RunStarted { environment, labs } => writeln!(
                out,
                "labcheck {} · {} · accelerator {} ({}) · guest {} · {} lab(s)",
                environment.labcheck,
                environment.qemu,
                environment.accelerator,
                environment.accelerator_detail,
                short(&environment.guest_digest),
                labs.len(),
            ),
            Event::LabStarted { lab, title, .. } => writeln!(out, "\n── {lab}: {title}"),
            Event::VmPrepared { .. } | Event::StepStarted { .. } => Ok(()),
            Event::VmBooting { lab, vm } => writeln!(out, "   [{lab}] {vm}: booting"),
            Event::VmReady { lab, vm, after } => {
                writeln!(
                    out,
                    "   [{lab}] {vm}: shell ready after {}",
                    format_duration(*after)
                )
            }
            Event::StepFinished { lab, step, .. } => write_step(out, lab, step),
            Event::LabFinished { .. } => Ok(()),
        }
    }

    /// Prints the summary of a finished run (the status line goes).
    pub fn summary(&mut self, report: &Report) -> io::Result<()> {
        if self.live.is_some() {
            write!(self.out, "{CLEAR_LINE}")?;
        }
        writeln!(self.out, "\nSummary")?;
        for lab in &report.labs {
            let count = |o: Outcome| lab.steps.iter().filter(|s| s.outcome == o).count();
            writeln!(
                self.out,
                "  {} {:<28} {} passed, {} errata, {} failed, {} skipped, {} errors, {} not checked in {}",
                lab.outcome.mark(),
                lab.id,
                count(Outcome::Passed),
                count(Outcome::Erratum),
                count(Outcome::Failed),
                count(Outcome::Skipped),
                count(Outcome::Error),
                count(Outcome::NotChecked),
                format_millis(lab.duration_ms),
            )?;
        }
        Ok(())
    }
}

fn write_step(out: &mut impl Write, lab: &str, step: &StepReport) -> io::Result<()> {
    let took = format_millis(step.duration_ms);
    writeln!(
        out,
        " {} [{lab}] {} ({took})",
        step.outcome.mark(),
        step.name
    )?;
    if let Some(erratum) = &step.erratum {
        if erratum.reproduced {
            writeln!(out, "       known erratum: {}", erratum.reason)?;
            if let Some(fix) = &erratum.fix {
                writeln!(out, "       fix used: {fix}")?;
            }
        } else {
            writeln!(
                out,
                "       erratum no longer reproduces: the handout's command works as printed ({})",
                erratum.reason
            )?;
        }
    }
    let Some(failure) = describe_failure(step) else {
        if let Some(note) = &step.note {
            writeln!(out, "       {note}")?;
        }
        return Ok(());
    };
    for fact in &failure.facts {
        writeln!(out, "       {}: {}", fact.label.word(), fact.text)?;
    }
    let from = failure.output.len().saturating_sub(OUTPUT_LINES);
    if !failure.output.is_empty() {
        writeln!(
            out,
            "       output (last {} lines):",
            failure.output.len() - from
        )?;
        for line in &failure.output[from..] {
            writeln!(out, "       > {line}")?;
        }
    }
    if !failure.console_tail.is_empty() {
        writeln!(
            out,
            "       console (last {} lines):",
            failure.console_tail.len()
        )?;
        for line in failure.console_tail {
            writeln!(out, "       | {line}")?;
        }
    }
    Ok(())
}

/// Output lines a failed step shows; report.json has all of it.
const OUTPUT_LINES: usize = 10;

fn short(digest: &str) -> &str {
    digest.get(..12).unwrap_or(digest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn events() -> Vec<Event> {
        vec![
            Event::LabStarted {
                lab: "socket".into(),
                title: "Socket".into(),
                handout: "h".into(),
                source: "s".into(),
                work_dir: "w".into(),
                network: crate::report::Network::Namespace,
                stand_ins: vec![],
                substitutions: vec![],
                steps: 4,
            },
            Event::VmBooting {
                lab: "socket".into(),
                vm: "vm1".into(),
            },
            Event::VmBooting {
                lab: "socket".into(),
                vm: "vm2".into(),
            },
            Event::VmReady {
                lab: "socket".into(),
                vm: "vm1".into(),
                after: Duration::from_secs(3),
            },
            Event::StepStarted {
                lab: "socket".into(),
                index: 1,
                name: "Ping VM2".into(),
            },
        ]
    }

    fn shown(reporter: TerminalReporter<Vec<u8>>) -> String {
        String::from_utf8(reporter.out).expect("utf-8")
    }

    #[test]
    fn live_keeps_a_status_line_of_what_each_lab_does() {
        let mut reporter = TerminalReporter::live(Vec::new());
        for event in events() {
            reporter.event(&event).expect("written");
        }
        let text = shown(reporter);
        // The step's start prints no line of its own: after the last
        // erasure there is only the status.
        let status = text.rsplit(CLEAR_LINE).next().expect("a status line");
        assert_eq!(
            status,
            "[socket] ▰▰▰▰▰▱▱▱▱▱ step 2/4: Ping VM2 · vm1 ready, vm2 booting"
        );
        assert!(text.contains("   [socket] vm1: shell ready after 3.0s\n"));
    }

    #[test]
    fn a_finished_lab_leaves_the_status_line() {
        let mut reporter = TerminalReporter::live(Vec::new());
        for event in events() {
            reporter.event(&event).expect("written");
        }
        reporter
            .event(&Event::LabFinished {
                lab: "socket".into(),
                duration: Duration::from_secs(9),
                transcripts: vec![],
            })
            .expect("written");
        assert!(shown(reporter).ends_with(CLEAR_LINE));
    }

    #[test]
    fn off_a_terminal_there_are_only_plain_lines() {
        let mut reporter = TerminalReporter::new(Vec::new());
        for event in events() {
            reporter.event(&event).expect("written");
        }
        let text = shown(reporter);
        assert!(!text.contains('\x1b'), "{text:?}");
        assert!(text.ends_with("shell ready after 3.0s\n"), "{text:?}");
    }
}

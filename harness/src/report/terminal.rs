//! The terminal reporter: one line per thing that happened, then a summary.
//! Consumes events and the finished report; computes no outcome of its own.

use std::io::{self, Write};

use super::model::{LabOutcome, Outcome, Report, StepReport};
use crate::runner::Event;
use crate::time::format_duration;

#[derive(Debug)]
pub struct TerminalReporter<W: Write> {
    out: W,
}

impl<W: Write> TerminalReporter<W> {
    pub fn new(out: W) -> Self {
        Self { out }
    }

    /// Prints one event as it happens.
    pub fn event(&mut self, event: &Event) -> io::Result<()> {
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

    /// Prints the summary of a finished run.
    pub fn summary(&mut self, report: &Report) -> io::Result<()> {
        writeln!(self.out, "\nSummary")?;
        for lab in &report.labs {
            let count = |o: Outcome| lab.steps.iter().filter(|s| s.outcome == o).count();
            writeln!(
                self.out,
                "  {} {:<28} {} passed, {} errata, {} failed, {} skipped, {} errors, {} not checked in {}",
                lab_mark(lab.outcome),
                lab.id,
                count(Outcome::Passed),
                count(Outcome::Erratum),
                count(Outcome::Failed),
                count(Outcome::Skipped),
                count(Outcome::Error),
                count(Outcome::NotChecked),
                format_duration(std::time::Duration::from_millis(lab.duration_ms)),
            )?;
        }
        Ok(())
    }
}

fn write_step(out: &mut impl Write, lab: &str, step: &StepReport) -> io::Result<()> {
    let took = format_duration(std::time::Duration::from_millis(step.duration_ms));
    writeln!(
        out,
        " {} [{lab}] {} ({took})",
        step_mark(step.outcome),
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
    if let Some(note) = &step.note {
        writeln!(out, "       {note}")?;
    }
    if matches!(step.outcome, Outcome::Failed | Outcome::Error) {
        if let Some(command) = &step.command {
            writeln!(out, "       command: {command}")?;
        }
        for expected in &step.expected {
            writeln!(out, "       expected: {expected}")?;
        }
        for mismatch in &step.mismatches {
            writeln!(out, "       observed: {mismatch}")?;
        }
        let lines: Vec<&str> = step.output.lines().collect();
        if !lines.is_empty() {
            let from = lines.len().saturating_sub(OUTPUT_LINES);
            writeln!(out, "       output (last {} lines):", lines.len() - from)?;
            for line in &lines[from..] {
                writeln!(out, "       > {line}")?;
            }
        }
        if !step.console_tail.is_empty() {
            writeln!(
                out,
                "       console (last {} lines):",
                step.console_tail.len()
            )?;
            for line in &step.console_tail {
                writeln!(out, "       | {line}")?;
            }
        }
    }
    Ok(())
}

/// Output lines a failed step shows; report.json has all of it.
const OUTPUT_LINES: usize = 10;

fn step_mark(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Passed => "✓",
        Outcome::Erratum => "!",
        Outcome::Failed => "✗",
        Outcome::Skipped => "-",
        Outcome::Error => "E",
        Outcome::NotChecked => "?",
    }
}

fn lab_mark(outcome: LabOutcome) -> &'static str {
    match outcome {
        LabOutcome::Passed => "✓",
        LabOutcome::Failed => "✗",
        LabOutcome::Error => "E",
    }
}

fn short(digest: &str) -> &str {
    digest.get(..12).unwrap_or(digest)
}

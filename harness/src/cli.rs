//! The `labcheck` command line: its arguments, and each command as a
//! function that returns a [`Verdict`] or a [`CliError`]; [`exit::finish`]
//! prints the error and picks the exit code, in one place.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::scenario::{self, model::Lab};
use crate::shard::Shard;

pub mod exit;
pub mod grade;
mod merge;
mod run;

pub use exit::{finish, CliError, Verdict};
use run::{build_guest, in_runtime, prepare, StopSignals};
pub use run::{probe_accelerator, run_command};

#[derive(Debug, Parser)]
#[command(
    name = "labcheck",
    version,
    about = "Verifies QEMU lab handouts against real virtual machines"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run lab files against real VMs and report every step.
    Run(RunArgs),
    /// Validate lab files without running anything.
    Check {
        /// The lab files (`.toml`) to validate.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Build the built-in guest (if missing or stale) and print where it is.
    Guest,
    /// Grade students' submissions against real VMs: each student's files
    /// run in a sandbox, scored by the labs' rubrics.
    Grade(grade::GradeArgs),
    /// Grade the reference submission (the handout's commands with the
    /// errata fixed: full marks) and an empty one (zero), several times.
    Selftest(grade::SelftestArgs),
    /// Join the reports of shards (`run --shard K/N`) into one, rendered as
    /// `run` renders its own, transcripts copied along.
    Merge {
        /// Where the merged report goes.
        #[arg(long, default_value = "target/labcheck")]
        out: PathBuf,
        /// The shards' report.json files.
        #[arg(required = true)]
        reports: Vec<PathBuf>,
    },
}

#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// The lab files (`.toml`) to run; all are validated before any runs.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Where report.json and the console transcripts go.
    #[arg(long, default_value = "target/labcheck")]
    pub out: PathBuf,
    /// Keep each lab's work dir (images, sockets, QEMU logs) after the run.
    #[arg(long)]
    pub keep: bool,
    /// How many labs run at once (each boots its own VMs).
    #[arg(long, short = 'j', default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: u16,
    /// Run only shard K of N: the labs sorted by id, every N-th from the
    /// K-th. All files are still validated first.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<Shard>,
}

/// Entry point of the `labcheck` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run_command(&args),
        Command::Check { files } => check_command(&files),
        Command::Merge { out, reports } => merge::merge_command(&out, &reports),
        Command::Grade(args) => grade::grade_command(&args),
        Command::Selftest(args) => grade::selftest_command(&args),
        Command::Guest => build_guest().map(|artifacts| {
            say(&artifacts.dir.display().to_string());
            Verdict::Passed
        }),
    };
    ExitCode::from(finish(result))
}

/// `labcheck check`: every file validated, nothing run.
fn check_command(files: &[PathBuf]) -> Result<Verdict, CliError> {
    for lab in load_labs(files)? {
        say(&format!(
            "{}: ok ({} steps)",
            lab.source.display(),
            lab.steps.len()
        ));
    }
    Ok(Verdict::Passed)
}

/// Loads and validates every lab file (every VM's command line included:
/// the lab file's parser checks them).
/// Nothing runs unless all of them are valid; the error holds every
/// problem of every file.
pub fn load_labs(files: &[PathBuf]) -> Result<Vec<Lab>, CliError> {
    let mut labs = Vec::new();
    let mut problems = Vec::new();
    for file in files {
        match scenario::load(file) {
            Ok(lab) => labs.push(lab),
            Err(error) => problems.push(render_diagnostic(&error)),
        }
    }
    if problems.is_empty() {
        Ok(labs)
    } else {
        Err(CliError::InvalidLabFiles(problems))
    }
}

fn render_diagnostic(error: &dyn miette::Diagnostic) -> String {
    let mut text = String::new();
    let handler =
        miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor());
    if handler.render_report(&mut text, error).is_err() {
        text = error.to_string();
    }
    text
}

fn say(line: &str) {
    let _ = writeln!(std::io::stdout(), "{line}");
}

fn complain(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

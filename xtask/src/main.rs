#![allow(clippy::print_stdout, clippy::print_stderr)] // a command-line tool: printing is its job

//! `cargo xtask`: the project's automation. Each command installs or builds
//! what it needs, or says exactly what is missing and how to get it.

mod bench;
mod bench_grading;
mod bench_labs;
mod setup;
mod snapshots;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask")]
struct Xtask {
    #[command(subcommand)]
    command: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Install the host packages (as root, via apt) and build the guest.
    Setup,
    /// Build the built-in guest from fixtures/guest/packages.lock.
    Fixtures,
    /// Run every lab in scenarios/ (or the named ones) against real VMs.
    VerifyLabs {
        /// Lab ids (file names in scenarios/ without .toml); all when none.
        ids: Vec<String>,
        /// Keep each lab's work dir.
        #[arg(long)]
        keep: bool,
        /// How many labs run at once.
        #[arg(long, short = 'j', default_value_t = 2)]
        jobs: u16,
        /// Run only shard K of N (see `labcheck run --shard`).
        #[arg(long, value_name = "K/N")]
        shard: Option<labcheck::shard::Shard>,
        /// Update the snapshots of labs whose canonical report changed,
        /// instead of failing with the diff.
        #[arg(long)]
        accept: bool,
    },
    /// Set up what the tests need, then run them with cargo-nextest.
    Test {
        /// Extra arguments for `cargo nextest run`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Measure boot-to-shell per guest form and the guest command round trip.
    Bench {
        /// Boots per guest form.
        #[arg(long, default_value_t = 5)]
        boots: usize,
        /// Round trips of `echo N`.
        #[arg(long, default_value_t = 200)]
        round_trips: usize,
        /// Instead: time each lab and the whole verify-labs at --jobs 1 and 2,
        /// this many rounds.
        #[arg(long, value_name = "ROUNDS")]
        labs: Option<usize>,
        /// Instead: grading throughput on fixtures/submissions at --jobs 1
        /// and 2, this many rounds, and whether every run agreed.
        #[arg(long, value_name = "ROUNDS", conflicts_with = "labs")]
        grading: Option<usize>,
    },
}

fn main() -> ExitCode {
    let task = Xtask::parse().command;
    let result = match task {
        Task::Setup => setup::host_packages().and_then(|()| setup::guest().map(drop)),
        Task::Fixtures => setup::guest().map(drop),
        Task::VerifyLabs {
            ids,
            keep,
            jobs,
            shard,
            accept,
        } => verify_labs(&ids, keep, jobs, shard, accept),
        Task::Test { args } => test(&args),
        Task::Bench {
            boots,
            round_trips,
            labs,
            grading,
        } => setup::host_packages()
            .and_then(|()| setup::guest())
            .and_then(|guest| match (labs, grading) {
                (Some(rounds), _) => lab_files(&workspace_root().join("scenarios"), &[])
                    .and_then(|files| bench_labs::run(files, rounds)),
                (None, Some(rounds)) => bench_grading::run(&workspace_root(), rounds),
                (None, None) => bench::run(&guest, boots, round_trips),
            }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Message(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Exit(code)) => ExitCode::from(code),
    }
}

/// Why a task stopped.
#[derive(Debug)]
enum Failure {
    /// xtask itself could not go on; the text says what to do.
    Message(String),
    /// A command it ran failed with this exit code, having said why itself.
    Exit(u8),
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure::Message(message)
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

fn verify_labs(
    ids: &[String],
    keep: bool,
    jobs: u16,
    shard: Option<labcheck::shard::Shard>,
    accept: bool,
) -> Result<(), Failure> {
    setup::host_packages()?;
    setup::guest()?;
    let root = workspace_root();
    let files = lab_files(&root.join("scenarios"), ids)?;
    let args = labcheck::cli::RunArgs {
        files,
        out: root.join("target/labcheck"),
        keep,
        jobs,
        shard,
    };
    let code = labcheck::cli::finish(labcheck::cli::run_command(&args));
    // A run that got as far as a report is reviewed even when a step failed:
    // the diff shows what changed. Usage errors and interruptions are not.
    if matches!(code, 0 | 1) {
        snapshots::review(&args.out, &root.join("scenarios/snapshots"), accept)?;
    }
    match code {
        0 => Ok(()),
        code => Err(Failure::Exit(code)),
    }
}

/// The lab files in `dir`, all or those whose ids are named (in that order).
fn lab_files(dir: &Path, ids: &[String]) -> Result<Vec<PathBuf>, Failure> {
    labcheck::scenario::find::find_labs(dir, ids).map_err(|e| Failure::Message(e.to_string()))
}

fn test(args: &[String]) -> Result<(), Failure> {
    setup::host_packages()?;
    setup::test_packages()?;
    setup::nextest()?;
    setup::lint_tools()?;
    setup::guest()?;
    // The house style first: a formatting slip or a lint fails in seconds,
    // before minutes of VM tests.
    cargo(&["fmt", "--all", "--check"])?;
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])?;
    let mut nextest = vec!["nextest", "run", "--workspace"];
    nextest.extend(args.iter().map(String::as_str));
    cargo(&nextest)
}

/// Runs `cargo ARGS` in the workspace; its own output says what failed.
fn cargo(args: &[&str]) -> Result<(), Failure> {
    let status = Command::new(env!("CARGO"))
        .args(args)
        .current_dir(workspace_root())
        .status()
        .map_err(|e| format!("cannot run cargo {}: {e}", args[0]))?;
    match status.code() {
        Some(0) => Ok(()),
        Some(code) => Err(Failure::Exit(u8::try_from(code).unwrap_or(1))),
        None => Err(Failure::Message(format!(
            "cargo {} was killed by a signal",
            args[0]
        ))),
    }
}

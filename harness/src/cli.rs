//! The `labcheck` command line. Exit codes (documented in the README):
//! 0 every lab passed (known errata included), 1 a step failed, 2 usage or
//! lab-file error, 3 labcheck itself could not run (QEMU, guest, I/O), 130
//! interrupted (SIGINT or SIGTERM).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tokio::signal::unix::{signal, SignalKind};

use crate::guest::{self, BuildOptions};
use crate::net::NamespaceKind;
use crate::report::{Environment, Report, ReportBuilder, TerminalReporter};
use crate::runner::{run_lab, Event, EventSink, RunContext};
use crate::scenario::{self, model::Lab};
use crate::shard::Shard;
use crate::time::Deadline;
use crate::vm::{accel, CommandLine};

pub mod grade;

pub const EXIT_PASSED: u8 = 0;
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_INFRA: u8 = 3;
pub const EXIT_INTERRUPTED: u8 = 130;

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
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Build the built-in guest (if missing or stale) and print where it is.
    Guest,
    /// Join the reports of shards (`run --shard K/N`) into one, rendered as
    /// `run` renders its own, transcripts copied along.
    /// Grade students' submissions against real VMs: each student's files
    /// run in a sandbox, scored by the labs' rubrics.
    Grade(grade::GradeArgs),
    /// Grade the reference submission (the handout's commands with the
    /// errata fixed: full marks) and an empty one (zero), several times.
    Selftest(grade::SelftestArgs),
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
    let code = match cli.command {
        Command::Run(args) => run_command(&args),
        Command::Check { files } => match load_labs(&files) {
            Ok(labs) => {
                for lab in &labs {
                    say(&format!(
                        "{}: ok ({} steps)",
                        lab.source.display(),
                        lab.steps.len()
                    ));
                }
                EXIT_PASSED
            }
            Err(code) => code,
        },
        Command::Merge { out, reports } => merge_command(&out, &reports),
        Command::Grade(args) => grade::grade_command(&args),
        Command::Selftest(args) => grade::selftest_command(&args),
        Command::Guest => match build_guest() {
            Ok(artifacts) => {
                say(&artifacts.dir.display().to_string());
                EXIT_PASSED
            }
            Err(message) => {
                complain(&message);
                EXIT_INFRA
            }
        },
    };
    ExitCode::from(code)
}

/// Loads and validates every lab file, every VM's command line included.
/// Nothing runs unless all of them are valid.
pub fn load_labs(files: &[PathBuf]) -> Result<Vec<Lab>, u8> {
    let mut labs = Vec::new();
    let mut failed = false;
    for file in files {
        match scenario::load(file) {
            Ok(lab) => {
                failed |= !command_lines_valid(&lab);
                labs.push(lab);
            }
            Err(error) => {
                failed = true;
                complain(&render_diagnostic(&error));
            }
        }
    }
    if failed {
        Err(EXIT_USAGE)
    } else {
        Ok(labs)
    }
}

fn command_lines_valid(lab: &Lab) -> bool {
    let mut valid = true;
    for vm in &lab.vms {
        if let Err(error) = CommandLine::parse(&vm.qemu) {
            valid = false;
            complain(&format!(
                "{}:{}:{}: vm.{}.qemu: {error}",
                vm.location.file.display(),
                vm.location.line,
                vm.location.column,
                vm.name
            ));
        }
    }
    valid
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

/// `labcheck run`: validate, prepare (guest, accelerator), run, report.
pub fn run_command(args: &RunArgs) -> u8 {
    let labs = match load_labs(&args.files) {
        Ok(labs) => labs,
        Err(code) => return code,
    };
    let labs = match args.shard {
        Some(shard) => {
            let mine = shard.select(labs, |lab| lab.id.clone());
            let ids: Vec<&str> = mine.iter().map(|lab| lab.id.as_str()).collect();
            say(&format!("shard {shard}: {}", ids.join(", ")));
            mine
        }
        None => labs,
    };
    in_runtime(async { Ok(run_labs(labs, args).await) }).unwrap_or_else(|code| code)
}

/// Runs `work` on a fresh multi-threaded runtime; `Err` is an exit code.
fn in_runtime<T>(work: impl std::future::Future<Output = Result<T, u8>>) -> Result<T, u8> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            complain(&format!("cannot start the async runtime: {e}"));
            EXIT_INFRA
        })?;
    let result = runtime.block_on(work);
    // Dropping the runtime cancels what is left, and so kills its VMs, before we exit.
    drop(runtime);
    result
}

async fn run_labs(labs: Vec<Lab>, args: &RunArgs) -> u8 {
    // Registered before anything starts, so that Ctrl-C (or a SIGTERM from
    // a CI runner's timeout) during the guest build or the probe also
    // unwinds, killing QEMU and removing work dirs, instead of ending the
    // process where it stands.
    let mut interrupt = match StopSignals::watch() {
        Ok(signals) => signals,
        Err(e) => {
            complain(&format!("cannot watch for Ctrl-C: {e}"));
            return EXIT_INFRA;
        }
    };
    let prepared = tokio::select! {
        prepared = prepare(&args.out, args.keep, args.jobs) => prepared,
        _ = interrupt.recv() => {
            complain("interrupted while preparing: nothing ran");
            return EXIT_INTERRUPTED;
        }
    };
    let ctx = match prepared {
        Ok(ctx) => ctx,
        Err(message) => {
            complain(&message);
            return EXIT_INFRA;
        }
    };
    let (events, mut received) = EventSink::channel();
    let consumer = tokio::spawn(async move {
        let mut builder = ReportBuilder::new();
        let stdout = std::io::stdout();
        let mut terminal = if stdout.is_terminal() {
            TerminalReporter::live(stdout)
        } else {
            TerminalReporter::new(stdout)
        };
        while let Some(event) = received.recv().await {
            let _ = terminal.event(&event);
            builder.apply(&event);
        }
        let report = builder.finish();
        let _ = terminal.summary(&report);
        report
    });
    events.emit(Event::RunStarted {
        environment: environment(&ctx).await,
        labs: labs.iter().map(|lab| lab.id.clone()).collect(),
    });
    let work_root = ctx.work_root.clone();
    let jobs = usize::from(args.jobs);
    let outcome = run_concurrently(labs, ctx, &events, jobs, &mut interrupt).await;
    drop(events);
    let _ = std::fs::remove_dir(&work_root);
    let report = match consumer.await {
        Ok(report) => report,
        Err(e) => {
            complain(&format!("the reporter failed: {e}"));
            return EXIT_INFRA;
        }
    };
    if let Err(e) = write_report(&report, &args.out) {
        complain(&format!(
            "cannot write the report under {}: {e}",
            args.out.display()
        ));
        return EXIT_INFRA;
    }
    match outcome {
        None => {
            complain("interrupted: VMs stopped and work dirs removed; partial report written");
            EXIT_INTERRUPTED
        }
        Some(Err(error)) => {
            complain(&error.to_string());
            EXIT_INFRA
        }
        Some(Ok(())) if report.all_passed() => EXIT_PASSED,
        Some(Ok(())) => EXIT_FAILED,
    }
}

/// Runs `labs`, at most `jobs` at a time. The first lab that cannot start
/// ends the run; so does a stop signal (then `None`). Either way the labs
/// still running are cancelled, and have stopped their VMs and removed
/// their work dirs, before this returns.
async fn run_concurrently(
    labs: Vec<Lab>,
    ctx: RunContext,
    events: &EventSink,
    jobs: usize,
    interrupt: &mut StopSignals,
) -> Option<Result<(), crate::runner::RunError>> {
    let ctx = Arc::new(ctx);
    let mut waiting = labs.into_iter();
    let mut running = tokio::task::JoinSet::new();
    let outcome = loop {
        // Labs start in the given order, as slots free up.
        while running.len() < jobs {
            let Some(lab) = waiting.next() else { break };
            let (ctx, events) = (ctx.clone(), events.clone());
            running.spawn(async move { run_lab(&lab, &ctx, &events).await });
        }
        let joined = tokio::select! {
            joined = running.join_next() => joined,
            _ = interrupt.recv() => break None,
        };
        match joined {
            None => break Some(Ok(())),
            Some(Ok(Ok(()))) => {}
            Some(Ok(Err(error))) => break Some(Err(error)),
            Some(Err(failed)) if failed.is_panic() => {
                std::panic::resume_unwind(failed.into_panic())
            }
            Some(Err(_cancelled)) => {}
        }
    };
    running.shutdown().await;
    outcome
}

/// What every lab of a run needs before the first one starts: the guest
/// built, the accelerator probed, the output dir made.
async fn prepare(out: &Path, keep: bool, jobs: u16) -> Result<RunContext, String> {
    let guest = tokio::task::spawn_blocking(build_guest)
        .await
        .map_err(|e| format!("guest build task failed: {e}"))??;
    let probe = probe_accelerator(&guest).await;
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let out_dir =
        std::fs::canonicalize(out).map_err(|e| format!("cannot resolve {}: {e}", out.display()))?;
    Ok(RunContext {
        guest,
        probe,
        out_dir,
        work_root: work_root(),
        keep,
        namespaces: NamespaceKind::for_this_process(),
        parallel: jobs > 1,
        jail_slot: 0,
    })
}

/// SIGINT and SIGTERM, either of which stops a run cleanly.
#[derive(Debug)]
pub(crate) struct StopSignals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn watch() -> std::io::Result<Self> {
        Ok(StopSignals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

/// Which accelerator VMs use, probed by booting the guest (see
/// [`accel::probe_cached`]); the finding is remembered in the guest cache.
pub async fn probe_accelerator(guest: &guest::Artifacts) -> accel::Probe {
    let deadline = Deadline::after(Duration::from_secs(20));
    let append = guest::Artifacts::DIRECT_BOOT_APPEND;
    match BuildOptions::from_env() {
        Ok(options) => {
            let cache = options.cache_dir.join("accel-probe.json");
            accel::probe_cached(&cache, &guest.vmlinux, &guest.initramfs, append, deadline).await
        }
        Err(_) => accel::probe(&guest.vmlinux, &guest.initramfs, append, deadline).await,
    }
}

/// A short per-process dir under the system temp dir (socket paths must stay
/// under 108 bytes); `LABCHECK_WORK_ROOT` overrides it.
fn work_root() -> PathBuf {
    std::env::var_os("LABCHECK_WORK_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join(format!("labcheck-{}", std::process::id())))
}

fn build_guest() -> Result<guest::Artifacts, String> {
    let options = BuildOptions::from_env().map_err(|e| e.to_string())?;
    guest::ensure_built(&options, &mut |line| complain(line)).map_err(|e| e.to_string())
}

async fn environment(ctx: &RunContext) -> Environment {
    Environment {
        labcheck: env!("CARGO_PKG_VERSION").to_string(),
        qemu: qemu_version().await,
        accelerator: ctx.probe.accel.to_string(),
        accelerator_detail: ctx.probe.detail.clone(),
        guest_digest: ctx.guest.digest.clone(),
        namespaces: ctx.namespaces.describe().to_string(),
    }
}

async fn qemu_version() -> String {
    match tokio::process::Command::new(crate::vm::QEMU)
        .arg("--version")
        .output()
        .await
    {
        Ok(out) => String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or("unknown")
            .to_string(),
        Err(e) => format!("unknown ({e})"),
    }
}

/// `labcheck merge`: reads the shards' reports, joins them, copies each
/// lab's transcripts next to the merged report and renders it.
fn merge_command(out: &Path, files: &[PathBuf]) -> u8 {
    let mut reports = Vec::new();
    for file in files {
        let read = std::fs::read_to_string(file)
            .map_err(|e| e.to_string())
            .and_then(|text| serde_json::from_str::<Report>(&text).map_err(|e| e.to_string()));
        match read {
            Ok(report) => reports.push(report),
            Err(e) => {
                complain(&format!("{}: not a labcheck report: {e}", file.display()));
                return EXIT_USAGE;
            }
        }
    }
    let sources: Vec<(PathBuf, Vec<String>)> = files
        .iter()
        .zip(&reports)
        .map(|(file, report)| (report_dir(file), transcript_paths(report)))
        .collect();
    let merged = match crate::report::merge(reports) {
        Ok(merged) => merged,
        Err(e) => {
            complain(&format!("cannot merge: {e}"));
            return EXIT_USAGE;
        }
    };
    for warning in &merged.warnings {
        complain(&format!("warning: {warning}"));
    }
    let written = std::fs::create_dir_all(out)
        .and_then(|()| copy_transcripts(&sources, out))
        .and_then(|()| write_report(&merged.report, out));
    if let Err(e) = written {
        complain(&format!(
            "cannot write the merged report under {}: {e}",
            out.display()
        ));
        return EXIT_INFRA;
    }
    let _ = TerminalReporter::new(std::io::stdout()).summary(&merged.report);
    if merged.report.all_passed() {
        EXIT_PASSED
    } else {
        EXIT_FAILED
    }
}

/// The directory a report's relative transcript paths start from.
fn report_dir(file: &Path) -> PathBuf {
    file.parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn transcript_paths(report: &Report) -> Vec<String> {
    report
        .labs
        .iter()
        .flat_map(|lab| lab.transcripts.iter().map(|t| t.path.clone()))
        .collect()
}

/// Copies each shard's transcripts to the same relative path under `out`
/// (lab ids are unique across shards, so paths do not collide). A missing
/// transcript is left out: the report still names it.
fn copy_transcripts(sources: &[(PathBuf, Vec<String>)], out: &Path) -> std::io::Result<()> {
    for (dir, paths) in sources {
        for path in paths {
            let (from, to) = (dir.join(path), out.join(path));
            if !from.exists() || from == to {
                continue;
            }
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::copy(&from, &to)?;
        }
    }
    Ok(())
}

/// The report in every form under `out`: `report.json` (the model),
/// `junit.xml` (for CI test views), `summary.md` (for a job summary or a
/// pull-request comment) and `report.html` (one self-contained page, with
/// the transcripts that sit beside it).
fn write_report(report: &Report, out: &Path) -> std::io::Result<()> {
    use crate::report::{html, junit, markdown, transcripts_in};
    let json = serde_json::to_string_pretty(report).map_err(std::io::Error::other)?;
    std::fs::write(out.join("report.json"), json + "\n")?;
    std::fs::write(out.join("junit.xml"), junit(report))?;
    std::fs::write(out.join("summary.md"), markdown(report))?;
    std::fs::write(out.join("report.html"), html(report, &transcripts_in(out)))
}

fn say(line: &str) {
    let _ = writeln!(std::io::stdout(), "{line}");
}

fn complain(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

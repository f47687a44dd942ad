//! `labcheck run`: validate, prepare (guest, accelerator), run the labs
//! `--jobs` at a time, write every rendering of the report. SIGINT and
//! SIGTERM stop it at any point: running labs are cancelled (their VMs,
//! namespaces and work dirs go) and a partial report is written.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};

use super::{complain, load_labs, say, CliError, RunArgs, Verdict};
use crate::events::{Event, EventSink};
use crate::guest::{self, BuildOptions};
use crate::net::NamespaceKind;
use crate::report::{Environment, Report, ReportBuilder, TerminalReporter};
use crate::runner::{run_lab, RunContext};
use crate::scenario::model::Lab;
use crate::time::Deadline;
use crate::vm::accel;

/// `qemu-system-x86_64 --version` answers in milliseconds; a QEMU that does
/// not answer in this long is named "unknown" rather than holding the run.
const QEMU_QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// `labcheck run`: validate, prepare (guest, accelerator), run, report.
pub fn run_command(args: &RunArgs) -> Result<Verdict, CliError> {
    let labs = load_labs(&args.files)?;
    let labs = match args.shard {
        Some(shard) => {
            let mine = shard.select(labs, |lab| lab.id.clone());
            let ids: Vec<&str> = mine.iter().map(|lab| lab.id.as_str()).collect();
            say(&format!("shard {shard}: {}", ids.join(", ")));
            mine
        }
        None => labs,
    };
    in_runtime(run_labs(labs, args))
}

/// Runs `work` on a fresh multi-threaded runtime.
pub(super) fn in_runtime<T>(
    work: impl std::future::Future<Output = Result<T, CliError>>,
) -> Result<T, CliError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Prepare(format!("cannot start the async runtime: {e}")))?;
    let result = runtime.block_on(work);
    // Dropping the runtime cancels what is left, and so kills its VMs, before we exit.
    drop(runtime);
    result
}

async fn run_labs(labs: Vec<Lab>, args: &RunArgs) -> Result<Verdict, CliError> {
    // Registered before anything starts, so that Ctrl-C (or a SIGTERM from
    // a CI runner's timeout) during the guest build or the probe also
    // unwinds, killing QEMU and removing work dirs, instead of ending the
    // process where it stands.
    let mut interrupt = StopSignals::watch()?;
    let ctx = tokio::select! {
        prepared = prepare(&args.out, args.keep, args.jobs) => prepared?,
        _ = interrupt.recv() => return Err(CliError::Interrupted {
            detail: " while preparing: nothing ran",
        }),
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
    let report = consumer
        .await
        .map_err(|e| CliError::Prepare(format!("the reporter failed: {e}")))?;
    write_report(&report, &args.out).map_err(|source| CliError::Write {
        what: "the report",
        dir: args.out.clone(),
        source,
    })?;
    match outcome {
        None => Err(CliError::Interrupted {
            detail: ": VMs stopped and work dirs removed; partial report written",
        }),
        Some(Err(error)) => Err(error.into()),
        Some(Ok(())) => Ok(Verdict::of(report.all_passed())),
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
pub(super) async fn prepare(out: &Path, keep: bool, jobs: u16) -> Result<RunContext, CliError> {
    let guest = tokio::task::spawn_blocking(build_guest)
        .await
        .map_err(|e| CliError::Prepare(format!("guest build task failed: {e}")))??;
    let probe = probe_accelerator(&guest).await;
    std::fs::create_dir_all(out)
        .map_err(|e| CliError::Prepare(format!("cannot create {}: {e}", out.display())))?;
    let out_dir = std::fs::canonicalize(out)
        .map_err(|e| CliError::Prepare(format!("cannot resolve {}: {e}", out.display())))?;
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
    pub(super) fn watch() -> Result<Self, CliError> {
        let watch = |kind| {
            signal(kind).map_err(|e| CliError::Prepare(format!("cannot watch for Ctrl-C: {e}")))
        };
        Ok(StopSignals {
            interrupt: watch(SignalKind::interrupt())?,
            terminate: watch(SignalKind::terminate())?,
        })
    }

    pub(super) async fn recv(&mut self) {
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

pub(super) fn build_guest() -> Result<guest::Artifacts, CliError> {
    let options = BuildOptions::from_env().map_err(|e| CliError::Prepare(e.to_string()))?;
    guest::ensure_built(&options, &mut |line| complain(line))
        .map_err(|e| CliError::Prepare(e.to_string()))
}

async fn environment(ctx: &RunContext) -> Environment {
    Environment {
        labcheck: env!("CARGO_PKG_VERSION").to_string(),
        qemu: qemu_version().await,
        accelerator: ctx.probe.accel.into(),
        accelerator_detail: ctx.probe.detail.clone(),
        guest_digest: ctx.guest.digest.clone(),
        namespaces: ctx.namespaces.describe().to_string(),
    }
}

async fn qemu_version() -> String {
    let mut query = tokio::process::Command::new(crate::vm::QEMU);
    query.arg("--version");
    let deadline = Deadline::after(QEMU_QUERY_TIMEOUT);
    match crate::process::run(query, &crate::process::Enclosure::host(), deadline).await {
        Ok(out) => out.text().lines().next().unwrap_or("unknown").to_string(),
        Err(e) => format!("unknown ({e})"),
    }
}

/// The report in every form under `out`: `report.json` (the model),
/// `junit.xml` (for CI test views), `summary.md` (for a job summary or a
/// pull-request comment) and `report.html` (one self-contained page, with
/// the transcripts that sit beside it).
pub(super) fn write_report(report: &Report, out: &Path) -> std::io::Result<()> {
    use crate::report::{html, junit, markdown, transcripts_in};
    let json = serde_json::to_string_pretty(report).map_err(std::io::Error::other)?;
    std::fs::write(out.join("report.json"), json + "\n")?;
    std::fs::write(out.join("junit.xml"), junit(report))?;
    std::fs::write(out.join("summary.md"), markdown(report))?;
    std::fs::write(out.join("report.html"), html(report, &transcripts_in(out)))
}

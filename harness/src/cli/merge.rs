//! `labcheck merge`: the reports of shards joined into one.

use std::path::{Path, PathBuf};

use super::run::write_report;
use super::{complain, CliError, Verdict};
use crate::report::{Report, TerminalReporter};

/// `labcheck merge`: reads the shards' reports, joins them, copies each
/// lab's transcripts next to the merged report and renders it.
pub(super) fn merge_command(out: &Path, files: &[PathBuf]) -> Result<Verdict, CliError> {
    let reports = files
        .iter()
        .map(|file| read_report(file))
        .collect::<Result<Vec<_>, _>>()?;
    let sources: Vec<(PathBuf, Vec<String>)> = files
        .iter()
        .zip(&reports)
        .map(|(file, report)| (report_dir(file), transcript_paths(report)))
        .collect();
    let merged = crate::report::merge(reports)?;
    for warning in &merged.warnings {
        complain(&format!("warning: {warning}"));
    }
    std::fs::create_dir_all(out)
        .and_then(|()| copy_transcripts(&sources, out))
        .and_then(|()| write_report(&merged.report, out))
        .map_err(|source| CliError::Write {
            what: "the merged report",
            dir: out.to_path_buf(),
            source,
        })?;
    let _ = TerminalReporter::new(std::io::stdout()).summary(&merged.report);
    Ok(Verdict::of(merged.report.all_passed()))
}

fn read_report(file: &Path) -> Result<Report, CliError> {
    std::fs::read_to_string(file)
        .map_err(|e| e.to_string())
        .and_then(|text| serde_json::from_str::<Report>(&text).map_err(|e| e.to_string()))
        .map_err(|reason| CliError::NotAReport {
            path: file.to_path_buf(),
            reason,
        })
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

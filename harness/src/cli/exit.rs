//! How a `labcheck` command ends: a [`Verdict`] when it did its job, a
//! [`CliError`] when it could not, and [`finish`], the one place either is
//! printed and turned into the process's exit code.
//!
//! Exit codes (documented in the README and `docs/grading.md`):
//!
//! | code | meaning |
//! |---:|---|
//! | 0 | every lab passed (known errata included), every check scored |
//! | 1 | a step or a check failed: the expected bad outcome |
//! | 2 | usage error or invalid lab file: nothing ran |
//! | 3 | labcheck itself could not run (QEMU, guest, I/O), or a submission was not gradable |
//! | 130 | interrupted by SIGINT or SIGTERM: VMs stopped, work dirs removed |

use std::io::Write;
use std::path::PathBuf;

pub const EXIT_PASSED: u8 = 0;
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_INFRA: u8 = 3;
pub const EXIT_INTERRUPTED: u8 = 130;

/// What a command that ran to its end found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every lab passed (errata shown), every check of every submission scored.
    Passed,
    /// At least one step or check failed.
    Failed,
}

impl Verdict {
    pub fn of(all_passed: bool) -> Self {
        if all_passed {
            Verdict::Passed
        } else {
            Verdict::Failed
        }
    }
}

/// Why a command could not do its job. Each variant has one exit code; the
/// text is printed once, by [`finish`].
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Lab files with problems, each already rendered (miette's report:
    /// file:line:col, the line, a caret).
    #[error("{}", .0.join("\n"))]
    InvalidLabFiles(Vec<String>),
    /// The arguments name something that is not there or not usable.
    #[error("{0}")]
    Usage(String),
    /// A file given to `merge` that is not a labcheck report.
    #[error("{}: not a labcheck report: {reason}", path.display())]
    NotAReport { path: PathBuf, reason: String },
    /// The shards' reports cannot be joined (a lab reported twice, …).
    #[error("cannot merge: {0}")]
    Merge(#[from] crate::report::MergeError),
    /// labcheck's own preparation failed: the guest build, the runtime,
    /// the output dir.
    #[error("{0}")]
    Prepare(String),
    /// A lab could not be started at all (its work dir, its namespace).
    #[error(transparent)]
    Run(#[from] crate::runner::RunError),
    /// A report, or grading results, could not be written.
    #[error("cannot write {what} under {}: {source}", dir.display())]
    Write {
        what: &'static str,
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Some submissions, or some of their labs, got no score: labcheck or
    /// the machine failed, never the student (the lines above say which).
    #[error("{count} submission(s) not gradable: no score was given")]
    NotGradable { count: usize },
    /// SIGINT or SIGTERM: the labs running were cancelled; `detail` says
    /// what was left (a partial report, nothing).
    #[error("interrupted{detail}")]
    Interrupted { detail: &'static str },
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::InvalidLabFiles(_)
            | CliError::Usage(_)
            | CliError::NotAReport { .. }
            | CliError::Merge(_) => EXIT_USAGE,
            CliError::Prepare(_)
            | CliError::Run(_)
            | CliError::Write { .. }
            | CliError::NotGradable { .. } => EXIT_INFRA,
            CliError::Interrupted { .. } => EXIT_INTERRUPTED,
        }
    }
}

/// Prints `result`'s error, if any, on stderr and returns the exit code it
/// stands for. Every `labcheck` command (and `cargo xtask`) ends here.
pub fn finish(result: Result<Verdict, CliError>) -> u8 {
    finish_on(result, &mut std::io::stderr())
}

fn finish_on(result: Result<Verdict, CliError>, stderr: &mut impl Write) -> u8 {
    match result {
        Ok(Verdict::Passed) => EXIT_PASSED,
        Ok(Verdict::Failed) => EXIT_FAILED,
        Err(error) => {
            let _ = writeln!(stderr, "{error}");
            error.exit_code()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::usage(CliError::Usage("no lab `x`".into()), EXIT_USAGE)]
    #[case::lab_files(CliError::InvalidLabFiles(vec!["a.toml:1:1: bad".into()]), EXIT_USAGE)]
    #[case::report(CliError::NotAReport { path: "r.json".into(), reason: "EOF".into() }, EXIT_USAGE)]
    #[case::prepare(CliError::Prepare("no QEMU".into()), EXIT_INFRA)]
    #[case::not_gradable(CliError::NotGradable { count: 2 }, EXIT_INFRA)]
    #[case::interrupted(CliError::Interrupted { detail: "" }, EXIT_INTERRUPTED)]
    fn each_error_has_its_documented_exit_code(#[case] error: CliError, #[case] code: u8) {
        let message = error.to_string();
        let mut stderr = Vec::new();
        assert_eq!(finish_on(Err(error), &mut stderr), code);
        assert_eq!(String::from_utf8_lossy(&stderr), message + "\n");
    }

    #[test]
    fn verdicts_are_zero_and_one_and_print_nothing() {
        let mut stderr = Vec::new();
        assert_eq!(finish_on(Ok(Verdict::Passed), &mut stderr), EXIT_PASSED);
        assert_eq!(finish_on(Ok(Verdict::Failed), &mut stderr), EXIT_FAILED);
        assert!(stderr.is_empty());
    }
}

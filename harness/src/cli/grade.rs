//! `labcheck grade` and `labcheck selftest`. Their exit codes are those of
//! [`super::exit`]: 3 means a submission was not gradable (labcheck or the
//! machine failed: no score was given).

use std::path::{Path, PathBuf};

use super::{complain, in_runtime, load_labs, prepare, say, CliError, StopSignals, Verdict};
use crate::grade::model::{CheckStatus, Gradebook, LabResult};
use crate::grade::outputs;
use crate::grade::program::{self, Files};
use crate::grade::run::{grade_all, transcripts_dir, Graded, Submission};
use crate::grade::submission;
use crate::runner::RunContext;
use crate::scenario::{self, model::Lab};

#[derive(Debug, Clone, clap::Args)]
pub struct GradeArgs {
    /// A lab to grade: its id (a file `<id>.toml` in --labs-dir) or a lab
    /// file. Repeat it, or separate with commas, for several.
    #[arg(long = "lab", required = true, value_delimiter = ',')]
    pub labs: Vec<String>,
    /// The submissions: one directory, `.zip` or `.tar.gz` per student,
    /// named after the student.
    pub submissions: PathBuf,
    /// Where results, feedback, the gradebook and transcripts go.
    #[arg(long)]
    pub out: PathBuf,
    /// How many (student, lab) pairs run at once.
    #[arg(long, short = 'j', default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: u16,
    /// Show `after_due_date` checks in the students' feedback.
    #[arg(long)]
    pub after_due_date: bool,
    /// Where lab ids are looked up.
    #[arg(long, default_value = "scenarios")]
    pub labs_dir: PathBuf,
}

#[derive(Debug, Clone, clap::Args)]
pub struct SelftestArgs {
    /// Labs to test: ids (in --labs-dir) or lab files.
    #[arg(required = true)]
    labs: Vec<String>,
    /// How many times each submission is graded; results must not differ.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..))]
    runs: u16,
    /// How many gradings run at once.
    #[arg(long, short = 'j', default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    jobs: u16,
    /// Where transcripts go.
    #[arg(long, default_value = "target/labcheck/selftest")]
    out: PathBuf,
    /// Where lab ids are looked up.
    #[arg(long, default_value = "scenarios")]
    labs_dir: PathBuf,
}

pub fn grade_command(args: &GradeArgs) -> Result<Verdict, CliError> {
    let labs = load_labs(&lab_files(&args.labs, &args.labs_dir)?)?;
    refuse_ungraded(&labs)?;
    let slots: Vec<String> = labs
        .iter()
        .filter_map(|lab| lab.grading.as_ref())
        .flat_map(|grading| grading.slots.iter().map(|slot| slot.path.clone()))
        .collect();
    let (submissions, rejected) = load_submissions(&args.submissions, &slots)
        .map_err(|error| CliError::Usage(error.to_string()))?;
    let book = in_runtime(graded(&labs, submissions, &args.out, args.jobs))?;
    outputs::write_all(&book, &args.out, args.after_due_date).map_err(|source| {
        CliError::Write {
            what: "the grading results",
            dir: args.out.clone(),
            source,
        }
    })?;
    say(&format!(
        "gradebook: {}",
        args.out.join("gradebook.csv").display()
    ));
    let not_gradable = rejected + not_gradable(&book);
    if not_gradable > 0 {
        return Err(CliError::NotGradable {
            count: not_gradable,
        });
    }
    Ok(verdict(&book))
}

/// Every submission in `dir`, read; entries that cannot be graded at all
/// (a name that is not a safe student name) are reported and counted.
fn load_submissions(
    dir: &Path,
    slots: &[String],
) -> Result<(Vec<Submission>, usize), submission::SubmissionError> {
    let found = submission::discover(dir)?;
    for entry in &found.rejected {
        complain(&format!("not gradable: {}: {}", entry.entry, entry.reason));
    }
    let slots: Vec<&str> = slots.iter().map(String::as_str).collect();
    let limits = submission::Limits::default();
    let submissions = found
        .sources
        .iter()
        .map(|source| submission::load(source, &slots, &limits))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((submissions, found.rejected.len()))
}

pub fn selftest_command(args: &SelftestArgs) -> Result<Verdict, CliError> {
    let labs = load_labs(&lab_files(&args.labs, &args.labs_dir)?)?;
    let (graded_labs, plain): (Vec<Lab>, Vec<Lab>) =
        labs.into_iter().partition(|lab| lab.grading.is_some());
    for lab in &plain {
        say(&format!(
            "{}: no rubric (it verifies the handout only)",
            lab.id
        ));
    }
    let mut submissions = Vec::new();
    for run in 1..=args.runs {
        for (name, files) in [
            ("reference", reference_files(&graded_labs)),
            ("empty", Files::new()),
        ] {
            submissions.push(Submission {
                student: format!("{name}-{run}"),
                files,
                problems: Vec::new(),
            });
        }
    }
    let book = in_runtime(graded(&graded_labs, submissions, &args.out, args.jobs))?;
    let findings = selftest_findings(&book);
    for finding in &findings {
        say(finding);
    }
    let not_gradable = not_gradable(&book);
    if not_gradable > 0 {
        return Err(CliError::NotGradable {
            count: not_gradable,
        });
    }
    if findings.is_empty() {
        say(&format!(
            "selftest passed: the reference scores full marks and an empty submission 0, {} times alike",
            args.runs
        ));
    }
    Ok(Verdict::of(findings.is_empty()))
}

/// Every lab's slots filled with their defaults.
fn reference_files(labs: &[Lab]) -> Files {
    labs.iter()
        .filter_map(|lab| lab.grading.as_ref())
        .flat_map(program::reference)
        .collect()
}

/// What is wrong with a selftest's gradebook: a reference short of full
/// marks, an empty submission above zero, or a check whose result differs
/// between runs. Empty when all is well.
fn selftest_findings(book: &Gradebook) -> Vec<String> {
    let mut findings = Vec::new();
    for student in &book.students {
        let empty = student.student.starts_with("empty");
        for lab in &student.labs {
            let wanted = if empty { 0 } else { lab.max_points };
            match lab.score() {
                None => findings.push(format!(
                    "{}: {} not gradable: {}",
                    lab.lab,
                    student.student,
                    lab.not_gradable.as_deref().unwrap_or_default()
                )),
                Some(score) if score != wanted => findings.push(format!(
                    "{}: {} scored {score} of {}, expected {wanted}: {}",
                    lab.lab,
                    student.student,
                    lab.max_points,
                    not_passed(lab)
                )),
                Some(_) => {}
            }
        }
    }
    findings.extend(unstable_checks(book));
    findings
}

fn not_passed(lab: &LabResult) -> String {
    lab.checks
        .iter()
        .filter(|check| check.status != CheckStatus::Passed)
        .map(|check| format!("{} ({:?})", check.id, check.status))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks whose status differs between runs of the same submission.
fn unstable_checks(book: &Gradebook) -> Vec<String> {
    let mut findings = Vec::new();
    for kind in ["reference", "empty"] {
        let runs: Vec<_> = book
            .students
            .iter()
            .filter(|s| s.student.starts_with(kind))
            .collect();
        let Some((first, rest)) = runs.split_first() else {
            continue;
        };
        for (l, lab) in first.labs.iter().enumerate() {
            for (c, check) in lab.checks.iter().enumerate() {
                let differs = rest.iter().any(|other| {
                    other
                        .labs
                        .get(l)
                        .and_then(|lab| lab.checks.get(c))
                        .map(|o| o.status)
                        != Some(check.status)
                });
                if differs {
                    findings.push(format!(
                        "{}: unstable check `{}` on the {kind} submission",
                        lab.lab, check.id
                    ));
                }
            }
        }
    }
    findings
}

/// Lab ids and files to lab files (see [`scenario::find`]).
fn lab_files(labs: &[String], labs_dir: &Path) -> Result<Vec<PathBuf>, CliError> {
    scenario::find::find_labs(labs_dir, labs).map_err(|e| CliError::Usage(e.to_string()))
}

/// Refuses labs without a rubric: grading them would give everyone 0 of 0.
fn refuse_ungraded(labs: &[Lab]) -> Result<(), CliError> {
    let plain: Vec<&str> = labs
        .iter()
        .filter(|lab| lab.grading.is_none())
        .map(|lab| lab.id.as_str())
        .collect();
    if plain.is_empty() {
        return Ok(());
    }
    Err(CliError::Usage(format!(
        "{} {} no [[grade]] steps: nothing to grade",
        plain.join(", "),
        if plain.len() == 1 { "has" } else { "have" }
    )))
}

/// Prepares (guest, accelerator) and grades, stopping cleanly on Ctrl-C.
async fn graded(
    labs: &[Lab],
    submissions: Vec<Submission>,
    out: &Path,
    jobs: u16,
) -> Result<Gradebook, CliError> {
    let mut interrupt = StopSignals::watch()?;
    let transcripts = transcripts_dir(out);
    let ctx: RunContext = tokio::select! {
        prepared = prepare(&transcripts, false, jobs) => prepared?,
        _ = interrupt.recv() => return Err(CliError::Interrupted {
            detail: " while preparing: nothing ran",
        }),
    };
    say(&format!(
        "grading {} submission(s) on {}: accelerator {}",
        submissions.len(),
        labs.iter()
            .map(|lab| lab.id.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        ctx.probe.accel
    ));
    let work_root = ctx.work_root.clone();
    let book = tokio::select! {
        book = grade_all(labs, submissions, &ctx, usize::from(jobs), show) => book,
        _ = interrupt.recv() => {
            let _ = std::fs::remove_dir(&work_root);
            return Err(CliError::Interrupted {
                detail: ": VMs stopped and work dirs removed; no results written",
            });
        }
    };
    let _ = std::fs::remove_dir(&work_root);
    Ok(book)
}

fn show(graded: &Graded) {
    let result = &graded.result;
    let score = match result.score() {
        Some(score) => format!("{score}/{}", result.max_points),
        None => format!(
            "not gradable: {}",
            result.not_gradable.as_deref().unwrap_or_default()
        ),
    };
    say(&format!(
        "{:<24} {:<12} {score}",
        graded.student, result.lab
    ));
}

/// How many submissions have a lab that got no score.
fn not_gradable(book: &Gradebook) -> usize {
    book.students.iter().filter(|s| !s.is_gradable()).count()
}

/// Passed when every check of every submission passed.
fn verdict(book: &Gradebook) -> Verdict {
    Verdict::of(
        book.students
            .iter()
            .flat_map(|s| &s.labs)
            .flat_map(|lab| &lab.checks)
            .all(|check| check.status == CheckStatus::Passed),
    )
}

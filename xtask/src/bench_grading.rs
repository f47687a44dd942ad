//! `cargo xtask bench --grading ROUNDS`: grading throughput on the sample
//! submissions (`fixtures/submissions/`), at `--jobs 1` and `--jobs 2`,
//! runs interleaved so that both settings meet the same machine load; and
//! whether every run gave the same results (scores and every check's
//! status), as grading must.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use labcheck::grade::model::StudentResult;

use super::bench::summary;
use super::Failure;

/// The settings compared side by side.
const JOBS: [u16; 2] = [1, 2];

/// The labs a submission is graded on.
const LABS: [&str; 4] = ["clone-cow", "clone-full", "socket", "tap"];

pub fn run(root: &Path, rounds: usize) -> Result<(), Failure> {
    let submissions = root.join("fixtures").join("submissions");
    let mut times: BTreeMap<u16, Vec<Duration>> = BTreeMap::new();
    let mut outcomes: Vec<(String, String)> = Vec::new();
    let mut students = 0;
    for round in 1..=rounds {
        for jobs in JOBS {
            eprintln!("xtask: grading bench round {round}/{rounds}, --jobs {jobs}");
            let (took, graded, outcome) = grade_once(root, &submissions, jobs)?;
            times.entry(jobs).or_default().push(took);
            students = graded;
            outcomes.push((format!("round {round}, --jobs {jobs}"), outcome));
        }
    }
    println!("\n| grading {students} sample submissions on {} labs | wall time, median of {rounds} | min | max | submissions per minute (median) |", LABS.len());
    println!("|---|---:|---:|---:|---:|");
    let mut medians = BTreeMap::new();
    for (jobs, runs) in &mut times {
        let (median, min, max) = summary(runs);
        medians.insert(*jobs, median);
        let per_minute = students as f64 * 60.0 / median;
        println!("| --jobs {jobs} | {median:.1} s | {min:.1} s | {max:.1} s | {per_minute:.2} |");
    }
    if let (Some(one), Some(two)) = (medians.get(&1), medians.get(&2)) {
        println!("\n--jobs 2 / --jobs 1 = {:.2}", two / one);
    }
    let (first_run, first) = &outcomes[0];
    let differing: Vec<&str> = outcomes
        .iter()
        .filter(|(_, outcome)| outcome != first)
        .map(|(run, _)| run.as_str())
        .collect();
    if differing.is_empty() {
        println!(
            "results identical in all {} runs (scores and every check's status)",
            outcomes.len()
        );
        Ok(())
    } else {
        Err(Failure::Message(format!(
            "results differ from {first_run} in: {}",
            differing.join(", ")
        )))
    }
}

/// One grading of the samples with `jobs`: its wall time, how many
/// submissions, and every check's outcome as one comparable text.
fn grade_once(
    root: &Path,
    submissions: &Path,
    jobs: u16,
) -> Result<(Duration, usize, String), Failure> {
    let out = tempfile::Builder::new()
        .prefix("lcb-grade-")
        .tempdir()
        .map_err(|e| format!("cannot make a temp dir: {e}"))?;
    let args = labcheck::cli::grade::GradeArgs {
        labs: LABS.iter().map(|lab| lab.to_string()).collect(),
        submissions: submissions.to_path_buf(),
        out: out.path().to_path_buf(),
        jobs,
        after_due_date: false,
        labs_dir: root.join("scenarios"),
    };
    let started = Instant::now();
    let code = labcheck::cli::finish(labcheck::cli::grade::grade_command(&args));
    let took = started.elapsed();
    // 1: some checks fail, as the samples' mistakes should.
    if code != 1 {
        return Err(Failure::Message(format!(
            "grading the samples exited {code} at --jobs {jobs}, not 1"
        )));
    }
    let results = out.path().join("results");
    let mut entries: Vec<_> = std::fs::read_dir(&results)
        .map_err(|e| format!("cannot list {}: {e}", results.display()))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .collect();
    entries.sort();
    let mut outcome = String::new();
    for path in &entries {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let result: StudentResult = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not a result: {e}", path.display()))?;
        for lab in &result.labs {
            for check in &lab.checks {
                outcome.push_str(&format!(
                    "{} {} {} {:?} {}\n",
                    result.student, lab.lab, check.id, check.status, check.awarded
                ));
            }
        }
    }
    Ok((took, entries.len(), outcome))
}

//! `cargo xtask bench --labs`: the wall time of each lab and of the whole
//! `verify-labs` at `--jobs 1` and `--jobs 2`, runs interleaved so that both
//! settings meet the same machine load. Medians are quoted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::bench::summary;
use super::Failure;

/// The settings compared side by side.
const JOBS: [u16; 2] = [1, 2];

pub fn run(files: Vec<PathBuf>, runs: usize) -> Result<(), Failure> {
    let mut whole: BTreeMap<u16, Vec<Duration>> = BTreeMap::new();
    let mut per_lab: BTreeMap<String, Vec<Duration>> = BTreeMap::new();
    for round in 1..=runs {
        for jobs in JOBS {
            eprintln!("xtask: bench round {round}/{runs}, --jobs {jobs}");
            let (took, labs) = verify_once(&files, jobs)?;
            whole.entry(jobs).or_default().push(took);
            // Alone (one job), a lab's time is its own, not its neighbour's.
            if jobs == 1 {
                for (id, lab_took) in labs {
                    per_lab.entry(id).or_default().push(lab_took);
                }
            }
        }
    }
    println!("\n| lab (alone, --jobs 1) | wall time, median of {runs} | min | max |");
    println!("|---|---:|---:|---:|");
    for (id, times) in &mut per_lab {
        let (median, min, max) = summary(times);
        println!("| {id} | {median:.1} s | {min:.1} s | {max:.1} s |");
    }
    println!("\n| whole verify-labs | wall time, median of {runs} | min | max |");
    println!("|---|---:|---:|---:|");
    let mut medians = BTreeMap::new();
    for (jobs, times) in &mut whole {
        let (median, min, max) = summary(times);
        medians.insert(*jobs, median);
        println!("| --jobs {jobs} | {median:.1} s | {min:.1} s | {max:.1} s |");
    }
    if let (Some(one), Some(two)) = (medians.get(&1), medians.get(&2)) {
        println!("\n--jobs 2 / --jobs 1 = {:.2}", two / one);
    }
    Ok(())
}

/// One full run of the labs with `jobs`; its wall time and each lab's own.
fn verify_once(
    files: &[PathBuf],
    jobs: u16,
) -> Result<(Duration, Vec<(String, Duration)>), Failure> {
    let out = tempfile::Builder::new()
        .prefix("lcb-labs-")
        .tempdir()
        .map_err(|e| format!("cannot make a temp dir: {e}"))?;
    let args = labcheck::cli::RunArgs {
        files: files.to_vec(),
        out: out.path().to_path_buf(),
        keep: false,
        jobs,
        shard: None,
    };
    let started = Instant::now();
    let code = labcheck::cli::finish(labcheck::cli::run_command(&args));
    let took = started.elapsed();
    if code != 0 {
        return Err(Failure::Message(format!(
            "the labs did not pass (exit {code}) at --jobs {jobs}: a benchmark of failing labs means nothing"
        )));
    }
    Ok((took, lab_times(out.path())?))
}

/// Each lab's duration from the run's report.json.
fn lab_times(out: &Path) -> Result<Vec<(String, Duration)>, Failure> {
    let path = out.join("report.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let report: labcheck::report::Report = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not a report: {e}", path.display()))?;
    Ok(report
        .labs
        .into_iter()
        .map(|lab| (lab.id, Duration::from_millis(lab.duration_ms)))
        .collect())
}

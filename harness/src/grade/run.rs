//! Grading many submissions: each (student, lab) pair is one job, run
//! `jobs` at a time, each in its own work dir, namespace and sandbox.

use std::path::PathBuf;
use std::sync::Arc;

use super::model::{Gradebook, LabResult, LabRubric, StudentResult, SCHEMA_VERSION};
use super::program::{self, Files};
use crate::events::{Event, EventSink};
use crate::report::{Environment, ReportBuilder};
use crate::runner::{run_lab, RunContext};
use crate::scenario::model::{Grading, Lab};

/// One student's files, as loaded from their directory or archive.
pub use super::submission::Loaded as Submission;

/// Announced as each job ends, for a terminal to show progress.
#[derive(Debug, Clone)]
pub struct Graded {
    pub student: String,
    pub result: LabResult,
}

/// Grades every submission on every lab (labs without grading are left
/// out), `jobs` pairs at a time. A lab that cannot run for a student is
/// not gradable for that student; it never stops the others.
pub async fn grade_all(
    labs: &[Lab],
    submissions: Vec<Submission>,
    ctx: &RunContext,
    jobs: usize,
    progress: impl Fn(&Graded),
) -> Gradebook {
    let labs: Vec<(Lab, Grading)> = labs
        .iter()
        .filter_map(|lab| Some((lab.clone(), lab.grading.clone()?)))
        .collect();
    let shared = Arc::new(labs.clone());
    let mut pending = Vec::new();
    for (s, submission) in submissions.iter().enumerate() {
        for l in 0..labs.len() {
            pending.push((s, l, submission.clone()));
        }
    }
    let mut results: Vec<Vec<Option<LabResult>>> = vec![vec![None; labs.len()]; submissions.len()];
    let slots = u16::try_from(jobs.max(1)).unwrap_or(u16::MAX);
    let mut free_slots: Vec<u16> = (0..slots).rev().collect();
    let mut running = tokio::task::JoinSet::new();
    let mut queue = pending.into_iter();
    loop {
        while let Some(slot) = free_slots.pop() {
            let Some((s, l, submission)) = queue.next() else {
                free_slots.push(slot);
                break;
            };
            let (labs, ctx) = (shared.clone(), job_context(ctx, &submission.student, slot));
            running.spawn(async move {
                let (lab, grading) = &labs[l];
                let result = grade_one(lab, grading, &submission.files, &ctx).await;
                (s, l, slot, result)
            });
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        let (s, l, slot, result) = match joined {
            Ok(done) => done,
            Err(failed) if failed.is_panic() => std::panic::resume_unwind(failed.into_panic()),
            Err(_) => continue,
        };
        free_slots.push(slot);
        progress(&Graded {
            student: submissions[s].student.clone(),
            result: result.clone(),
        });
        results[s][l] = Some(result);
    }
    let students = submissions
        .into_iter()
        .zip(results)
        .map(|(submission, labs_done)| StudentResult {
            student: submission.student,
            labs: labs_done.into_iter().flatten().collect(),
            problems: submission.problems,
        })
        .collect();
    Gradebook {
        schema: SCHEMA_VERSION,
        labs: labs
            .iter()
            .map(|(lab, grading)| LabRubric {
                id: lab.id.clone(),
                title: lab.title.clone(),
                max_points: grading.max_points(),
            })
            .collect(),
        students,
    }
}

/// The run context of one job: transcripts under the student's own dir,
/// and the job slot's own sandbox identity.
fn job_context(ctx: &RunContext, student: &str, slot: u16) -> RunContext {
    RunContext {
        out_dir: ctx.out_dir.join(student),
        jail_slot: slot,
        ..ctx.clone()
    }
}

/// Runs one lab's grading program for one submission and scores it.
pub async fn grade_one(lab: &Lab, grading: &Grading, files: &Files, ctx: &RunContext) -> LabResult {
    if !program::attempted(grading, files) {
        return program::not_attempted(lab, grading);
    }
    let runnable = program::program(lab, grading, files);
    let (events, mut received) = EventSink::channel();
    events.emit(Event::RunStarted {
        environment: Environment::unknown(),
        labs: vec![lab.id.clone()],
    });
    let ran = run_lab(&runnable, ctx, &events).await;
    drop(events);
    let mut builder = ReportBuilder::new();
    while let Some(event) = received.recv().await {
        builder.apply(&event);
    }
    let report = builder.finish();
    match (ran, report.labs.first()) {
        (Err(error), _) => program::not_gradable(lab, grading, error.to_string()),
        (Ok(()), None) => program::not_gradable(lab, grading, "the lab did not start".into()),
        (Ok(()), Some(lab_report)) => program::score(lab, grading, lab_report),
    }
}

/// Where one grading run's transcripts go: `<out>/transcripts`.
pub fn transcripts_dir(out: &std::path::Path) -> PathBuf {
    out.join("transcripts")
}

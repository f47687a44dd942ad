//! Folds the runner's events into a [`Report`].

use std::collections::BTreeMap;

use super::model::{Accelerator, Environment, LabReport, Report, SCHEMA_VERSION};
use crate::events::Event;

#[derive(Debug, Default)]
pub struct ReportBuilder {
    environment: Option<Environment>,
    /// Labs in the order they started.
    order: Vec<String>,
    /// Labs in the order the run was given them.
    given: Vec<String>,
    labs: BTreeMap<String, LabReport>,
}

impl ReportBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::RunStarted { environment, labs } => {
                self.environment = Some(environment.clone());
                self.given = labs.clone();
            }
            Event::LabStarted {
                lab,
                title,
                handout,
                source,
                work_dir,
                network,
                stand_ins,
                substitutions,
                ..
            } => {
                self.order.push(lab.clone());
                self.labs.insert(
                    lab.clone(),
                    LabReport {
                        id: lab.clone(),
                        title: title.clone(),
                        handout: handout.clone(),
                        source: source.clone(),
                        work_dir: work_dir.clone(),
                        network: *network,
                        outcome: super::LabOutcome::Passed,
                        duration_ms: 0,
                        stand_ins: stand_ins.clone(),
                        substitutions: substitutions.clone(),
                        steps: Vec::new(),
                        transcripts: Vec::new(),
                    },
                );
            }
            Event::VmPrepared {
                lab, substitutions, ..
            } => {
                if let Some(report) = self.labs.get_mut(lab) {
                    report.substitutions.extend(substitutions.iter().cloned());
                }
            }
            Event::StepFinished { lab, step, .. } => {
                if let Some(report) = self.labs.get_mut(lab) {
                    report.steps.push(step.as_ref().clone());
                    report.outcome = LabReport::outcome_of(&report.steps);
                }
            }
            Event::LabFinished {
                lab,
                duration,
                transcripts,
            } => {
                if let Some(report) = self.labs.get_mut(lab) {
                    report.duration_ms = duration.as_millis() as u64;
                    report.transcripts = transcripts.clone();
                }
            }
            Event::VmBooting { .. } | Event::VmReady { .. } | Event::StepStarted { .. } => {}
        }
    }

    /// The report of everything seen so far; labs in the order the run was
    /// given them (labs running concurrently start in any order).
    pub fn finish(mut self) -> Report {
        let position = |id: &String| self.given.iter().position(|g| g == id);
        let mut order = std::mem::take(&mut self.order);
        order.sort_by_key(|id| position(id).unwrap_or(usize::MAX));
        let labs = order.iter().filter_map(|id| self.labs.remove(id)).collect();
        Report {
            schema: SCHEMA_VERSION,
            environment: self.environment.unwrap_or_else(Environment::unknown),
            labs,
        }
    }
}

impl Environment {
    /// For a run that ended before it could look at its environment.
    pub fn unknown() -> Self {
        let unknown = || "unknown".to_string();
        Environment {
            labcheck: env!("CARGO_PKG_VERSION").to_string(),
            qemu: unknown(),
            accelerator: Accelerator::Unknown,
            accelerator_detail: unknown(),
            guest_digest: unknown(),
            namespaces: unknown(),
        }
    }
}

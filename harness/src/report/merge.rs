//! Joining the reports of shards (`labcheck merge`) into one. Pure: reading
//! the files and copying transcripts is the CLI's job.

use super::model::{Report, SCHEMA_VERSION};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MergeError {
    #[error("no report to merge")]
    Nothing,
    #[error("report {index} has schema {found}; this labcheck reads schema {SCHEMA_VERSION}")]
    Schema { index: usize, found: u32 },
    #[error("lab `{id}` is in more than one report (reports {first} and {second}): shards must not overlap")]
    Duplicate {
        id: String,
        first: usize,
        second: usize,
    },
}

/// The merged report, and what it could not keep: the environment is the
/// first report's; one that differs (another accelerator, another guest) is
/// named in a warning rather than silently dropped.
#[derive(Debug)]
pub struct Merged {
    pub report: Report,
    pub warnings: Vec<String>,
}

/// One report with every lab of `reports`, sorted by id (the order of a
/// full run over `scenarios/`, whose files are named by their lab ids).
/// Reports are numbered from 1 in messages.
pub fn merge(reports: Vec<Report>) -> Result<Merged, MergeError> {
    let mut numbered = reports.into_iter().enumerate().map(|(i, r)| (i + 1, r));
    let (_, first) = numbered.next().ok_or(MergeError::Nothing)?;
    check_schema(1, &first)?;
    let environment = first.environment.clone();
    let mut labs: Vec<(usize, _)> = first.labs.into_iter().map(|lab| (1, lab)).collect();
    let mut warnings = Vec::new();
    for (index, report) in numbered {
        check_schema(index, &report)?;
        if report.environment != environment {
            warnings.push(format!(
                "report {index} ran elsewhere ({}, accelerator {}, guest {}); the merged report names report 1's environment",
                report.environment.qemu,
                report.environment.accelerator,
                report.environment.guest_digest
            ));
        }
        labs.extend(report.labs.into_iter().map(|lab| (index, lab)));
    }
    labs.sort_by(|(_, a), (_, b)| a.id.cmp(&b.id));
    if let Some(pair) = labs.windows(2).find(|pair| pair[0].1.id == pair[1].1.id) {
        return Err(MergeError::Duplicate {
            id: pair[0].1.id.clone(),
            first: pair[0].0.min(pair[1].0),
            second: pair[0].0.max(pair[1].0),
        });
    }
    Ok(Merged {
        report: Report {
            schema: SCHEMA_VERSION,
            environment,
            labs: labs.into_iter().map(|(_, lab)| lab).collect(),
        },
        warnings,
    })
}

fn check_schema(index: usize, report: &Report) -> Result<(), MergeError> {
    if report.schema == SCHEMA_VERSION {
        Ok(())
    } else {
        Err(MergeError::Schema {
            index,
            found: report.schema,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The recorded six-lab report, split as two shards would have run it.
    fn recorded() -> Report {
        let text = include_str!("../../../fixtures/reports/passing.json");
        serde_json::from_str(text).expect("the recorded report parses")
    }

    fn split(report: &Report, keep: impl Fn(usize) -> bool) -> Report {
        Report {
            labs: report
                .labs
                .iter()
                .enumerate()
                .filter(|(i, _)| keep(*i))
                .map(|(_, lab)| lab.clone())
                .collect(),
            ..report.clone()
        }
    }

    #[test]
    fn two_halves_merge_into_the_whole() {
        let whole = recorded();
        let odd = split(&whole, |i| i % 2 == 1);
        let even = split(&whole, |i| i % 2 == 0);
        let merged = merge(vec![odd, even]).expect("merges");
        let mut ids: Vec<&str> = whole.labs.iter().map(|lab| lab.id.as_str()).collect();
        ids.sort_unstable();
        let merged_ids: Vec<&str> = merged.report.labs.iter().map(|l| l.id.as_str()).collect();
        assert_eq!(merged_ids, ids);
        assert!(merged.warnings.is_empty());
    }

    #[test]
    fn a_lab_in_two_reports_is_refused() {
        let whole = recorded();
        let error = merge(vec![whole.clone(), split(&whole, |i| i == 2)]).expect_err("overlap");
        assert!(
            matches!(
                &error,
                MergeError::Duplicate {
                    first: 1,
                    second: 2,
                    ..
                }
            ),
            "{error}"
        );
    }

    #[test]
    fn another_schema_is_refused() {
        let mut old = recorded();
        old.schema = SCHEMA_VERSION + 1;
        let error = merge(vec![recorded(), old]).expect_err("schema");
        assert_eq!(
            error,
            MergeError::Schema {
                index: 2,
                found: SCHEMA_VERSION + 1
            }
        );
    }

    #[test]
    fn another_environment_is_named_in_a_warning() {
        let whole = recorded();
        let mut elsewhere = split(&whole, |i| i == 0);
        elsewhere.environment.accelerator = crate::report::Accelerator::Kvm;
        let merged = merge(vec![split(&whole, |i| i > 0), elsewhere]).expect("merges");
        assert_eq!(merged.warnings.len(), 1);
        assert!(merged.warnings[0].contains("accelerator kvm"));
    }

    #[test]
    fn nothing_to_merge_is_an_error() {
        assert_eq!(merge(Vec::new()).expect_err("empty"), MergeError::Nothing);
    }
}

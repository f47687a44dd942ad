//! What a lab's steps and VMs produce: the records the runner's events carry
//! and the report is made of. They live beside the events, below both the
//! runner and the report, so neither depends on the other.

use serde::{Deserialize, Serialize};

use crate::scenario::model::GuestForm;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    pub labcheck: String,
    /// First line of `qemu-system-x86_64 --version`.
    pub qemu: String,
    /// What the probe found usable.
    pub accelerator: Accelerator,
    /// What the probe saw, e.g. why KVM was not used.
    pub accelerator_detail: String,
    /// Names the built-in guest's build (lock file + recipe).
    pub guest_digest: String,
    /// What a lab's private network namespace is made of here: a network
    /// namespace (labcheck ran as root) or a user plus network namespace.
    #[serde(default)]
    pub namespaces: String,
}

/// The accelerator every VM of a run used. `unknown` in a report of a run
/// that ended before its probe (the schema's values are `kvm` and `tcg`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Accelerator {
    Kvm,
    Tcg,
    Unknown,
}

impl Accelerator {
    /// As report.json spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Accelerator::Kvm => "kvm",
            Accelerator::Tcg => "tcg",
            Accelerator::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for Accelerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a step does, as its report shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// A host command (a submission's sandboxed script too).
    Host,
    /// A command typed into a guest's console (a submission's lines too).
    Guest,
    /// A console dialogue of sends and expects.
    Interact,
    Boot,
    Reboot,
    Poweroff,
    /// A VM's QEMU stopped by labcheck.
    Stop,
    /// A built-in check.
    Check,
    /// A wait for a background command.
    Wait,
    /// A probe repeated until it holds.
    Probe,
    /// A claim of the handout that is not checked.
    Claim,
}

impl StepKind {
    /// As report.json spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Host => "host",
            StepKind::Guest => "guest",
            StepKind::Interact => "interact",
            StepKind::Boot => "boot",
            StepKind::Reboot => "reboot",
            StepKind::Poweroff => "poweroff",
            StepKind::Stop => "stop",
            StepKind::Check => "check",
            StepKind::Wait => "wait",
            StepKind::Probe => "probe",
            StepKind::Claim => "claim",
        }
    }

    /// A step about a VM's life rather than what runs in it.
    pub fn is_vm_lifecycle(self) -> bool {
        matches!(self, StepKind::Boot | StepKind::Reboot | StepKind::Poweroff)
    }
}

impl std::fmt::Display for StepKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StandInReport {
    pub name: String,
    pub form: GuestForm,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubstitutionReport {
    pub vm: String,
    pub kind: String,
    pub original: String,
    pub replacement: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TranscriptReport {
    pub vm: String,
    pub path: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Passed,
    Failed,
    /// The handout's command failed in the known way; the fix (if any) worked.
    Erratum,
    /// Not run because an earlier step failed.
    Skipped,
    /// labcheck could not carry the step out (not a verdict on the lab).
    Error,
    /// A claim of the handout that cannot be shown on this machine; the
    /// note says why. Never counted as passed, never fails the lab.
    NotChecked,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
    pub name: String,
    pub kind: StepKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm: Option<String>,
    /// The command as run (for boot: the handout's QEMU command line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<i32>,
    /// What the step printed (bounded; see `report::evidence`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub output: String,
    /// The expectation in words.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expected: Vec<String>,
    /// What did not hold, in words.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mismatches: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erratum: Option<ErratumReport>,
    /// Why the step was skipped or could not run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The last console lines, on failure.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub console_tail: Vec<String>,
    pub duration_ms: u64,
}

impl StepReport {
    /// A step of this `kind` that passed with nothing to show yet: where a
    /// step's report starts before its action fills it in.
    pub fn new(name: impl Into<String>, kind: StepKind) -> Self {
        StepReport {
            name: name.into(),
            kind,
            vm: None,
            command: None,
            outcome: Outcome::Passed,
            exit: None,
            output: String::new(),
            expected: Vec::new(),
            mismatches: Vec::new(),
            erratum: None,
            note: None,
            console_tail: Vec::new(),
            duration_ms: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErratumReport {
    pub reason: String,
    /// False when the handout's command now works as printed: the erratum
    /// is stale and the lab file should drop it.
    pub reproduced: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix_exit: Option<i32>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub fix_output: String,
}

impl Outcome {
    /// The one-character mark every renderer shows for a step.
    pub fn mark(self) -> &'static str {
        match self {
            Outcome::Passed => "✓",
            Outcome::Erratum => "!",
            Outcome::Failed => "✗",
            Outcome::Skipped => "-",
            Outcome::Error => "E",
            Outcome::NotChecked => "?",
        }
    }
}

/// Output kept in a report: the first and last lines of a long output, with
/// a marker saying how much was cut, so reports stay readable and bounded.
pub fn bounded_output(output: &str) -> String {
    const HEAD: usize = 30;
    const TAIL: usize = 10;
    let lines: Vec<&str> = output.trim_end().lines().collect();
    if lines.len() <= HEAD + TAIL {
        return lines.join("\n");
    }
    let cut = lines.len() - HEAD - TAIL;
    let mut kept = lines[..HEAD].to_vec();
    let marker = format!("[… {cut} lines cut …]");
    kept.push(&marker);
    kept.extend_from_slice(&lines[lines.len() - TAIL..]);
    kept.join("\n")
}

#[cfg(test)]
mod tests {
    use super::{bounded_output, Accelerator, StepKind};

    /// serde's renames and `as_str` are two spellings of one table: they
    /// must agree, or report.json and the renderers would disagree.
    #[test]
    fn serde_spells_each_keyword_as_as_str_does() {
        let kinds = [
            StepKind::Host,
            StepKind::Guest,
            StepKind::Interact,
            StepKind::Boot,
            StepKind::Reboot,
            StepKind::Poweroff,
            StepKind::Stop,
            StepKind::Check,
            StepKind::Wait,
            StepKind::Probe,
            StepKind::Claim,
        ];
        for kind in kinds {
            let json = serde_json::to_string(&kind).expect("serializes");
            assert_eq!(json, format!("\"{kind}\""));
            assert_eq!(
                serde_json::from_str::<StepKind>(&json).expect("parses"),
                kind
            );
        }
        for accel in [Accelerator::Kvm, Accelerator::Tcg, Accelerator::Unknown] {
            let json = serde_json::to_string(&accel).expect("serializes");
            assert_eq!(json, format!("\"{accel}\""));
        }
    }

    #[test]
    fn short_output_is_kept_whole() {
        assert_eq!(bounded_output("a\nb\n"), "a\nb");
    }

    #[test]
    fn long_output_keeps_head_and_tail() {
        let text: String = (1..=100).map(|i| format!("{i}\n")).collect();
        let kept = bounded_output(&text);
        assert!(kept.starts_with("1\n2\n"));
        assert!(kept.contains("[… 60 lines cut …]"));
        assert!(kept.ends_with("99\n100"));
        assert_eq!(kept.lines().count(), 41);
    }
}

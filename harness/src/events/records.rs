//! What a lab's steps and VMs produce: the records the runner's events carry
//! and the report is made of. They live beside the events, below both the
//! runner and the report, so neither depends on the other.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    pub labcheck: String,
    /// First line of `qemu-system-x86_64 --version`.
    pub qemu: String,
    /// `kvm` or `tcg`: what the probe found usable.
    pub accelerator: String,
    /// What the probe saw, e.g. why KVM was not used.
    pub accelerator_detail: String,
    /// Names the built-in guest's build (lock file + recipe).
    pub guest_digest: String,
    /// What a lab's private network namespace is made of here: a network
    /// namespace (labcheck ran as root) or a user plus network namespace.
    #[serde(default)]
    pub namespaces: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StandInReport {
    pub name: String,
    pub form: String,
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
    /// `host`, `guest`, `interact`, `boot`, `reboot`, `poweroff`, `check`,
    /// `wait`, `probe` or `claim` (not checked).
    pub kind: String,
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
    pub fn new(name: impl Into<String>, kind: impl Into<String>) -> Self {
        StepReport {
            name: name.into(),
            kind: kind.into(),
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
    use super::bounded_output;

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

//! The canonical form of a lab's report: what is committed as its snapshot.
//!
//! It keeps what the lab showed (steps, commands, outcomes, evidence, the
//! declared substitutions) and redacts what varies between runs and machines:
//! durations, the work dir, the guest's build dir, process ids, transcript paths, the accelerator
//! (its substitution and any `-accel` in the text), ping round-trip times and
//! IPv6 address states that only say how far DAD has got,
//! so a KVM runner and a TCG laptop produce the same text.

use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

use super::model::{
    ErratumReport, LabOutcome, LabReport, Network, Outcome, StandInReport, StepKind,
};

#[derive(Debug, Serialize)]
pub struct CanonicalLab {
    pub id: String,
    pub title: String,
    pub handout: String,
    /// Left out for labs on the host network, as before the field existed.
    #[serde(skip_serializing_if = "is_host")]
    pub network: Network,
    pub outcome: LabOutcome,
    pub stand_ins: Vec<StandInReport>,
    pub substitutions: Vec<String>,
    pub steps: Vec<CanonicalStep>,
}

#[derive(Debug, Serialize)]
pub struct CanonicalStep {
    pub name: String,
    pub kind: StepKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vm: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit: Option<i32>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub output: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub expected: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mismatches: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub erratum: Option<ErratumReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Rewrites text that differs from run to run into stable placeholders.
#[derive(Debug)]
struct Redactor<'a> {
    work_dir: &'a str,
}

static PID: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b(pid|PID) \d+").expect("valid regex"));
/// A file digest changes whenever the guest's recipe does; the check's
/// verdict, not the value, is what the snapshot is about.
static SHA256: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\bsha256 [0-9a-f]{64}\b").expect("valid regex"));
/// The built guest's dir (`<cache>/guest/<recipe digest>`), named where a VM
/// boots the guest's kernel directly: the cache moves between machines and
/// the digest with every recipe.
static GUEST_DIR: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"/[^\s`'\x22]*/guest/[0-9a-f]{64}\b").expect("valid regex"));
static ACCEL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"-accel (kvm|tcg)\b").expect("valid regex"));
/// Round-trip times: `time=0.512 ms` (busybox and iputils ping), `time 1001ms`
/// and the `min/avg/max` summaries.
static PING_TIME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"time[= ]\d+(\.\d+)? ?ms|(min/avg/max(/mdev)? = )[\d./]+ ms").expect("valid regex")
});
/// A ping stopped with Ctrl-C: how many requests went out, and so how many
/// replies came back, before the interrupt landed is timing (under load it
/// can miss the next second's send, or let one more reply in). The replies'
/// source and TTL are the evidence: each reply's sequence number and the
/// counts of packets sent and received (busybox's wording; iputils's `-c`
/// totals stay) are redacted, and a run of identical reply lines is shown once.
static PING_SEQ: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?m)^(64 bytes from [^:\n]+: (?:icmp_)?seq=)\d+").expect("valid regex")
});
static PING_COUNTS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b\d+ (packets transmitted|packets received)\b").expect("valid regex")
});
/// IPv6 duplicate address detection ends at its own pace: whether `ip a`
/// still shows a link-local address as `tentative` is timing, not behaviour.
static DAD_STATE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r" (tentative|dadfailed)\b").expect("valid regex"));

/// Reply lines, their sequence numbers redacted, shown once per run (see
/// [`PING_SEQ`]). Under load a Ctrl-C'd busybox ping also sometimes prints its
/// last reply twice (most likely the SIGINT handler flushing a line still in
/// stdio's buffer); a real duplicate says `(DUP!)` and stays.
fn without_repeated_ping_replies(text: &str) -> String {
    let mut kept: Vec<&str> = Vec::new();
    for line in text.split_inclusive('\n') {
        let repeated = kept.last() == Some(&line) && line.starts_with("64 bytes from ");
        if !repeated {
            kept.push(line);
        }
    }
    kept.concat()
}

impl Redactor<'_> {
    fn text(&self, text: &str) -> String {
        let text = if self.work_dir.is_empty() {
            text.to_string()
        } else {
            text.replace(self.work_dir, "[workdir]")
        };
        let text = PID.replace_all(&text, "$1 [pid]");
        let text = SHA256.replace_all(&text, "sha256 [digest]");
        let text = GUEST_DIR.replace_all(&text, "[guest]");
        let text = PING_TIME.replace_all(&text, "${2}[time]");
        let text = PING_SEQ.replace_all(&text, "${1}[n]");
        let text = PING_COUNTS.replace_all(&text, "[n] $1");
        let text = DAD_STATE.replace_all(&text, "");
        let text = ACCEL.replace_all(&text, "-accel [accel]");
        without_repeated_ping_replies(&text)
    }

    fn lines(&self, lines: &[String]) -> Vec<String> {
        lines.iter().map(|line| self.text(line)).collect()
    }
}

fn is_host(network: &Network) -> bool {
    *network == Network::Host
}

impl CanonicalLab {
    pub fn of(lab: &LabReport) -> CanonicalLab {
        let redact = Redactor {
            work_dir: &lab.work_dir,
        };
        CanonicalLab {
            id: lab.id.clone(),
            title: lab.title.clone(),
            handout: lab.handout.clone(),
            network: lab.network,
            outcome: lab.outcome,
            stand_ins: lab.stand_ins.clone(),
            // The accelerator substitution exists only where KVM is unusable;
            // dropping it is what lets KVM and TCG runs share a snapshot.
            substitutions: lab
                .substitutions
                .iter()
                .filter(|s| s.kind != "accelerator")
                .map(|s| {
                    format!(
                        "{} ({}): `{}` -> `{}`: {}",
                        s.vm,
                        s.kind,
                        s.original,
                        redact.text(&s.replacement),
                        s.reason
                    )
                })
                .collect(),
            steps: lab
                .steps
                .iter()
                .map(|step| CanonicalStep {
                    name: step.name.clone(),
                    kind: step.kind,
                    vm: step.vm.clone(),
                    command: step.command.as_deref().map(|c| redact.text(c)),
                    outcome: step.outcome,
                    exit: step.exit,
                    output: redact.text(&step.output),
                    expected: redact.lines(&step.expected),
                    mismatches: redact.lines(&step.mismatches),
                    erratum: step.erratum.as_ref().map(|e| ErratumReport {
                        fix_output: redact.text(&e.fix_output),
                        ..e.clone()
                    }),
                    note: step.note.as_deref().map(|n| redact.text(n)),
                })
                .collect(),
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[rstest::rstest]
    #[case::busybox_reply(
        "64 bytes from 10.0.0.2: seq=0 ttl=64 time=1.234 ms",
        "64 bytes from 10.0.0.2: seq=[n] ttl=64 [time]"
    )]
    #[case::busybox_summary(
        "round-trip min/avg/max = 0.5/1.0/2.25 ms",
        "round-trip min/avg/max = [time]"
    )]
    #[case::iputils_reply(
        "64 bytes from 192.168.100.1: icmp_seq=1 ttl=64 time=3.05 ms",
        "64 bytes from 192.168.100.1: icmp_seq=[n] ttl=64 [time]"
    )]
    #[case::iputils_total(
        "1 packets transmitted, 1 received, 0% packet loss, time 0ms",
        "[n] packets transmitted, 1 received, 0% packet loss, [time]"
    )]
    #[case::busybox_total_at_ctrl_c(
        "4 packets transmitted, 3 packets received",
        "[n] packets transmitted, [n] packets received"
    )]
    #[case::iputils_summary(
        "rtt min/avg/max/mdev = 3.050/3.050/3.050/0.000 ms",
        "rtt min/avg/max/mdev = [time]"
    )]
    #[case::dad(
        "inet6 fe80::5054:ff:fe12:3456/64 scope link tentative",
        "inet6 fe80::5054:ff:fe12:3456/64 scope link"
    )]
    #[case::other_counts_kept(
        "RX packets:12 errors:0 dropped:0",
        "RX packets:12 errors:0 dropped:0"
    )]
    #[case::reply_written_twice_at_ctrl_c(
        "64 bytes from 10.0.0.1: seq=2 ttl=64 time=1 ms\n64 bytes from 10.0.0.1: seq=2 ttl=64 time=1 ms\n\n--- stats",
        "64 bytes from 10.0.0.1: seq=[n] ttl=64 [time]\n\n--- stats"
    )]
    #[case::replies_until_ctrl_c_shown_once(
        "64 bytes from 10.0.0.1: seq=0 ttl=64 time=1 ms\n64 bytes from 10.0.0.1: seq=1 ttl=64 time=2 ms\n",
        "64 bytes from 10.0.0.1: seq=[n] ttl=64 [time]\n"
    )]
    #[case::a_real_duplicate_kept(
        "64 bytes from 10.0.0.1: seq=0 ttl=64 time=1 ms\n64 bytes from 10.0.0.1: seq=0 ttl=64 time=1 ms (DUP!)\n",
        "64 bytes from 10.0.0.1: seq=[n] ttl=64 [time]\n64 bytes from 10.0.0.1: seq=[n] ttl=64 [time] (DUP!)\n"
    )]
    #[case::other_repeats_kept("exit status 0\nexit status 0\n", "exit status 0\nexit status 0\n")]
    fn redacts_timing(#[case] text: &str, #[case] redacted: &str) {
        let redact = Redactor { work_dir: "" };
        assert_eq!(redact.text(text), redacted);
    }

    #[test]
    fn redacts_work_dir_pids_and_accelerator() {
        let redact = Redactor {
            work_dir: "/tmp/labcheck-1/clone-x",
        };
        assert_eq!(
            redact.text("qemu pid 4242 in /tmp/labcheck-1/clone-x/vm2.qcow2 with -accel tcg"),
            "qemu pid [pid] in [workdir]/vm2.qcow2 with -accel [accel]"
        );
        assert_eq!(
            redact.text(&format!("sha256 {}", "ab".repeat(32))),
            "sha256 [digest]"
        );
        let digest = "0f".repeat(32);
        assert_eq!(
            redact.text(&format!(
                "`-kernel /root/.cache/labcheck/guest/{digest}/vmlinux -initrd /c/guest/{digest}/initramfs`"
            )),
            "`-kernel [guest]/vmlinux -initrd [guest]/initramfs`"
        );
    }
}

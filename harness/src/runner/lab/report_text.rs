//! The words a lab's report uses for what the lab file says: each step's
//! kind, VM and command as shown, the names of networks, stand-in forms and
//! substitution kinds, and the notes of steps that did not run. Pure: it
//! changes when the report's wording does, never when how a lab runs does.

use crate::events::records::{Outcome, StandInReport, StepKind, StepReport, SubstitutionReport};
use crate::scenario::model::{
    Action, Check, DigestMode, FieldExpect, Interaction, Lab, Network, Step,
};
use crate::vm::rewrite;

/// A step not run because `what` (a step before it) did not pass.
pub(super) fn skipped(step: &Step, what: &str) -> StepReport {
    StepReport {
        outcome: Outcome::Skipped,
        note: Some(format!("skipped: {what} did not pass")),
        ..blank_report(step)
    }
}

pub(super) fn blank_report(step: &Step) -> StepReport {
    let (kind, vm, command) = describe_action(&step.action);
    StepReport {
        vm,
        command,
        ..StepReport::new(step.name.clone(), kind)
    }
}

fn describe_action(action: &Action) -> (StepKind, Option<String>, Option<String>) {
    match action {
        Action::Host { command } => (StepKind::Host, None, Some(command.clone())),
        Action::Guest { vm, command } => (StepKind::Guest, Some(vm.clone()), Some(command.clone())),
        Action::Interact { vm, script } => {
            let typed = script
                .iter()
                .map(|part| match part {
                    Interaction::Send(text) => format!("send {text:?}"),
                    Interaction::Expect(re) => format!("expect /{}/", re.as_str()),
                })
                .collect::<Vec<_>>()
                .join("; ");
            (StepKind::Interact, Some(vm.clone()), Some(typed))
        }
        Action::Boot { vms } => (StepKind::Boot, Some(vms.join(", ")), None),
        Action::Reboot { vm } => (
            StepKind::Reboot,
            Some(vm.clone()),
            Some("reboot".to_string()),
        ),
        Action::Poweroff { vm } => (
            StepKind::Poweroff,
            Some(vm.clone()),
            Some("poweroff".to_string()),
        ),
        Action::Stop { vm } => (StepKind::Stop, Some(vm.clone()), None),
        Action::Check(check) => (StepKind::Check, None, Some(describe_check(check))),
        Action::Wait { label } => (StepKind::Wait, None, Some(format!("wait for `{label}`"))),
        Action::Probe { vm, command } => (StepKind::Probe, vm.clone(), Some(command.clone())),
        Action::NotChecked { .. } => (StepKind::Claim, None, None),
        Action::Lines { vm, lines } => (StepKind::Guest, Some(vm.clone()), Some(lines.join("\n"))),
        Action::Sandboxed { script } => (StepKind::Host, None, Some(script.clone())),
    }
}

fn describe_check(check: &Check) -> String {
    match check {
        Check::QemuImgInfo {
            image,
            field,
            expect,
        } => match expect {
            FieldExpect::Equals(v) => format!("qemu-img info {image}: {field} = {v}"),
            FieldExpect::Absent => format!("qemu-img info {image}: no {field}"),
        },
        Check::File { path, exists } => {
            format!(
                "{path} {}",
                if *exists { "exists" } else { "does not exist" }
            )
        }
        Check::NoLinks { kinds } => format!("no {} device in the namespace", kinds.join(" or ")),
        Check::Digest { path, mode } => match mode {
            DigestMode::Save(key) => format!("sha256 of {path}, saved as `{key}`"),
            DigestMode::SameAs(key) => format!("sha256 of {path} equals `{key}`"),
        },
        Check::Running { vms } => format!("{} running", vms.join(" and ")),
        Check::Traffic { from, to } => format!("traffic from {from} reaches {to}"),
        Check::Subnet { vms } => format!("{} share an IPv4 subnet", vms.join(" and ")),
        Check::SocketLink { listen, connect } => {
            format!("{connect} connects to a socket {listen} listens on")
        }
        Check::BridgedTaps { count } => format!("a bridge with {count} taps"),
    }
}

/// The handout's command lines of `vms`, as the lab file gives them.
pub(super) fn command_lines(lab: &Lab, vms: &[String]) -> String {
    lab.vms
        .iter()
        .filter(|spec| vms.contains(&spec.name))
        .map(|spec| spec.qemu.clone())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The command of the background step labelled `label`, for messages.
pub(super) fn background_command(lab: &Lab, label: &str) -> String {
    lab.steps
        .iter()
        .filter(|step| step.background.as_deref() == Some(label))
        .find_map(|step| match &step.action {
            Action::Host { command } | Action::Guest { command, .. } => Some(command.clone()),
            _ => None,
        })
        .unwrap_or_else(|| label.to_string())
}

/// The stand-ins the lab puts in its work dir, by the handout's names.
pub(super) fn stand_ins(lab: &Lab) -> Vec<StandInReport> {
    lab.images
        .iter()
        .map(|image| StandInReport {
            name: image.name.clone(),
            form: image.form,
        })
        .collect()
}

/// What labcheck changed in `vm`'s command line, as the report lists it.
pub(super) fn vm_substitutions(
    vm: &str,
    substitutions: &[rewrite::Substitution],
) -> Vec<SubstitutionReport> {
    substitutions
        .iter()
        .map(|s| SubstitutionReport {
            vm: vm.to_string(),
            kind: s.kind.as_str().to_string(),
            original: s.original.clone(),
            replacement: s.replacement.clone(),
            reason: s.reason.clone(),
        })
        .collect()
}

/// What a lab's own namespace changes for its host commands.
pub(super) fn lab_substitutions(lab: &Lab) -> Vec<SubstitutionReport> {
    match lab.network {
        Network::Host => Vec::new(),
        Network::Namespace => vec![SubstitutionReport {
            vm: "host".to_string(),
            kind: "sudo".to_string(),
            original: "sudo".to_string(),
            replacement: "the lab's namespace root".to_string(),
            reason: "host commands run in a private network namespace made for the lab, \
                     where they already act as its root; nothing they do reaches the host"
                .to_string(),
        }],
    }
}

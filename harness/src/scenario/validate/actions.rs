//! Phase two for a step's action: the one table of action keys (`host`,
//! `run`, `boot`, …), which finds the action a step has, names the actions
//! in help, says which take `on`, and parses each.

use std::ops::Range;

use toml::Spanned;

use super::suggest::listing;
use super::{span_of, Validator};
use crate::scenario::error::Problem;
use crate::scenario::model::{Action, GradeAction, Interaction};
use crate::scenario::raw::{items, RawInteraction, RawStep, Strings};

/// Whether an action takes `on = "vm"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum On {
    /// Typed into that VM's shell: `on` says which.
    Required,
    /// On that VM if given, else on the host.
    Optional,
    /// Given anyway, `on` is a mistake.
    NotUsed,
}

/// One action key of a step table.
struct ActionKey {
    key: &'static str,
    on: On,
    /// Only a `[[grade]]` step may have it.
    grading_only: bool,
    /// The key's span, if the step gives it.
    given: fn(&RawStep) -> Option<Range<usize>>,
    /// Parses the step's action; the VM is the one `on` names, if it is
    /// given and declared.
    parse: fn(&mut Validator<'_>, &RawStep, Option<String>) -> Option<GradeAction>,
}

impl ActionKey {
    /// How help names the key among the others.
    fn in_help(&self) -> String {
        match (self.grading_only, self.on) {
            (true, _) => format!("(in [[grade]]) `{}`", self.key),
            (false, On::Required) => format!("`{}` (with `on`)", self.key),
            (false, On::Optional | On::NotUsed) => format!("`{}`", self.key),
        }
    }
}

/// Every action a step can have, in the order help lists them. A step
/// with two names the first of them in its problem.
const ACTIONS: &[ActionKey] = &[
    ActionKey {
        key: "host",
        on: On::NotUsed,
        grading_only: false,
        given: |step| span_of(&step.host),
        parse: |v, step, _| {
            let command = v.text(step.host.as_ref()?, "host")?;
            Some(Action::Host { command }.into())
        },
    },
    ActionKey {
        key: "run",
        on: On::Required,
        grading_only: false,
        given: |step| span_of(&step.run),
        parse: |v, step, vm| v.run_action(step.run.as_ref()?, vm),
    },
    ActionKey {
        key: "interact",
        on: On::Required,
        grading_only: false,
        given: |step| span_of(&step.interact),
        parse: |v, step, vm| v.interact_action(step.interact.as_ref()?, vm),
    },
    ActionKey {
        key: "boot",
        on: On::NotUsed,
        grading_only: false,
        given: |step| span_of(&step.boot),
        parse: |v, step, _| {
            let vms = v.boot(step.boot.as_ref()?)?;
            Some(Action::Boot { vms }.into())
        },
    },
    ActionKey {
        key: "reboot",
        on: On::NotUsed,
        grading_only: false,
        given: |step| span_of(&step.reboot),
        parse: |v, step, _| {
            let vm = v.console_vm(step.reboot.as_ref()?)?;
            Some(Action::Reboot { vm }.into())
        },
    },
    ActionKey {
        key: "poweroff",
        on: On::NotUsed,
        grading_only: false,
        given: |step| span_of(&step.poweroff),
        parse: |v, step, _| {
            let vm = v.console_vm(step.poweroff.as_ref()?)?;
            Some(Action::Poweroff { vm }.into())
        },
    },
    ActionKey {
        key: "stop",
        on: On::NotUsed,
        grading_only: false,
        given: |step| span_of(&step.stop),
        parse: |v, step, _| {
            let vm = v.console_vm(step.stop.as_ref()?)?;
            Some(Action::Stop { vm }.into())
        },
    },
    ActionKey {
        key: "check",
        on: On::NotUsed,
        grading_only: false,
        given: |step| span_of(&step.check),
        parse: |v, step, _| {
            let check = v.check(step.check.as_ref()?)?;
            Some(Action::Check(check).into())
        },
    },
    ActionKey {
        key: "probe",
        on: On::Optional,
        grading_only: false,
        given: |step| span_of(&step.probe),
        parse: |v, step, vm| {
            let command = v.text(step.probe.as_ref()?, "probe")?;
            Some(Action::Probe { vm, command }.into())
        },
    },
    ActionKey {
        key: "wait",
        on: On::NotUsed,
        grading_only: false,
        given: |step| span_of(&step.wait),
        parse: |v, step, _| {
            let label = v.wait(step.wait.as_ref()?)?;
            Some(Action::Wait { label }.into())
        },
    },
    ActionKey {
        key: "not-checked",
        on: On::NotUsed,
        grading_only: false,
        given: |step| span_of(&step.not_checked),
        parse: |v, step, _| {
            let reason = v.text(step.not_checked.as_ref()?, "not-checked")?;
            Some(Action::NotChecked { reason }.into())
        },
    },
    ActionKey {
        key: "slot",
        on: On::Optional,
        grading_only: true,
        given: |step| span_of(&step.slot),
        parse: |v, step, vm| v.slot_action(step.slot.as_ref()?, vm),
    },
];

impl Validator<'_> {
    /// The step's one action, with its key; `None` when it has none, two,
    /// or a wrong one (each reported).
    pub(super) fn action(
        &mut self,
        step: &RawStep,
        head: &Range<usize>,
    ) -> Option<(&'static str, GradeAction)> {
        let given: Vec<(&ActionKey, Range<usize>)> = ACTIONS
            .iter()
            .filter_map(|action| Some((action, (action.given)(step)?)))
            .collect();
        let (action, span) = match given.as_slice() {
            [] => {
                let actions = ACTIONS.iter().map(ActionKey::in_help);
                return self.reject(
                    Problem::new(head.clone(), "this step has no action", "no action")
                        .with_help(format!("add one of {}", listing(actions, "or"))),
                );
            }
            [(action, span)] => (*action, span.clone()),
            [(first, _), more @ ..] => {
                for (action, span) in more {
                    self.report(
                        Problem::new(
                            span.clone(),
                            format!(
                                "a step has one action, but this one has `{}` and `{}`",
                                first.key, action.key
                            ),
                            "second action",
                        )
                        .with_help("split it into two [[step]] tables"),
                    );
                }
                return None;
            }
        };
        let vm = self.on(action, step, span)?;
        let parsed = (action.parse)(self, step, vm)?;
        Some((action.key, parsed))
    }

    /// The VM that the step's `on` names, if it is given and declared;
    /// `None` when `on` is missing for an action that needs it, or given to
    /// one that does not use it. `span` is the action key's.
    fn on(
        &mut self,
        action: &ActionKey,
        step: &RawStep,
        span: Range<usize>,
    ) -> Option<Option<String>> {
        let key = action.key;
        match (action.on, &step.on) {
            (On::NotUsed, Some(on)) => {
                let takers = ACTIONS
                    .iter()
                    .filter(|action| action.on != On::NotUsed)
                    .map(|action| format!("`{}`", action.key));
                self.reject(
                    Problem::new(
                        on.span(),
                        format!("`on` does not apply to `{key}`"),
                        "not used",
                    )
                    .with_help(format!(
                        "`on` goes with {} only; remove it",
                        listing(takers, "and")
                    )),
                )
            }
            (On::Required, None) => self.reject(
                Problem::new(span, format!("`{key}` needs `on`"), "which VM?").with_help(format!(
                    "say which VM it is typed into: on = \"{}\"",
                    self.example_vm()
                )),
            ),
            (_, Some(on)) => Some(self.vm_reference(on)),
            (_, None) => Some(None),
        }
    }

    fn run_action(&mut self, raw: &Spanned<String>, vm: Option<String>) -> Option<GradeAction> {
        let command = self.text(raw, "run");
        let vm = vm?;
        self.console_free(&vm, raw.span())?;
        Some(
            Action::Guest {
                vm,
                command: command?,
            }
            .into(),
        )
    }

    fn interact_action(
        &mut self,
        raw: &Spanned<Vec<Spanned<RawInteraction>>>,
        vm: Option<String>,
    ) -> Option<GradeAction> {
        let script = self.interaction_script(raw);
        let vm = vm?;
        self.console_free(&vm, raw.span())?;
        Some(
            Action::Interact {
                vm,
                script: script?,
            }
            .into(),
        )
    }

    /// The VM of a `reboot`, `poweroff` or `stop`: declared, and its console
    /// not held by a background command.
    fn console_vm(&mut self, vm: &Spanned<String>) -> Option<String> {
        let name = self.vm_reference(vm)?;
        self.console_free(&name, vm.span())?;
        Some(name)
    }

    fn boot(&mut self, vms: &Spanned<Strings>) -> Option<Vec<String>> {
        let items = items(vms);
        if items.is_empty() {
            return self.reject(
                Problem::new(vms.span(), "`boot` names no VM", "empty list")
                    .with_help(format!("name a VM: boot = \"{}\"", self.example_vm())),
            );
        }
        let mut seen: Vec<&str> = Vec::new();
        self.all(items, |v, (span, name)| {
            if seen.contains(&name) {
                return v.reject(Problem::new(
                    span,
                    format!("`{name}` is booted twice in one step"),
                    "again",
                ));
            }
            seen.push(name);
            v.vm_reference(&Spanned::new(span, name.to_owned()))
        })
    }

    fn interaction_script(
        &mut self,
        script: &Spanned<Vec<Spanned<RawInteraction>>>,
    ) -> Option<Vec<Interaction>> {
        if script.get_ref().is_empty() {
            return self.reject(
                Problem::new(script.span(), "`interact` is empty", "no interactions").with_help(
                    "give a list such as [{ send = \"command\\n\" }, { expect = \"reply\" }]",
                ),
            );
        }
        self.all(script.get_ref(), Self::interaction)
    }

    fn interaction(&mut self, item: &Spanned<RawInteraction>) -> Option<Interaction> {
        match (&item.get_ref().send, &item.get_ref().expect) {
            (Some(send), None) => self.text(send, "send").map(Interaction::Send),
            (None, Some(pattern)) => self.regex(pattern).map(Interaction::Expect),
            (Some(_), Some(expect)) => self.reject(
                Problem::new(
                    expect.span(),
                    "an interaction either sends or expects, not both",
                    "second key",
                )
                .with_help("split it: { send = \"…\" }, { expect = \"…\" }"),
            ),
            (None, None) => self.reject(
                Problem::new(
                    item.span(),
                    "an interaction needs `send` or `expect`",
                    "empty",
                )
                .with_help("write { send = \"…\" } or { expect = \"…\" }"),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    /// Each key of the table finds its own field of a step, and no other.
    #[rstest]
    #[case("host", "\"ls\"")]
    #[case("run", "\"ls\"")]
    #[case("interact", "[{ send = \"ls\" }]")]
    #[case("boot", "\"vm1\"")]
    #[case("reboot", "\"vm1\"")]
    #[case("poweroff", "\"vm1\"")]
    #[case("stop", "\"vm1\"")]
    #[case("check", "{ file = \"f\" }")]
    #[case("probe", "\"ls\"")]
    #[case("wait", "\"label\"")]
    #[case("not-checked", "\"why\"")]
    #[case("slot", "\"a.sh\"")]
    fn an_action_key_is_found_in_its_own_field(#[case] key: &str, #[case] value: &str) {
        let step: RawStep =
            toml::from_str(&format!("name = \"a\"\n{key} = {value}\n")).expect("a step");
        let found: Vec<&str> = ACTIONS
            .iter()
            .filter(|action| (action.given)(&step).is_some())
            .map(|action| action.key)
            .collect();
        assert_eq!(found, [key]);
    }
}

//! Phase two: the raw lab checked and turned into the model. Every problem is
//! collected in one pass, so an author fixes a file in one go.

mod checks;
mod errata;
mod expect;
mod grading;
mod suggest;

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use toml::Spanned;

use super::error::{Problem, TextPosition};
use super::model::{
    Action, AfterFailure, Expectation, GradeAction, GuestForm, ImageStandIn, Interaction, Lab,
    Location, Network, Origin, Step, VmSpec,
};
use super::raw::{
    in_file_order, items, RawHeader, RawInteraction, RawLab, RawStep, RawVm, Strings,
};
use crate::time::parse_duration;
pub(super) use suggest::did_you_mean;
use suggest::{did_you_mean_name, keyword_help};

pub(super) fn validate(path: &Path, text: &str, raw: &RawLab) -> Result<Lab, Vec<Problem>> {
    let mut validator = Validator {
        path,
        text,
        problems: Vec::new(),
        vm_names: raw.vm.keys().map(|name| name.get_ref().clone()).collect(),
        step_names: HashMap::new(),
        saved_digests: HashMap::new(),
        every_save: raw
            .step
            .iter()
            .chain(&raw.cleanup)
            .filter_map(|step| step.get_ref().check.as_ref()?.get_ref().save.as_ref())
            .map(|save| (save.get_ref().clone(), save.span()))
            .collect(),
        network: Network::Host,
        backgrounds: HashMap::new(),
        busy_consoles: HashMap::new(),
        slot_paths: raw.slot.keys().map(|path| path.get_ref().clone()).collect(),
        check_ids: HashMap::new(),
    };
    let lab = validator.lab(raw);
    match lab {
        Some(lab) if validator.problems.is_empty() => Ok(lab),
        _ => {
            debug_assert!(
                !validator.problems.is_empty(),
                "a rejected lab must say why"
            );
            Err(validator.problems)
        }
    }
}

struct Validator<'a> {
    path: &'a Path,
    text: &'a str,
    problems: Vec<Problem>,
    vm_names: Vec<String>,
    /// First use of each step name.
    step_names: HashMap<String, Range<usize>>,
    /// Digests saved by the steps validated so far.
    saved_digests: HashMap<String, Range<usize>>,
    /// Every `save` in the file, for help when a `same-as` comes too early.
    every_save: Vec<(String, Range<usize>)>,
    /// The lab's `network`, once its header is read.
    network: Network,
    /// Background labels started so far: where, on which VM (None: host),
    /// and whether a `wait` took them already.
    backgrounds: HashMap<String, Background>,
    /// VMs whose console a background command holds: VM → label.
    busy_consoles: HashMap<String, String>,
    /// The `[slot."…"]` paths the lab declares.
    slot_paths: Vec<String>,
    /// Rubric check ids seen so far in `[[grade]]`, for `depends-on`.
    check_ids: HashMap<String, Range<usize>>,
}

struct Background {
    span: Range<usize>,
    vm: Option<String>,
    waited: bool,
}

impl Validator<'_> {
    fn lab(&mut self, raw: &RawLab) -> Option<Lab> {
        let header = self.header(raw.lab.as_ref());
        let images = self.all(in_file_order(&raw.images), |v, (name, form)| {
            v.image(name, form)
        });
        let vms = self.all(in_file_order(&raw.vm), |v, (name, vm)| v.vm(name, vm));
        if raw.step.is_empty() {
            let at = raw.lab.as_ref().map_or(0..0, |lab| self.head(lab.span()));
            self.report(
                Problem::new(at, "the lab has no steps", "no [[step]] in this lab")
                    .with_help("add a [[step]] table with a `name` and an action"),
            );
        }
        let steps = self.all(&raw.step, |v, step| v.step(step, "[[step]]"));
        let cleanup = self.all(&raw.cleanup, |v, step| v.step(step, "[[cleanup]]"));
        let grading = self.grading(raw);
        let (id, title, handout) = header?;
        Some(Lab {
            id,
            title,
            handout,
            source: self.path.to_path_buf(),
            network: self.network,
            images: images?,
            vms: vms?,
            steps: steps?,
            cleanup: cleanup?,
            grading: grading?,
            after_failure: AfterFailure::SkipRest,
        })
    }

    /// Checks every item (so that all problems are found), then gives them
    /// all or, if any was wrong, none.
    fn all<I: IntoIterator, T>(
        &mut self,
        items: I,
        mut check: impl FnMut(&mut Self, I::Item) -> Option<T>,
    ) -> Option<Vec<T>> {
        let checked: Vec<Option<T>> = items.into_iter().map(|item| check(self, item)).collect();
        checked.into_iter().collect()
    }

    /// Checks a key that may be left out: `Some(None)` when it is absent,
    /// `Some(Some(value))` when it is right, `None` when it is wrong.
    fn optional<R, T>(
        &mut self,
        raw: Option<&R>,
        check: impl FnOnce(&mut Self, &R) -> Option<T>,
    ) -> Option<Option<T>> {
        match raw {
            None => Some(None),
            Some(raw) => check(self, raw).map(Some),
        }
    }

    fn report(&mut self, problem: Problem) {
        self.problems.push(problem);
    }

    /// Reports a problem that leaves nothing to build.
    fn reject<T>(&mut self, problem: Problem) -> Option<T> {
        self.report(problem);
        None
    }

    fn header(&mut self, header: Option<&Spanned<RawHeader>>) -> Option<(String, String, String)> {
        let Some(header) = header else {
            return self.reject(
                Problem::new(0..0, "the lab file has no [lab] table", "expected [lab]")
                    .with_help("start the file with [lab] and its `id`, `title` and `handout`"),
            );
        };
        let head = self.head(header.span());
        let raw = header.get_ref();
        let id = self.required_text(raw.id.as_ref(), "id", "[lab]", &head);
        let id = match id {
            Some(id) if self.name_is_valid(id, "lab id") => Some(id.get_ref().clone()),
            _ => None,
        };
        let title = self.required_text(raw.title.as_ref(), "title", "[lab]", &head);
        let handout = self.required_text(raw.handout.as_ref(), "handout", "[lab]", &head);
        let network = self.optional(raw.network.as_ref(), Self::network)?;
        self.network = network.unwrap_or(Network::Host);
        Some((id?, title?.get_ref().clone(), handout?.get_ref().clone()))
    }

    fn network(&mut self, network: &Spanned<String>) -> Option<Network> {
        let wanted = network.get_ref();
        if let Ok(network) = wanted.parse() {
            return Some(network);
        }
        let help = keyword_help(wanted, &Network::ALL, Network::as_str, network_gloss);
        self.reject(
            Problem::new(
                network.span(),
                format!("`{wanted}` is not a network"),
                "unknown network",
            )
            .with_help(help),
        )
    }

    fn image(&mut self, name: &Spanned<String>, form: &Spanned<String>) -> Option<ImageStandIn> {
        let file_name = name.get_ref();
        let name_is_valid = !file_name.is_empty()
            && !file_name.contains('/')
            && file_name != "."
            && file_name != "..";
        if !name_is_valid {
            self.report(
                Problem::new(
                    name.span(),
                    format!("`{file_name}` is not a file name"),
                    "not a file name",
                )
                .with_help("name the file as the handout does, without a directory"),
            );
        }
        let form = match form.get_ref().parse() {
            Ok(form) => Some(form),
            Err(_) => {
                let help = keyword_help(
                    form.get_ref(),
                    &GuestForm::ALL,
                    GuestForm::as_str,
                    form_gloss,
                );
                self.reject(
                    Problem::new(
                        form.span(),
                        format!("`{}` is not a guest form", form.get_ref()),
                        "unknown form",
                    )
                    .with_help(help),
                )
            }
        };
        name_is_valid.then_some(())?;
        Some(ImageStandIn {
            name: file_name.clone(),
            form: form?,
        })
    }

    fn vm(&mut self, name: &Spanned<String>, vm: &Spanned<RawVm>) -> Option<VmSpec> {
        let name_is_valid = self.name_is_valid(name, "VM name");
        let table = format!("[vm.{}]", name.get_ref());
        let head = self.head(vm.span());
        let qemu = self.required_text(vm.get_ref().qemu.as_ref(), "qemu", &table, &head);
        name_is_valid.then_some(())?;
        Some(VmSpec {
            name: name.get_ref().clone(),
            qemu: qemu?.get_ref().clone(),
            location: self.location(vm.span()),
            origin: Origin::LabFile,
        })
    }

    /// A `[[step]]` or `[[cleanup]]`: runnable as written, so without the
    /// grading keys (a slot among them).
    fn step(&mut self, raw: &Spanned<RawStep>, table: &str) -> Option<Step> {
        let step = self.parse_step(raw, table);
        self.grading_keys_outside_grade(raw.get_ref(), table)?;
        let step = step?;
        // A slot was reported with the other grading keys.
        let GradeAction::Run(action) = &step.action else {
            return None;
        };
        Some(step.with_action(action.clone()))
    }

    /// Any step table; only a `[[grade]]` step may keep a slot.
    fn parse_step(&mut self, raw: &Spanned<RawStep>, table: &str) -> Option<Step<GradeAction>> {
        let head = self.head(raw.span());
        let step = raw.get_ref();
        let name = self.step_name(step, table, &head);
        let action = self.action(step, &head);
        let background = self.optional(step.background.as_ref(), |v, label| {
            v.background(label, action.as_ref()?, step)
        });
        let default_exit = match action {
            Some(GradeAction::Run(
                Action::Host { .. }
                | Action::Guest { .. }
                | Action::Probe { .. }
                | Action::Wait { .. },
            )) => Some(0),
            _ => None,
        };
        let expect = match &step.expect {
            Some(expect) => self.expectation(expect.get_ref(), default_exit),
            None => Some(Expectation {
                exit: default_exit,
                ..Expectation::default()
            }),
        };
        let erratum = self.optional(step.erratum.as_ref(), Self::erratum);
        let erratum = match (erratum, &action, &step.erratum) {
            (Some(Some(e)), Some(action), Some(raw))
                if e.fix.is_some()
                    && !matches!(
                        action,
                        GradeAction::Run(Action::Host { .. } | Action::Guest { .. })
                    ) =>
            {
                self.fix_without_command(action, raw)
            }
            (erratum, _, _) => erratum,
        };
        let timeout = self.optional(step.timeout.as_ref(), Self::timeout);
        Some(Step {
            name: name?,
            location: self.location(raw.span()),
            action: action?,
            expect: expect?,
            erratum: erratum?,
            timeout: timeout?,
            background: background?,
            id: None,
            depends_on: Vec::new(),
        })
    }

    /// `background = "label"`: only on `host` and `run` steps, judged by the
    /// `wait` step that names the label.
    fn background(
        &mut self,
        label: &Spanned<String>,
        action: &GradeAction,
        step: &RawStep,
    ) -> Option<String> {
        let vm = match action {
            GradeAction::Run(Action::Host { .. }) => None,
            GradeAction::Run(Action::Guest { vm, .. }) => Some(vm.clone()),
            _ => {
                return self.reject(
                    Problem::new(
                        label.span(),
                        "only `host` and `run` steps can run in the background",
                        "not a command",
                    )
                    .with_help("remove `background`, or make the step a `host` or `run` step"),
                );
            }
        };
        // Reported, but the label is still registered, so that its `wait`
        // is not reported too.
        let mut misplaced = false;
        for (key, span) in [
            ("expect", step.expect.as_ref().map(Spanned::span)),
            ("erratum", step.erratum.as_ref().map(Spanned::span)),
        ] {
            if let Some(span) = span {
                misplaced = true;
                self.report(
                    Problem::new(
                        span,
                        format!("a background step has no result yet for `{key}`"),
                        "judged when it ends",
                    )
                    .with_help(format!(
                        "put `{key}` on the step with wait = \"{}\"",
                        label.get_ref()
                    )),
                );
            }
        }
        let text = self.text(label, "background")?;
        if let Some(first) = self.backgrounds.get(&text) {
            let line = TextPosition::of(self.text, first.span.start).line;
            return self.reject(
                Problem::new(
                    label.span(),
                    format!("two background steps are labelled `{text}`"),
                    "second use of this label",
                )
                .with_help(format!("the first is at line {line}; wait steps name one")),
            );
        }
        if let Some(vm) = &vm {
            self.busy_consoles.insert(vm.clone(), text.clone());
        }
        self.backgrounds.insert(
            text.clone(),
            Background {
                span: label.span(),
                vm,
                waited: false,
            },
        );
        (!misplaced).then_some(text)
    }

    /// `wait = "label"`: a background step started earlier and not waited yet.
    fn wait(&mut self, label: &Spanned<String>) -> Option<String> {
        let wanted = label.get_ref();
        let problem = match self.backgrounds.get_mut(wanted) {
            Some(background) if !background.waited => {
                background.waited = true;
                if let Some(vm) = &background.vm {
                    self.busy_consoles.remove(vm);
                }
                return Some(wanted.clone());
            }
            Some(_) => Problem::new(
                label.span(),
                format!("`{wanted}` was waited for already"),
                "second wait",
            ),
            None => {
                let help = did_you_mean(wanted, self.backgrounds.keys()).unwrap_or_else(|| {
                    "start it in an earlier step with background = \"…\"".to_owned()
                });
                Problem::new(
                    label.span(),
                    format!("no earlier step runs `{wanted}` in the background"),
                    "nothing to wait for",
                )
                .with_help(help)
            }
        };
        self.reject(problem)
    }

    /// A VM's console is held by a background command until its `wait`:
    /// typing into it meanwhile would feed that command, not the shell.
    fn console_free(&mut self, vm: &str, span: Range<usize>) -> Option<()> {
        let Some(label) = self.busy_consoles.get(vm) else {
            return Some(());
        };
        let help =
            format!("wait = \"{label}\" first, or observe {vm} with `probe` (its control channel)");
        self.reject(
            Problem::new(
                span,
                format!("{vm}'s console is busy with the background command `{label}`"),
                "console in use",
            )
            .with_help(help),
        )
    }

    fn step_name(&mut self, step: &RawStep, table: &str, head: &Range<usize>) -> Option<String> {
        let name = self.required_text(step.name.as_ref(), "name", table, head)?;
        if let Some(first) = self.step_names.get(name.get_ref()) {
            let line = TextPosition::of(self.text, first.start).line;
            return self.reject(
                Problem::new(
                    name.span(),
                    format!("two steps are named `{}`", name.get_ref()),
                    "second use of this name",
                )
                .with_help(format!(
                    "the first is at line {line}; reports tell steps apart by name, so make it unique"
                )),
            );
        }
        self.step_names.insert(name.get_ref().clone(), name.span());
        Some(name.get_ref().clone())
    }

    fn action(&mut self, step: &RawStep, head: &Range<usize>) -> Option<GradeAction> {
        let given: Vec<(&str, Range<usize>)> = [
            ("host", step.host.as_ref().map(Spanned::span)),
            ("run", step.run.as_ref().map(Spanned::span)),
            ("interact", step.interact.as_ref().map(Spanned::span)),
            ("boot", step.boot.as_ref().map(Spanned::span)),
            ("reboot", step.reboot.as_ref().map(Spanned::span)),
            ("poweroff", step.poweroff.as_ref().map(Spanned::span)),
            ("stop", step.stop.as_ref().map(Spanned::span)),
            ("check", step.check.as_ref().map(Spanned::span)),
            ("probe", step.probe.as_ref().map(Spanned::span)),
            ("wait", step.wait.as_ref().map(Spanned::span)),
            ("not-checked", step.not_checked.as_ref().map(Spanned::span)),
            ("slot", step.slot.as_ref().map(Spanned::span)),
        ]
        .into_iter()
        .filter_map(|(key, span)| Some((key, span?)))
        .collect();
        let (key, span) = match given.as_slice() {
            [] => {
                return self.reject(
                    Problem::new(head.clone(), "this step has no action", "no action").with_help(
                        "add one of `host`, `run` (with `on`), `interact` (with `on`), `boot`, \
                         `reboot`, `poweroff`, `stop`, `check`, `probe`, `wait`, `not-checked` or \
                         (in [[grade]]) `slot`",
                    ),
                );
            }
            [one] => one.clone(),
            [(first, _), more @ ..] => {
                for (key, span) in more {
                    self.report(
                        Problem::new(
                            span.clone(),
                            format!(
                                "a step has one action, but this one has `{first}` and `{key}`"
                            ),
                            "second action",
                        )
                        .with_help("split it into two [[step]] tables"),
                    );
                }
                return None;
            }
        };
        let on = match (key, &step.on) {
            ("run" | "interact" | "probe" | "slot", Some(on)) => Some(self.vm_reference(on)),
            ("probe" | "slot", None) => Some(None),
            ("run" | "interact", None) => {
                return self.reject(
                    Problem::new(span, format!("`{key}` needs `on`"), "which VM?").with_help(
                        format!(
                            "say which VM it is typed into: on = \"{}\"",
                            self.example_vm()
                        ),
                    ),
                );
            }
            (_, Some(on)) => {
                return self.reject(
                    Problem::new(
                        on.span(),
                        format!("`on` does not apply to `{key}`"),
                        "not used",
                    )
                    .with_help(
                        "`on` goes with `run`, `interact`, `probe` and `slot` only; remove it",
                    ),
                );
            }
            (_, None) => None,
        };
        self.action_of(step, on)
    }

    /// The step's one action; `on` is the checked VM for `run` and `interact`.
    fn action_of(&mut self, step: &RawStep, on: Option<Option<String>>) -> Option<GradeAction> {
        if let Some(command) = &step.host {
            let command = self.text(command, "host")?;
            return Some(Action::Host { command }.into());
        }
        if let Some(raw) = &step.run {
            let command = self.text(raw, "run");
            let vm = on.flatten()?;
            self.console_free(&vm, raw.span())?;
            return Some(
                Action::Guest {
                    vm,
                    command: command?,
                }
                .into(),
            );
        }
        if let Some(raw) = &step.interact {
            let script = self.interaction_script(raw);
            let vm = on.flatten()?;
            self.console_free(&vm, raw.span())?;
            return Some(
                Action::Interact {
                    vm,
                    script: script?,
                }
                .into(),
            );
        }
        if let Some(command) = &step.probe {
            let command = self.text(command, "probe");
            return Some(
                Action::Probe {
                    vm: on?,
                    command: command?,
                }
                .into(),
            );
        }
        if let Some(label) = &step.wait {
            return self.wait(label).map(|label| Action::Wait { label }.into());
        }
        if let Some(reason) = &step.not_checked {
            return self
                .text(reason, "not-checked")
                .map(|reason| Action::NotChecked { reason }.into());
        }
        if let Some(vms) = &step.boot {
            return self.boot(vms).map(|vms| Action::Boot { vms }.into());
        }
        if let Some(vm) = &step.reboot {
            let name = self.vm_reference(vm)?;
            self.console_free(&name, vm.span())?;
            return Some(Action::Reboot { vm: name }.into());
        }
        if let Some(vm) = &step.poweroff {
            let name = self.vm_reference(vm)?;
            self.console_free(&name, vm.span())?;
            return Some(Action::Poweroff { vm: name }.into());
        }
        if let Some(vm) = &step.stop {
            let name = self.vm_reference(vm)?;
            self.console_free(&name, vm.span())?;
            return Some(Action::Stop { vm: name }.into());
        }
        if let Some(path) = &step.slot {
            return self.slot_action(path, on?);
        }
        let check = step.check.as_ref()?;
        self.check(check).map(|check| Action::Check(check).into())
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

    fn timeout(&mut self, text: &Spanned<String>) -> Option<Duration> {
        let problem = match parse_duration(text.get_ref()) {
            Some(duration) if !duration.is_zero() => return Some(duration),
            Some(_) => Problem::new(text.span(), "a timeout of zero can never be met", "zero"),
            None => Problem::new(
                text.span(),
                format!("`{}` is not a duration", text.get_ref()),
                "not a duration",
            )
            .with_help("write a number and a unit: `500ms`, `30s`, `1.5s` or `2m`"),
        };
        self.reject(problem)
    }

    fn vm_reference(&mut self, name: &Spanned<String>) -> Option<String> {
        let wanted = name.get_ref();
        if self.vm_names.contains(wanted) {
            return Some(wanted.clone());
        }
        let help = did_you_mean(wanted, &self.vm_names).unwrap_or_else(|| {
            if self.vm_names.is_empty() {
                format!("declare it in a [vm.{wanted}] table with its `qemu` command line")
            } else {
                format!("the lab declares {}", self.vm_names.join(", "))
            }
        });
        self.reject(
            Problem::new(
                name.span(),
                format!("unknown VM `{wanted}`"),
                "not declared under [vm]",
            )
            .with_help(help),
        )
    }

    fn example_vm(&self) -> &str {
        self.vm_names.first().map_or("vm1", String::as_str)
    }

    /// Reports a lab id or VM name that is not `[a-z0-9][a-z0-9-]*`; true if valid.
    fn name_is_valid(&mut self, name: &Spanned<String>, what: &str) -> bool {
        if is_name(name.get_ref()) {
            return true;
        }
        self.report(
            Problem::new(
                name.span(),
                format!("`{}` is not a valid {what}", name.get_ref()),
                "lowercase letters, digits and `-` only",
            )
            .with_optional_help(did_you_mean_name(name.get_ref())),
        );
        false
    }

    /// A required string key that must not be blank.
    fn required_text<'r>(
        &mut self,
        value: Option<&'r Spanned<String>>,
        key: &str,
        owner: &str,
        owner_head: &Range<usize>,
    ) -> Option<&'r Spanned<String>> {
        let Some(value) = value else {
            return self.reject(Problem::new(
                owner_head.clone(),
                format!("{owner} has no `{key}`"),
                format!("`{key}` missing"),
            ));
        };
        self.text(value, key)?;
        Some(value)
    }

    /// A string that must not be blank.
    fn text(&mut self, value: &Spanned<String>, key: &str) -> Option<String> {
        if value.get_ref().trim().is_empty() {
            return self.reject(Problem::new(
                value.span(),
                format!("`{key}` is empty"),
                "empty",
            ));
        }
        Some(value.get_ref().clone())
    }

    /// The first line of a span: where a table's header is, without its body.
    fn head(&self, span: Range<usize>) -> Range<usize> {
        let end = self
            .text
            .get(span.clone())
            .and_then(|spanned| spanned.find('\n'))
            .map_or(span.end, |newline| span.start + newline);
        span.start..end
    }

    fn location(&self, span: Range<usize>) -> Location {
        let at = TextPosition::of(self.text, span.start);
        Location {
            file: self.path.to_path_buf(),
            line: at.line,
            column: at.column,
        }
    }
}

/// What help says of a network beside its keyword.
fn network_gloss(network: Network) -> Option<&'static str> {
    Some(match network {
        Network::Host => "the default",
        Network::Namespace => "a private network namespace for the lab",
    })
}

/// What help says of a guest form beside its keyword.
fn form_gloss(form: GuestForm) -> Option<&'static str> {
    Some(match form {
        GuestForm::Iso => "bootable ISO",
        GuestForm::Disk => "bootable qcow2 disk",
        GuestForm::Direct => "the ISO's guest, booted directly",
    })
}

/// The span of a key the table may leave out.
fn span_of<T>(value: &Option<Spanned<T>>) -> Option<Range<usize>> {
    value.as_ref().map(Spanned::span)
}

fn is_name(text: &str) -> bool {
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    text.starts_with(allowed) && text.chars().all(|c| allowed(c) || c == '-')
}

#[cfg(test)]
mod tests;

//! Phase two for a step table (`[[step]]`, `[[cleanup]]`, `[[grade]]`): its
//! name, its action with what the action implies (a default exit status,
//! whether it may run in the background or take a fix), its expectation,
//! erratum and timeout; and which consoles background commands hold.

use std::ops::Range;
use std::time::Duration;

use toml::Spanned;

use super::suggest::did_you_mean;
use super::{span_of, Background, Validator};
use crate::scenario::error::{Problem, TextPosition};
use crate::scenario::model::{Action, Expectation, GradeAction, Step};
use crate::scenario::raw::RawStep;
use crate::time::parse_duration;

impl Validator<'_> {
    /// A `[[step]]` or `[[cleanup]]`: runnable as written, so without the
    /// grading keys (a slot among them).
    pub(super) fn step(&mut self, raw: &Spanned<RawStep>, table: &str) -> Option<Step> {
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
    pub(super) fn parse_step(
        &mut self,
        raw: &Spanned<RawStep>,
        table: &str,
    ) -> Option<Step<GradeAction>> {
        let head = self.head(raw.span());
        let step = raw.get_ref();
        let name = self.step_name(step, table, &head);
        let (key, action) = self.action(step, &head).unzip();
        let background = self.optional(step.background.as_ref(), |v, label| {
            v.background(label, action.as_ref()?, step)
        });
        let default_exit = action.as_ref().and_then(default_exit);
        let expect = match &step.expect {
            Some(expect) => self.expectation(expect.get_ref(), default_exit),
            None => Some(Expectation {
                exit: default_exit,
                ..Expectation::default()
            }),
        };
        let erratum = self.optional(step.erratum.as_ref(), Self::erratum);
        let erratum = match (erratum, key, &action, &step.erratum) {
            (Some(Some(e)), Some(key), Some(action), Some(raw))
                if e.fix.is_some() && !is_command(action) =>
            {
                self.fix_without_command(key, raw)
            }
            (erratum, ..) => erratum,
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
            ("expect", span_of(&step.expect)),
            ("erratum", span_of(&step.erratum)),
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
    pub(super) fn wait(&mut self, label: &Spanned<String>) -> Option<String> {
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
    pub(super) fn console_free(&mut self, vm: &str, span: Range<usize>) -> Option<()> {
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
}

/// Commands pass on exit status 0 unless the step expects another; other
/// actions have no exit status to expect by default.
fn default_exit(action: &GradeAction) -> Option<i32> {
    match action {
        GradeAction::Run(
            Action::Host { .. } | Action::Guest { .. } | Action::Probe { .. } | Action::Wait { .. },
        ) => Some(0),
        _ => None,
    }
}

/// A `host` or `run` step: a shell command, which a fix can replace.
fn is_command(action: &GradeAction) -> bool {
    matches!(
        action,
        GradeAction::Run(Action::Host { .. } | Action::Guest { .. })
    )
}

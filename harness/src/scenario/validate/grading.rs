//! Phase two for grading: `[slot."…"]`, `[[grade]]` and its rubric checks
//! (whose observations, `check` and `probe`, are parsed as any step's).

use std::ops::Range;

use toml::Spanned;

use super::suggest::{did_you_mean, use_one_of};
use super::{span_of, Validator};
use crate::scenario::error::{Problem, TextPosition};
use crate::scenario::model::{
    Action, GradeAction, GradeStep, Grading, Role, RubricCheck, Slot, SlotKind, Step, Visibility,
};
use crate::scenario::raw::{in_file_order, items, RawLab, RawSlot, RawStep, Strings};

/// Points above this are a typo, not a rubric.
const MAX_POINTS: i64 = 1000;

impl Validator<'_> {
    /// `Some(None)`: the lab has no grading; `None`: it has, with problems.
    pub(super) fn grading(&mut self, raw: &RawLab) -> Option<Option<Grading>> {
        if raw.slot.is_empty() && raw.grade.is_empty() {
            return Some(None);
        }
        let slots = self.all(in_file_order(&raw.slot), |v, (path, slot)| {
            v.slot(raw, path, slot)
        });
        if raw.grade.is_empty() {
            let at = self.head(raw.slot.values().next().map_or(0..0, Spanned::span));
            return self.reject(
                Problem::new(
                    at,
                    "the lab declares slots but no [[grade]] steps",
                    "unused",
                )
                .with_help("add [[grade]] steps that run the slots and check the result"),
            );
        }
        // The program runs on its own, apart from [[step]]: its names
        // need only be unique among themselves, its digests and background
        // labels are its own.
        self.step_names.clear();
        self.saved_digests.clear();
        self.backgrounds.clear();
        self.busy_consoles.clear();
        let program = self.all(&raw.grade, Self::grade_entry);
        Some(Some(Grading {
            slots: slots?,
            program: program?,
        }))
    }

    fn slot(
        &mut self,
        raw: &RawLab,
        path: &Spanned<String>,
        slot: &Spanned<RawSlot>,
    ) -> Option<Slot> {
        let kind = self.slot_kind(path, slot.get_ref());
        let default = match (&kind, &slot.get_ref().default) {
            // The path is wrong already: a missing default would be noise.
            (None, _) => None,
            (Some(SlotKind::Qemu { vm }), None) => raw
                .vm
                .iter()
                .find(|(name, _)| name.get_ref() == vm)
                .and_then(|(_, spec)| spec.get_ref().qemu.as_ref())
                .map(|qemu| qemu.get_ref().clone()),
            (Some(SlotKind::Qemu { .. }), Some(default)) => self.reject(
                Problem::new(
                    default.span(),
                    "a `.qemu` slot's default is its VM's `qemu` line",
                    "not used",
                )
                .with_help("remove `default`; change the VM's `qemu` instead"),
            ),
            (_, Some(default)) => Some(default.get_ref().clone()),
            (_, None) => self.reject(
                Problem::new(
                    self.head(slot.span()),
                    format!("the slot `{}` has no `default`", path.get_ref()),
                    "`default` missing",
                )
                .with_help("give what the reference submission holds: the handout's commands"),
            ),
        };
        Some(Slot {
            path: path.get_ref().clone(),
            kind: kind?,
            default: default?,
            location: self.location(slot.span()),
        })
    }

    fn slot_kind(&mut self, path: &Spanned<String>, slot: &RawSlot) -> Option<SlotKind> {
        let text = path.get_ref();
        let plain = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "/._-".contains(c);
        let parts_ok = text
            .split('/')
            .all(|part| !part.is_empty() && !part.starts_with('.') && part.chars().all(plain));
        let extension = text.rsplit_once('.').map(|(_, ext)| ext);
        let kind = match (parts_ok, extension, &slot.vm) {
            (false, _, _) => {
                return self.reject(
                    Problem::new(path.span(), format!("`{text}` is not a slot path"), "here")
                        .with_help("a relative path of lowercase names, e.g. \"socket/vm1.qemu\""),
                )
            }
            (true, Some("qemu"), Some(vm)) => SlotKind::Qemu {
                vm: self.vm_reference(vm)?,
            },
            (true, Some("qemu"), None) => {
                return self.reject(
                    Problem::new(path.span(), "a `.qemu` slot needs `vm`", "which VM?")
                        .with_help(format!("vm = \"{}\"", self.example_vm())),
                )
            }
            (true, Some("guest"), None) => SlotKind::Guest,
            (true, Some("sh"), None) => SlotKind::Shell,
            (true, Some("guest" | "sh"), Some(vm)) => {
                return self.reject(
                    Problem::new(vm.span(), "only a `.qemu` slot takes `vm`", "not used")
                        .with_help("say where a `.guest` slot is typed with `on` in its step"),
                )
            }
            (true, _, _) => {
                return self.reject(
                    Problem::new(
                        path.span(),
                        format!("`{text}`: unknown kind of slot"),
                        "here",
                    )
                    .with_help("a slot ends in `.qemu`, `.guest` or `.sh`"),
                )
            }
        };
        Some(kind)
    }

    /// `slot = "…"` in a `[[grade]]` step: a `.guest` slot typed `on` a VM,
    /// or a `.sh` slot run on the host.
    pub(super) fn slot_action(
        &mut self,
        path: &Spanned<String>,
        on: Option<String>,
    ) -> Option<GradeAction> {
        let wanted = path.get_ref();
        if !self.slot_paths.contains(wanted) {
            let help = did_you_mean(wanted, &self.slot_paths)
                .unwrap_or_else(|| format!("declare it: [slot.\"{wanted}\"]"));
            return self.reject(
                Problem::new(
                    path.span(),
                    format!("unknown slot `{wanted}`"),
                    "not declared",
                )
                .with_help(help),
            );
        }
        let action = |vm| GradeAction::Slot {
            path: wanted.clone(),
            vm,
        };
        match (wanted.rsplit_once('.').map(|(_, ext)| ext), on) {
            (Some("guest"), Some(vm)) => Some(action(Some(vm))),
            (Some("sh"), None) => Some(action(None)),
            (Some("guest"), None) => self.reject(
                Problem::new(path.span(), "a `.guest` slot needs `on`", "typed where?")
                    .with_help(format!("on = \"{}\"", self.example_vm())),
            ),
            (Some("sh"), Some(_)) => self.reject(
                Problem::new(
                    path.span(),
                    "a `.sh` slot runs on the host",
                    "`on` not used",
                )
                .with_help("remove `on`"),
            ),
            _ => self.reject(
                Problem::new(path.span(), "a `.qemu` slot is not a step", "here")
                    .with_help("boot its VM: the slot gives the VM's command line"),
            ),
        }
    }

    /// `points`, `id`, `depends-on`, `visibility`, `hint`, `grades` and
    /// `slot` mean something only in `[[grade]]`.
    pub(super) fn grading_keys_outside_grade(&mut self, step: &RawStep, table: &str) -> Option<()> {
        let misplaced = grading_keys(step);
        for (key, span) in &misplaced {
            self.report(
                Problem::new(
                    span.clone(),
                    format!("`{key}` belongs in [[grade]], not {table}"),
                    "grading only",
                )
                .with_help("move the step to a [[grade]] table, or remove the key"),
            );
        }
        misplaced.is_empty().then_some(())
    }

    fn grade_entry(&mut self, raw: &Spanned<RawStep>) -> Option<GradeStep> {
        let entry = raw.get_ref();
        let step = self.parse_step(raw, "[[grade]]");
        let role = match (&entry.points, &entry.slot) {
            (Some(points), _) => self.rubric_check(entry, points, step.as_ref()),
            (None, slot) => {
                for (key, span) in grading_keys(entry) {
                    if key != "slot" {
                        self.report(
                            Problem::new(span, format!("`{key}` is for rubric checks"), "here")
                                .with_help("give the check its `points`, or remove the key"),
                        );
                    }
                }
                Some(match slot {
                    Some(slot) => Role::Student {
                        slot: slot.get_ref().clone(),
                    },
                    None => Role::Grader,
                })
            }
        };
        let mut step = step?;
        if let Role::Check(check) = role.as_ref()? {
            step.id = Some(check.id.clone());
            step.depends_on = check.depends_on.clone();
        }
        Some(GradeStep { step, role: role? })
    }

    fn rubric_check(
        &mut self,
        entry: &RawStep,
        points: &Spanned<i64>,
        step: Option<&Step<GradeAction>>,
    ) -> Option<Role> {
        // The id is registered even when the step has problems of its own,
        // so that checks depending on it are not reported too.
        let id = self.check_id(entry);
        let observes = step.map(|step| {
            matches!(
                step.action,
                GradeAction::Run(Action::Check(_) | Action::Probe { .. })
            )
        });
        if observes == Some(false) {
            return self.reject(
                Problem::new(
                    points.span(),
                    "a rubric check observes: its action is `check` or `probe`",
                    "worth points",
                )
                .with_help("run the student's files in steps without points, then check"),
            );
        }
        let points_value = match u32::try_from(*points.get_ref()) {
            Ok(value) if i64::from(value) <= MAX_POINTS => Some(value),
            _ => self.reject(Problem::new(
                points.span(),
                format!("points must be 0 to {MAX_POINTS}"),
                "out of range",
            )),
        };
        let depends_on = self.optional(entry.depends_on.as_ref(), Self::depends_on);
        let visibility = self.optional(entry.visibility.as_ref(), Self::visibility);
        let grades = self.optional(entry.grades.as_ref(), Self::graded_slots);
        let hint = entry.hint.as_ref().map(|hint| hint.get_ref().clone());
        let id = id?;
        Some(Role::Check(RubricCheck {
            id,
            points: points_value?,
            depends_on: depends_on?.unwrap_or_default(),
            visibility: visibility?.unwrap_or_default(),
            hint,
            grades: grades?.unwrap_or_default(),
        }))
    }

    fn check_id(&mut self, entry: &RawStep) -> Option<String> {
        let Some(id) = &entry.id else {
            return self.reject(
                Problem::new(
                    entry.points.as_ref().map_or(0..0, Spanned::span),
                    "a rubric check needs an `id`",
                    "worth points",
                )
                .with_help("for example: id = \"traffic-vm2-to-vm1\""),
            );
        };
        if !self.name_is_valid(id, "check id") {
            return None;
        }
        if let Some(first) = self.check_ids.get(id.get_ref()) {
            let line = TextPosition::of(self.text, first.start).line;
            return self.reject(
                Problem::new(
                    id.span(),
                    format!("two checks are `{}`", id.get_ref()),
                    "again",
                )
                .with_help(format!("the first is at line {line}")),
            );
        }
        self.check_ids.insert(id.get_ref().clone(), id.span());
        Some(id.get_ref().clone())
    }

    fn depends_on(&mut self, raw: &Spanned<Strings>) -> Option<Vec<String>> {
        self.all(items(raw), |v, (span, id)| {
            if v.check_ids.contains_key(id) {
                return Some(id.to_owned());
            }
            let help = did_you_mean(id, v.check_ids.keys())
                .unwrap_or_else(|| "a check depends only on checks before it".to_owned());
            v.reject(
                Problem::new(span, format!("no earlier check is `{id}`"), "unknown")
                    .with_help(help),
            )
        })
    }

    fn visibility(&mut self, raw: &Spanned<String>) -> Option<Visibility> {
        let wanted = raw.get_ref();
        if let Ok(visibility) = wanted.parse() {
            return Some(visibility);
        }
        self.reject(
            Problem::new(
                raw.span(),
                format!("`{wanted}` is not a visibility"),
                "here",
            )
            .with_help(use_one_of(
                &Visibility::ALL,
                Visibility::as_str,
                visibility_gloss,
            )),
        )
    }

    fn graded_slots(&mut self, raw: &Spanned<Strings>) -> Option<Vec<String>> {
        self.all(items(raw), |v, (span, path)| {
            if v.slot_paths.iter().any(|slot| slot == path) {
                return Some(path.to_owned());
            }
            v.reject(Problem::new(
                span,
                format!("unknown slot `{path}`"),
                "not declared",
            ))
        })
    }
}

/// What help says of a visibility beside its keyword.
fn visibility_gloss(visibility: Visibility) -> Option<&'static str> {
    match visibility {
        Visibility::Visible => Some("the default"),
        Visibility::Hidden | Visibility::AfterDueDate => None,
    }
}

/// The grading keys a step gives, with their spans.
fn grading_keys(step: &RawStep) -> Vec<(&'static str, Range<usize>)> {
    [
        ("slot", span_of(&step.slot)),
        ("id", span_of(&step.id)),
        ("points", span_of(&step.points)),
        ("depends-on", span_of(&step.depends_on)),
        ("visibility", span_of(&step.visibility)),
        ("hint", span_of(&step.hint)),
        ("grades", span_of(&step.grades)),
    ]
    .into_iter()
    .filter_map(|(key, span)| Some((key, span?)))
    .collect()
}

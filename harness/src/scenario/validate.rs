//! Phase two: the raw lab checked and turned into the model. Every problem is
//! collected in one pass, so an author fixes a file in one go.
//!
//! Here: the validator's state, the `[lab]` header, `[images]` and `[vm.…]`,
//! and the helpers every rule uses. Each part of a step has its own file
//! (`steps`, `actions`, `checks`, `expect`, `errata`), grading has
//! `grading`, and `suggest` words the help they give.

mod actions;
mod checks;
mod errata;
mod expect;
mod grading;
mod steps;
mod suggest;

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

use toml::Spanned;

use super::error::{Problem, TextPosition};
use super::model::{AfterFailure, GuestForm, ImageStandIn, Lab, Location, Network, Origin, VmSpec};
use super::qemu_line::CommandLine;
use super::raw::{in_file_order, RawHeader, RawLab, RawVm};
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
        let qemu = self.required_text(vm.get_ref().qemu.as_ref(), "qemu", &table, &head)?;
        self.command_line_parses(qemu)?;
        name_is_valid.then_some(())?;
        Some(VmSpec {
            name: name.get_ref().clone(),
            qemu: qemu.get_ref().clone(),
            location: self.location(vm.span()),
            origin: Origin::LabFile,
        })
    }

    /// A VM's QEMU command line parses (quotes closed, a `qemu-system-*`
    /// program, every option's value there), so nothing runs half-way.
    fn command_line_parses(&mut self, qemu: &Spanned<String>) -> Option<()> {
        let error = match CommandLine::parse(qemu.get_ref()) {
            Ok(_) => return Some(()),
            Err(error) => error,
        };
        let span = self.span_in_value(qemu, error.offset());
        self.reject(Problem::new(span, error.to_string(), "here"))
    }

    /// The span of byte `offset` of `value`'s text, when the file holds that
    /// text as written (a literal string, or one without escapes); else the
    /// whole value.
    fn span_in_value(&self, value: &Spanned<String>, offset: usize) -> Range<usize> {
        let written = &self.text[value.span()];
        match written.find(value.get_ref().as_str()) {
            Some(at) => {
                let start = value.span().start + at + offset;
                start..start + 1
            }
            None => value.span(),
        }
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

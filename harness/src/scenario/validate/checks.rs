//! Phase two for `check = { … }`: a host-side fact, an observation of
//! labcheck's own. One table of check kinds finds which kind a check is,
//! names the kinds in help and parses each; rubric checks use the same ones.

use std::ops::Range;

use toml::Spanned;

use super::suggest::{did_you_mean, listing};
use super::{span_of, Validator};
use crate::scenario::error::{Problem, TextPosition};
use crate::scenario::model::{Check, DigestMode, FieldExpect, Network};
use crate::scenario::raw::{items, RawCheck, Strings};

/// One kind of check, by the key that names it.
struct CheckKind {
    key: &'static str,
    /// The options it takes besides its key.
    options: &'static [&'static str],
    /// The key's span, if the check gives it.
    given: fn(&RawCheck) -> Option<Range<usize>>,
    /// Parses a check of this kind; the range is the check's first line.
    parse: fn(&mut Validator<'_>, &RawCheck, &Range<usize>) -> Option<Check>,
}

/// Every kind of check, in the order help lists them.
const CHECK_KINDS: &[CheckKind] = &[
    CheckKind {
        key: "qemu-img-info",
        options: &["field", "equals", "absent"],
        given: |check| span_of(&check.qemu_img_info),
        parse: |v, check, head| v.qemu_img_info_check(check, head),
    },
    CheckKind {
        key: "file",
        options: &["exists"],
        given: |check| span_of(&check.file),
        parse: |v, check, _| v.file_check(check),
    },
    CheckKind {
        key: "digest",
        options: &["save", "same-as"],
        given: |check| span_of(&check.digest),
        parse: |v, check, head| v.digest_check(check, head),
    },
    CheckKind {
        key: "no-links",
        options: &[],
        given: |check| span_of(&check.no_links),
        parse: |v, check, _| v.no_links_check(check.no_links.as_ref()?),
    },
    CheckKind {
        key: "running",
        options: &[],
        given: |check| span_of(&check.running),
        parse: |v, check, _| v.running_check(check.running.as_ref()?),
    },
    CheckKind {
        key: "traffic",
        options: &[],
        given: |check| span_of(&check.traffic),
        parse: |v, check, _| v.traffic_check(check.traffic.as_ref()?),
    },
    CheckKind {
        key: "subnet",
        options: &[],
        given: |check| span_of(&check.subnet),
        parse: |v, check, _| v.subnet_check(check.subnet.as_ref()?),
    },
    CheckKind {
        key: "socket-link",
        options: &[],
        given: |check| span_of(&check.socket_link),
        parse: |v, check, _| v.socket_link_check(check.socket_link.as_ref()?),
    },
    CheckKind {
        key: "bridged-taps",
        options: &[],
        given: |check| span_of(&check.bridged_taps),
        parse: |v, check, _| v.bridged_taps_check(check.bridged_taps.as_ref()?),
    },
];

impl Validator<'_> {
    pub(super) fn check(&mut self, raw: &Spanned<RawCheck>) -> Option<Check> {
        let head = self.head(raw.span());
        let check = raw.get_ref();
        let given: Vec<(&CheckKind, Range<usize>)> = CHECK_KINDS
            .iter()
            .filter_map(|kind| Some((kind, (kind.given)(check)?)))
            .collect();
        let kind = match given.as_slice() {
            [] => {
                let kinds = CHECK_KINDS.iter().map(|kind| format!("`{}`", kind.key));
                return self.reject(
                    Problem::new(
                        head,
                        format!("a check needs {}", listing(kinds, "or")),
                        "what to check?",
                    )
                    .with_help("for example: check = { file = \"vm2.qcow2\", exists = true }"),
                );
            }
            [(kind, _)] => *kind,
            [(first, _), more @ ..] => {
                for (kind, span) in more {
                    self.report(
                        Problem::new(
                            span.clone(),
                            format!(
                                "a check tests one thing, but this one has `{}` and `{}`",
                                first.key, kind.key
                            ),
                            "second check",
                        )
                        .with_help("split it into two steps"),
                    );
                }
                return None;
            }
        };
        let misplaced = self.misplaced_check_options(check, kind);
        let checked = (kind.parse)(self, check, &head);
        if misplaced {
            return None;
        }
        checked
    }

    /// Reports options that belong to another kind of check; true if any.
    fn misplaced_check_options(&mut self, check: &RawCheck, kind: &CheckKind) -> bool {
        let options = [
            ("field", span_of(&check.field)),
            ("equals", span_of(&check.equals)),
            ("absent", span_of(&check.absent)),
            ("exists", span_of(&check.exists)),
            ("save", span_of(&check.save)),
            ("same-as", span_of(&check.same_as)),
        ];
        let mut misplaced = false;
        for (option, span) in options {
            let Some(span) = span else { continue };
            if kind.options.contains(&option) {
                continue;
            }
            misplaced = true;
            let takes = kind
                .options
                .iter()
                .map(|option| format!("`{option}`"))
                .collect::<Vec<_>>()
                .join(", ");
            self.report(
                Problem::new(
                    span,
                    format!("`{option}` does not apply to a `{}` check", kind.key),
                    "not for this check",
                )
                .with_help(format!("a `{}` check takes {takes}", kind.key)),
            );
        }
        misplaced
    }

    fn qemu_img_info_check(&mut self, check: &RawCheck, head: &Range<usize>) -> Option<Check> {
        let image = check
            .qemu_img_info
            .as_ref()
            .and_then(|image| self.text(image, "qemu-img-info"));
        let field = self.required_text(
            check.field.as_ref(),
            "field",
            "the `qemu-img-info` check",
            head,
        );
        let expect = match (&check.equals, &check.absent) {
            (Some(value), None) => Some(FieldExpect::Equals(json(value.get_ref()))),
            (None, Some(absent)) if *absent.get_ref() => Some(FieldExpect::Absent),
            (None, Some(absent)) => self.reject(
                Problem::new(
                    absent.span(),
                    "`absent = false` checks nothing",
                    "only `true` means something",
                )
                .with_help("to check the field's value, write `equals = …` instead"),
            ),
            (Some(_), Some(absent)) => self.reject(Problem::new(
                absent.span(),
                "give `equals` or `absent = true`, not both",
                "second expectation",
            )),
            (None, None) => self.reject(
                Problem::new(
                    head.clone(),
                    "a `qemu-img-info` check needs `equals = …` or `absent = true`",
                    "nothing to compare",
                )
                .with_help("for example: field = \"backing-filename\", equals = \"vm1.qcow2\""),
            ),
        };
        Some(Check::QemuImgInfo {
            image: image?,
            field: field?.get_ref().clone(),
            expect: expect?,
        })
    }

    fn file_check(&mut self, check: &RawCheck) -> Option<Check> {
        let path = self.text(check.file.as_ref()?, "file")?;
        let exists = check.exists.as_ref().is_none_or(|exists| *exists.get_ref());
        Some(Check::File { path, exists })
    }

    fn digest_check(&mut self, check: &RawCheck, head: &Range<usize>) -> Option<Check> {
        let path = check
            .digest
            .as_ref()
            .and_then(|path| self.text(path, "digest"));
        let mode = match (&check.save, &check.same_as) {
            (Some(name), None) => self.digest_save(name),
            (None, Some(name)) => self.digest_same_as(name),
            (Some(_), Some(same_as)) => {
                return self.reject(
                    Problem::new(
                        same_as.span(),
                        "a digest check either saves or compares, not both",
                        "second mode",
                    )
                    .with_help("split it into two steps"),
                );
            }
            (None, None) => {
                return self.reject(Problem::new(
                    head.clone(),
                    "a `digest` check needs `save = \"name\"` or `same-as = \"name\"`",
                    "save or compare?",
                ));
            }
        };
        Some(Check::Digest {
            path: path?,
            mode: mode?,
        })
    }

    fn no_links_check(&mut self, raw: &Spanned<Strings>) -> Option<Check> {
        self.namespace_only(raw.span(), "no-links")?;
        let kinds: Vec<String> = items(raw).into_iter().map(|(_, k)| k.to_owned()).collect();
        if kinds.is_empty() {
            return self.reject(
                Problem::new(raw.span(), "`no-links` names no kind of link", "empty list")
                    .with_help("for example: no-links = [\"tun\", \"bridge\"]"),
            );
        }
        Some(Check::NoLinks { kinds })
    }

    fn digest_save(&mut self, name: &Spanned<String>) -> Option<DigestMode> {
        let saved = self.text(name, "save")?;
        if let Some(first) = self.saved_digests.get(&saved) {
            let line = TextPosition::of(self.text, first.start).line;
            return self.reject(
                Problem::new(
                    name.span(),
                    format!("a digest named `{saved}` is already saved"),
                    "saved twice",
                )
                .with_help(format!(
                    "the first save is at line {line}; give this one another name"
                )),
            );
        }
        self.saved_digests.insert(saved.clone(), name.span());
        Some(DigestMode::Save(saved))
    }

    fn digest_same_as(&mut self, name: &Spanned<String>) -> Option<DigestMode> {
        let wanted = name.get_ref();
        if self.saved_digests.contains_key(wanted) {
            return Some(DigestMode::SameAs(wanted.clone()));
        }
        let later = self.every_save.iter().find(|(saved, _)| saved == wanted);
        let help = match later {
            Some((_, at)) => format!(
                "it is saved at line {}, after this step; save it before comparing",
                TextPosition::of(self.text, at.start).line
            ),
            None => did_you_mean(wanted, self.saved_digests.keys()).unwrap_or_else(|| {
                format!(
                    "save it in an earlier step: check = {{ digest = \"…\", save = \"{wanted}\" }}"
                )
            }),
        };
        self.reject(
            Problem::new(
                name.span(),
                format!("no earlier step saves a digest named `{wanted}`"),
                "not saved yet",
            )
            .with_help(help),
        )
    }

    /// A list of exactly two VMs, for checks between two of them.
    fn vm_pair(&mut self, raw: &Spanned<Strings>, key: &str) -> Option<(String, String)> {
        let names = self.vm_list(raw, key)?;
        match names.as_slice() {
            [first, second] if first != second => Some((first.clone(), second.clone())),
            _ => self.reject(
                Problem::new(
                    raw.span(),
                    format!("`{key}` names two different VMs"),
                    "here",
                )
                .with_help(format!("{key} = [\"vm1\", \"vm2\"]")),
            ),
        }
    }

    fn vm_list(&mut self, raw: &Spanned<Strings>, key: &str) -> Option<Vec<String>> {
        let names = items(raw);
        if names.is_empty() {
            return self.reject(Problem::new(
                raw.span(),
                format!("`{key}` names no VM"),
                "empty",
            ));
        }
        self.all(names, |v, (span, name)| {
            v.vm_reference(&Spanned::new(span, name.to_owned()))
        })
    }

    fn running_check(&mut self, raw: &Spanned<Strings>) -> Option<Check> {
        let vms = self.vm_list(raw, "running")?;
        Some(Check::Running { vms })
    }

    fn traffic_check(&mut self, raw: &Spanned<Strings>) -> Option<Check> {
        let (from, to) = self.vm_pair(raw, "traffic")?;
        Some(Check::Traffic { from, to })
    }

    fn subnet_check(&mut self, raw: &Spanned<Strings>) -> Option<Check> {
        let vms = self.vm_list(raw, "subnet")?;
        Some(Check::Subnet { vms })
    }

    fn socket_link_check(&mut self, raw: &Spanned<Strings>) -> Option<Check> {
        let (listen, connect) = self.vm_pair(raw, "socket-link")?;
        Some(Check::SocketLink { listen, connect })
    }

    fn bridged_taps_check(&mut self, raw: &Spanned<i64>) -> Option<Check> {
        let count = match u32::try_from(*raw.get_ref()) {
            Ok(count) if count > 0 => count,
            _ => {
                return self.reject(Problem::new(
                    raw.span(),
                    "`bridged-taps` counts tap devices: 1 or more",
                    "here",
                ))
            }
        };
        self.namespace_only(raw.span(), "bridged-taps")?;
        Some(Check::BridgedTaps { count })
    }

    /// Checks that look into the lab's namespace need the lab to have one.
    fn namespace_only(&mut self, span: Range<usize>, key: &str) -> Option<()> {
        if self.network == Network::Namespace {
            return Some(());
        }
        self.reject(
            Problem::new(
                span,
                format!("`{key}` checks the lab's own namespace, and this lab has none"),
                "no namespace",
            )
            .with_help("add network = \"namespace\" to [lab]"),
        )
    }
}

/// TOML values as the JSON that `qemu-img info --output=json` prints.
fn json(value: &toml::Value) -> serde_json::Value {
    use serde_json::Value as Json;
    match value {
        toml::Value::String(text) => Json::String(text.clone()),
        toml::Value::Integer(number) => Json::from(*number),
        toml::Value::Float(number) => Json::from(*number),
        toml::Value::Boolean(flag) => Json::Bool(*flag),
        toml::Value::Datetime(datetime) => Json::String(datetime.to_string()),
        toml::Value::Array(items) => Json::Array(items.iter().map(json).collect()),
        toml::Value::Table(table) => Json::Object(
            table
                .iter()
                .map(|(key, value)| (key.clone(), json(value)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    /// Each kind of the table finds its own key of a check, and no other.
    #[rstest]
    #[case("qemu-img-info", "\"d.qcow2\"")]
    #[case("file", "\"f\"")]
    #[case("digest", "\"d.qcow2\"")]
    #[case("no-links", "[\"tun\"]")]
    #[case("running", "[\"vm1\"]")]
    #[case("traffic", "[\"vm1\", \"vm2\"]")]
    #[case("subnet", "[\"vm1\"]")]
    #[case("socket-link", "[\"vm1\", \"vm2\"]")]
    #[case("bridged-taps", "2")]
    fn a_check_kind_is_found_in_its_own_key(#[case] key: &str, #[case] value: &str) {
        let check: RawCheck = toml::from_str(&format!("{key} = {value}\n")).expect("a check");
        let found: Vec<&str> = CHECK_KINDS
            .iter()
            .filter(|kind| (kind.given)(&check).is_some())
            .map(|kind| kind.key)
            .collect();
        assert_eq!(found, [key]);
    }
}

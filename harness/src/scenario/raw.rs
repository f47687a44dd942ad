//! Phase one: the lab file as TOML wrote it, with the source span of every
//! value that validation may complain about. Nothing is checked here beyond
//! TOML syntax, key names (`deny_unknown_fields`) and value types; required
//! keys are `Option`s so that validation can report all missing ones at once.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLab {
    pub lab: Option<Spanned<RawHeader>>,
    #[serde(default)]
    pub images: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    pub vm: BTreeMap<Spanned<String>, Spanned<RawVm>>,
    #[serde(default)]
    pub step: Vec<Spanned<RawStep>>,
    #[serde(default)]
    pub cleanup: Vec<Spanned<RawStep>>,
    #[serde(default)]
    pub slot: BTreeMap<Spanned<String>, Spanned<RawSlot>>,
    #[serde(default)]
    pub grade: Vec<Spanned<RawStep>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSlot {
    pub vm: Option<Spanned<String>>,
    pub default: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHeader {
    pub id: Option<Spanned<String>>,
    pub title: Option<Spanned<String>>,
    pub handout: Option<Spanned<String>>,
    pub network: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawVm {
    pub qemu: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawStep {
    pub name: Option<Spanned<String>>,
    pub on: Option<Spanned<String>>,
    pub host: Option<Spanned<String>>,
    pub run: Option<Spanned<String>>,
    pub interact: Option<Spanned<Vec<Spanned<RawInteraction>>>>,
    pub boot: Option<Spanned<Strings>>,
    pub reboot: Option<Spanned<String>>,
    pub poweroff: Option<Spanned<String>>,
    pub stop: Option<Spanned<String>>,
    pub check: Option<Spanned<RawCheck>>,
    pub probe: Option<Spanned<String>>,
    pub wait: Option<Spanned<String>>,
    pub not_checked: Option<Spanned<String>>,
    pub background: Option<Spanned<String>>,
    pub expect: Option<Spanned<RawExpect>>,
    pub erratum: Option<Spanned<RawErratum>>,
    pub timeout: Option<Spanned<String>>,
    // Grading only (`[[grade]]`).
    pub slot: Option<Spanned<String>>,
    pub id: Option<Spanned<String>>,
    /// Wider than the points type so that `points = -1` reaches validation.
    pub points: Option<Spanned<i64>>,
    pub depends_on: Option<Spanned<Strings>>,
    pub visibility: Option<Spanned<String>>,
    pub hint: Option<Spanned<String>>,
    pub grades: Option<Spanned<Strings>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInteraction {
    pub send: Option<Spanned<String>>,
    pub expect: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawCheck {
    pub qemu_img_info: Option<Spanned<String>>,
    pub field: Option<Spanned<String>>,
    pub equals: Option<Spanned<toml::Value>>,
    pub absent: Option<Spanned<bool>>,
    pub file: Option<Spanned<String>>,
    pub exists: Option<Spanned<bool>>,
    pub digest: Option<Spanned<String>>,
    pub save: Option<Spanned<String>>,
    pub same_as: Option<Spanned<String>>,
    pub no_links: Option<Spanned<Strings>>,
    pub running: Option<Spanned<Strings>>,
    pub traffic: Option<Spanned<Strings>>,
    pub subnet: Option<Spanned<Strings>>,
    pub socket_link: Option<Spanned<Strings>>,
    pub bridged_taps: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawExpect {
    /// Wider than an exit status so that `exit = 300` reaches validation,
    /// which can say what the range is.
    pub exit: Option<Spanned<i64>>,
    pub output: Option<Spanned<Strings>>,
    pub matches: Option<Spanned<String>>,
    pub absent: Option<Spanned<Strings>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawErratum {
    pub reason: Option<Spanned<String>>,
    pub fix: Option<Spanned<String>>,
    pub observed: Option<Spanned<RawExpect>>,
}

/// `key = "one"` or `key = ["one", "two"]`.
///
/// Hand-written rather than `#[serde(untagged)]`: untagged enums buffer the
/// value, which loses the spans of the list items.
#[derive(Debug)]
pub(super) enum Strings {
    One(String),
    Many(Vec<Spanned<String>>),
}

/// Every string with its own span; a single string has the key's value span.
pub(super) fn items(strings: &Spanned<Strings>) -> Vec<(Range<usize>, &str)> {
    match strings.get_ref() {
        Strings::One(one) => vec![(strings.span(), one.as_str())],
        Strings::Many(many) => many
            .iter()
            .map(|item| (item.span(), item.get_ref().as_str()))
            .collect(),
    }
}

impl<'de> Deserialize<'de> for Strings {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StringsVisitor;

        impl<'de> Visitor<'de> for StringsVisitor {
            type Value = Strings;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Strings, E> {
                Ok(Strings::One(text.to_owned()))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strings, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Strings::Many(items))
            }
        }

        deserializer.deserialize_any(StringsVisitor)
    }
}

/// The entries of a TOML table in the order the file wrote them (serde's map
/// is sorted by name; the spans remember the order).
pub(super) fn in_file_order<V>(
    table: &BTreeMap<Spanned<String>, Spanned<V>>,
) -> Vec<(&Spanned<String>, &Spanned<V>)> {
    let mut entries: Vec<_> = table.iter().collect();
    entries.sort_by_key(|(key, _)| key.span().start);
    entries
}

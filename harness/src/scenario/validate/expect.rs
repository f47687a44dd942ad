//! Phase two for what a step must show: `expect = { … }` (and an
//! erratum's `observed`, which has the same keys), its exit status and its
//! regexes, which `interact` uses too.

use regex::Regex;
use toml::Spanned;

use super::Validator;
use crate::scenario::error::Problem;
use crate::scenario::model::Expectation;
use crate::scenario::raw::{items, RawExpect, Strings};

impl Validator<'_> {
    pub(super) fn expectation(
        &mut self,
        raw: &RawExpect,
        default_exit: Option<i32>,
    ) -> Option<Expectation> {
        let exit = self.optional(raw.exit.as_ref(), Self::exit_status);
        let matches = self.optional(raw.matches.as_ref(), Self::regex);
        let strings = |field: &Option<Spanned<Strings>>| {
            field.as_ref().map_or(Vec::new(), |strings| {
                items(strings)
                    .into_iter()
                    .map(|(_, text)| text.to_owned())
                    .collect()
            })
        };
        Some(Expectation {
            exit: exit?.or(default_exit),
            output: strings(&raw.output),
            matches: matches?,
            absent: strings(&raw.absent),
        })
    }

    fn exit_status(&mut self, exit: &Spanned<i64>) -> Option<i32> {
        match u8::try_from(*exit.get_ref()) {
            Ok(status) => Some(i32::from(status)),
            Err(_) => self.reject(
                Problem::new(
                    exit.span(),
                    format!("exit status {} is out of range", exit.get_ref()),
                    "not in 0..=255",
                )
                .with_help("an exit status is a number from 0 to 255"),
            ),
        }
    }

    pub(super) fn regex(&mut self, pattern: &Spanned<String>) -> Option<Regex> {
        let error = match Regex::new(pattern.get_ref()) {
            Ok(regex) => return Some(regex),
            Err(error) => error.to_string(),
        };
        // The regex crate's message draws the pattern with a caret; its last
        // `error:` line is the reason, which is what fits on one line.
        let reason = error
            .lines()
            .filter_map(|line| line.strip_prefix("error: "))
            .next_back()
            .unwrap_or(&error);
        let written = self.text.get(pattern.span()).unwrap_or_default();
        let unescaped_differs =
            written.get(1..written.len().saturating_sub(1)) != Some(pattern.get_ref());
        self.reject(
            Problem::new(
                pattern.span(),
                format!("invalid regex: {reason}"),
                "does not compile",
            )
            .with_optional_help(unescaped_differs.then(|| {
                format!(
                    "after TOML unescaping, the pattern is `{}`",
                    pattern.get_ref()
                )
            })),
        )
    }
}

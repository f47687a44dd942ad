//! Phase two for `erratum = { … }`: a handout command known not to work as
//! printed, how its failure shows, and the command that works instead.

use toml::Spanned;

use super::Validator;
use crate::scenario::error::Problem;
use crate::scenario::model::{Erratum, Expectation};
use crate::scenario::raw::{items, RawErratum, RawExpect, Strings};

impl Validator<'_> {
    /// A `fix` is a command run in place of the handout's: only `host` and
    /// `run` steps have one to replace. `key` names the step's action.
    pub(super) fn fix_without_command(
        &mut self,
        key: &str,
        raw: &Spanned<RawErratum>,
    ) -> Option<Option<Erratum>> {
        let span = raw
            .get_ref()
            .fix
            .as_ref()
            .map_or_else(|| raw.span(), |fix| fix.span());
        self.reject(
            Problem::new(
                span,
                format!("a `{key}` step has no command for `fix` to replace"),
                "only `host` and `run` steps take a fix",
            )
            .with_help("drop `fix`, or make the step a `host` or `run` step"),
        )
    }

    pub(super) fn erratum(&mut self, raw: &Spanned<RawErratum>) -> Option<Erratum> {
        let head = self.head(raw.span());
        let erratum = raw.get_ref();
        let reason = self.required_text(erratum.reason.as_ref(), "reason", "`erratum`", &head);
        let fix = self.optional(erratum.fix.as_ref(), |v, fix| v.text(fix, "fix"));
        let observed = match &erratum.observed {
            Some(observed) => self.observed(observed),
            None => {
                return self.reject(
                    Problem::new(head, "the erratum has no `observed`", "how does it show?")
                        .with_help(
                            "add observed = { exit = 1, output = \"…\" }: what the handout's \
                             command does today, so a different failure is not taken for it",
                        ),
                );
            }
        };
        Some(Erratum {
            reason: reason?.get_ref().clone(),
            fix: fix?,
            observed: observed?,
        })
    }

    fn observed(&mut self, raw: &Spanned<RawExpect>) -> Option<Expectation> {
        let observed = raw.get_ref();
        let says_nothing = |strings: &Option<Spanned<Strings>>| {
            strings
                .as_ref()
                .is_none_or(|strings| items(strings).is_empty())
        };
        if observed.exit.is_none()
            && observed.matches.is_none()
            && says_nothing(&observed.output)
            && says_nothing(&observed.absent)
        {
            return self.reject(
                Problem::new(raw.span(), "`observed` is empty", "nothing to recognise").with_help(
                    "say how the failure shows: `exit`, `output`, `matches` or `absent`",
                ),
            );
        }
        self.expectation(observed, None)
    }
}

//! Errors in lab files: every problem found, each pointing at its place.

use std::ops::Range;
use std::path::PathBuf;

use miette::{Diagnostic, NamedSource, SourceSpan};
use thiserror::Error;

/// Why a lab file could not be turned into a [`super::model::Lab`].
#[derive(Debug, Error, Diagnostic)]
pub enum LabFileError {
    #[error("cannot read lab file {}", path.display())]
    #[diagnostic(code(labcheck::lab_file::unreadable))]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{}", summary(.source_code.name(), .problems))]
    #[diagnostic(code(labcheck::lab_file::invalid))]
    Invalid {
        #[source_code]
        source_code: NamedSource<String>,
        /// In the order of the file, never empty.
        #[related]
        problems: Vec<Problem>,
    },
}

fn summary(file: &str, problems: &[Problem]) -> String {
    match problems.len() {
        1 => format!("lab file {file} has a problem"),
        n => format!("lab file {file} has {n} problems"),
    }
}

impl LabFileError {
    pub(super) fn invalid(file: String, text: String, mut problems: Vec<Problem>) -> Self {
        problems.sort_by_key(|problem| problem.span.offset());
        LabFileError::Invalid {
            source_code: NamedSource::new(file, text),
            problems,
        }
    }

    /// The problems found, in the order of the file (none for an unreadable file).
    pub fn problems(&self) -> &[Problem] {
        match self {
            LabFileError::Unreadable { .. } => &[],
            LabFileError::Invalid { problems, .. } => problems,
        }
    }

    /// One `file:line:col: message` line per problem (1-based, column in
    /// characters), for output without graphics. An unreadable file gives
    /// `file: message: cause`.
    pub fn located_messages(&self) -> Vec<String> {
        match self {
            LabFileError::Unreadable { path, source } => {
                vec![format!("{}: {self}: {source}", path.display())]
            }
            LabFileError::Invalid {
                source_code,
                problems,
            } => problems
                .iter()
                .map(|problem| {
                    let at = TextPosition::of(source_code.inner(), problem.span.offset());
                    format!(
                        "{}:{}:{}: {}",
                        source_code.name(),
                        at.line,
                        at.column,
                        problem.message
                    )
                })
                .collect(),
        }
    }
}

/// One thing wrong with a lab file, at one place in it.
#[derive(Debug, Clone, Error, Diagnostic)]
#[error("{message}")]
pub struct Problem {
    message: String,
    #[label("{label}")]
    span: SourceSpan,
    label: String,
    #[help]
    help: Option<String>,
}

impl Problem {
    /// `message` says what is wrong; `label` is the short note at `span`.
    pub(super) fn new(
        span: Range<usize>,
        message: impl Into<String>,
        label: impl Into<String>,
    ) -> Self {
        Problem {
            message: message.into(),
            span: span.into(),
            label: label.into(),
            help: None,
        }
    }

    pub(super) fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub(super) fn with_optional_help(mut self, help: Option<String>) -> Self {
        self.help = help;
        self
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// Byte range in the lab file's text.
    pub fn span(&self) -> Range<usize> {
        self.span.offset()..self.span.offset() + self.span.len()
    }

    pub fn help(&self) -> Option<&str> {
        self.help.as_deref()
    }
}

/// A 1-based line and column; the column counts characters, not bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextPosition {
    pub line: usize,
    pub column: usize,
}

impl TextPosition {
    /// The position of byte `offset` in `text`. An offset past the end, or
    /// inside a character, is taken as the nearest character start before it.
    pub fn of(text: &str, offset: usize) -> Self {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
        TextPosition {
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("", 0, 1, 1)]
    #[case("abc", 2, 1, 3)]
    #[case("abc\ndef", 4, 2, 1)]
    #[case("abc\ndef", 6, 2, 3)]
    #[case("abc\n", 4, 2, 1)]
    #[case("≥ x", 4, 1, 3)] // `≥` is three bytes, one character
    #[case("≥ x", 1, 1, 1)] // inside `≥`: its start
    #[case("a\r\nb", 3, 2, 1)]
    #[case("ab", 99, 1, 3)]
    fn maps_offsets_to_line_and_character_column(
        #[case] text: &str,
        #[case] offset: usize,
        #[case] line: usize,
        #[case] column: usize,
    ) {
        assert_eq!(
            TextPosition::of(text, offset),
            TextPosition { line, column }
        );
    }

    #[test]
    fn located_messages_give_file_line_column() {
        let error = LabFileError::invalid(
            "lab.toml".into(),
            "[lab]\nid = \"Bad\"\n".into(),
            vec![
                Problem::new(11..16, "second", "here"),
                Problem::new(0..5, "first", "here"),
            ],
        );
        assert_eq!(
            error.located_messages(),
            ["lab.toml:1:1: first", "lab.toml:2:6: second"]
        );
        assert_eq!(error.to_string(), "lab file lab.toml has 2 problems");
    }
}

//! The lab file format: TOML parsed in two phases, raw (serde, with spans)
//! then validated into [`model`]. Pure: no I/O beyond reading the file.
//!
//! The format is described in `docs/lab-format.md`.

mod error;
pub mod find;
pub mod model;
pub mod qemu_line;
mod raw;
mod validate;

use std::path::Path;

pub use error::{LabFileError, Problem, TextPosition};
use model::Lab;

/// Parses and validates a lab file's text; `path` names it in messages and
/// locations. Every problem in the file is reported, not just the first.
pub fn parse(path: &Path, text: &str) -> Result<Lab, LabFileError> {
    let invalid =
        |problems| LabFileError::invalid(path.display().to_string(), text.to_owned(), problems);
    let raw: raw::RawLab =
        toml::from_str(text).map_err(|error| invalid(vec![toml_problem(&error)]))?;
    validate::validate(path, text, &raw).map_err(invalid)
}

/// Reads and parses a lab file.
pub fn load(path: &Path) -> Result<Lab, LabFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| LabFileError::Unreadable {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text)
}

/// A TOML syntax error or a key or type serde did not accept (phase one
/// stops at the first of these).
fn toml_problem(error: &toml::de::Error) -> Problem {
    let message = error.message().trim().replace('\n', ": ");
    Problem::new(error.span().unwrap_or(0..0), &message, "here")
        .with_optional_help(unknown_key_suggestion(&message))
}

/// For serde's "unknown field `nmae`, expected one of `name`, `on`, …", a
/// did-you-mean of the expected key nearest to the unknown one.
fn unknown_key_suggestion(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (unknown, expected) = rest.split_once('`')?;
    let keys: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    validate::did_you_mean(unknown, keys)
}

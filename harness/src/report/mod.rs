//! The report: its model, the canonical (redacted) form that snapshots
//! hold, and the renderers. Built only from the runner's events.

mod builder;
mod canonical;
mod failure;
mod html;
pub(crate) mod junit;
pub(crate) mod markdown;
mod merge;
mod model;
mod terminal;

pub use builder::ReportBuilder;
pub use canonical::{CanonicalLab, CanonicalStep};
pub use failure::{describe_failure, step_facts, Fact, FactLabel, FailureDescription};
pub use html::{html, transcripts_in};
pub use junit::junit;
pub use markdown::markdown;
pub use merge::{merge, MergeError, Merged};
pub use model::*;

pub use terminal::TerminalReporter;

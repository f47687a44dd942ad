//! The report: its model, the canonical (redacted) form that snapshots
//! hold, and the renderers. Built only from the runner's events.

mod builder;
mod canonical;
mod html;
pub(crate) mod junit;
pub(crate) mod markdown;
mod merge;
mod model;
mod terminal;

pub use builder::ReportBuilder;
pub use canonical::{CanonicalLab, CanonicalStep};
pub use html::{html, transcripts_in};
pub use junit::junit;
pub use markdown::markdown;
pub use merge::{merge, MergeError, Merged};
pub use model::*;
pub use terminal::TerminalReporter;

/// Output kept in a report: the first and last lines of a long output, with
/// a marker saying how much was cut, so reports stay readable and bounded.
pub fn bounded_output(output: &str) -> String {
    const HEAD: usize = 30;
    const TAIL: usize = 10;
    let lines: Vec<&str> = output.trim_end().lines().collect();
    if lines.len() <= HEAD + TAIL {
        return lines.join("\n");
    }
    let cut = lines.len() - HEAD - TAIL;
    let mut kept = lines[..HEAD].to_vec();
    let marker = format!("[… {cut} lines cut …]");
    kept.push(&marker);
    kept.extend_from_slice(&lines[lines.len() - TAIL..]);
    kept.join("\n")
}

#[cfg(test)]
mod tests {
    use super::bounded_output;

    #[test]
    fn short_output_is_kept_whole() {
        assert_eq!(bounded_output("a\nb\n"), "a\nb");
    }

    #[test]
    fn long_output_keeps_head_and_tail() {
        let text: String = (1..=100).map(|i| format!("{i}\n")).collect();
        let kept = bounded_output(&text);
        assert!(kept.starts_with("1\n2\n"));
        assert!(kept.contains("[… 60 lines cut …]"));
        assert!(kept.ends_with("99\n100"));
        assert_eq!(kept.lines().count(), 41);
    }
}

//! The console's last lines as a person reads them: labcheck's frame markers
//! (`LCB<nonce>`, `LCE<nonce>:<status>`, `LCREADY<nonce>`) replaced by what
//! they stand for. Each framed command shows as the command typed (`# ip a`),
//! its output after it, and its exit status when it is not 0. The shell's
//! echo is off, so without this a tail shows markers and no commands.
//!
//! Only failure messages and reports get this form; matching runs on the
//! view and the transcript keeps every raw byte.

use std::collections::VecDeque;
use std::sync::LazyLock;

use regex::Regex;

/// How many typed commands are remembered: far more than a tail shows.
const REMEMBERED: usize = 64;

/// The commands typed lately, by the nonce of their frame.
#[derive(Debug, Default)]
pub(crate) struct TypedCommands(VecDeque<(String, String)>);

impl TypedCommands {
    pub(crate) fn record(&mut self, nonce: &str, command: &str) {
        if self.0.len() == REMEMBERED {
            self.0.pop_front();
        }
        self.0.push_back((nonce.to_owned(), command.to_owned()));
    }

    fn command(&self, nonce: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(known, _)| known == nonce)
            .map(|(_, command)| command.as_str())
    }
}

/// Any of labcheck's markers, wherever it stands in a line (output without
/// a final newline runs into the end marker).
static MARKER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"LC(?:B([A-Za-z0-9]{8})|E([A-Za-z0-9]{8}):(-?\d+)|READY([A-Za-z0-9]{8})?)")
        .expect("the marker pattern is valid")
});

/// `lines` of the view with every marker replaced by what it stands for.
pub(crate) fn readable(lines: &[String], typed: &TypedCommands) -> Vec<String> {
    let mut out = Vec::new();
    for line in lines {
        let mut text = String::new();
        let mut last = 0;
        let mut had_marker = false;
        for found in MARKER.captures_iter(line) {
            let whole = found.get(0).expect("a match has its text");
            text.push_str(&line[last..whole.start()]);
            last = whole.end();
            had_marker = true;
            if let Some(nonce) = found.get(1) {
                flush(&mut text, &mut out);
                out.extend(typed_lines(typed.command(nonce.as_str())));
            } else if let Some(status) = found.get(3) {
                flush(&mut text, &mut out);
                if status.as_str() != "0" {
                    out.push(format!("[exit status {}]", status.as_str()));
                }
            }
        }
        text.push_str(&line[last..]);
        if !had_marker || !text.is_empty() {
            out.push(text);
        }
    }
    out
}

fn flush(text: &mut String, out: &mut Vec<String>) {
    if !text.is_empty() {
        out.push(std::mem::take(text));
    }
}

/// A command as a shell shows it typed: `# ` before its first line, `> `
/// before each continuation line.
fn typed_lines(command: Option<&str>) -> Vec<String> {
    let Some(command) = command else {
        return vec!["# (a command typed by labcheck)".to_owned()];
    };
    command
        .lines()
        .enumerate()
        .map(|(index, line)| match index {
            0 => format!("# {line}"),
            _ => format!("> {line}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn typed() -> TypedCommands {
        let mut typed = TypedCommands::default();
        typed.record("zmLefp8h", "ip a");
        typed.record("Q1w2e3r4", "false");
        typed.record("Abcdefgh", "cat <<EOF\nx\nEOF");
        typed
    }

    #[rstest]
    #[case::a_command_and_its_output(
        &["LCBzmLefp8h", "1: lo: <LOOPBACK,UP>", "LCEzmLefp8h:0"],
        &["# ip a", "1: lo: <LOOPBACK,UP>"]
    )]
    #[case::a_failing_command_shows_its_status(
        &["LCBQ1w2e3r4", "LCEQ1w2e3r4:1"],
        &["# false", "[exit status 1]"]
    )]
    #[case::output_without_a_final_newline(
        &["LCBzmLefp8h", "partialLCEzmLefp8h:0"],
        &["# ip a", "partial"]
    )]
    #[case::continuation_lines(
        &["LCBAbcdefgh", "x", "LCEAbcdefgh:0"],
        &["# cat <<EOF", "> x", "> EOF", "x"]
    )]
    #[case::the_ready_marker_goes(&["LCREADYzmLefp8h", "LCREADY", "login:"], &["login:"])]
    #[case::an_unknown_frame(&["LCBzzzzzzzz"], &["# (a command typed by labcheck)"])]
    #[case::guest_lines_stay_as_they_are(&["", "SeaBIOS"], &["", "SeaBIOS"])]
    fn markers_become_what_they_stand_for(#[case] lines: &[&str], #[case] expected: &[&str]) {
        let lines: Vec<String> = lines.iter().map(|line| line.to_string()).collect();
        assert_eq!(readable(&lines, &typed()), expected);
    }

    #[test]
    fn only_the_latest_commands_are_remembered() {
        let mut typed = TypedCommands::default();
        for n in 0..=REMEMBERED {
            typed.record(&format!("{n:08}"), &format!("echo {n}"));
        }
        assert_eq!(typed.command("00000000"), None);
        assert_eq!(typed.command(&format!("{REMEMBERED:08}")), Some("echo 64"));
    }
}

//! Nonce framing: the text typed into the guest shell for one command, and
//! the parsing of the framed reply out of the console view.
//!
//! Every frame carries a fresh random nonce, so nothing in the guest (an older
//! reply still in the view, a command's own output) can end it early. The
//! typed text prints each marker with `printf 'LC%s%s…' BEGIN <nonce>`: the
//! marker `LCBEGIN<nonce>` is assembled by the shell and never appears in the
//! text typed, so a terminal echoing the typed line cannot fake a reply.

use rand::Rng;

/// The markers of one command (or of the shell setup) and the parsing of its
/// reply.
#[derive(Debug, Clone)]
pub(crate) struct Frame {
    nonce: String,
}

/// A complete framed reply found in the view.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Reply<'a> {
    /// What the command printed between the markers.
    pub(crate) output: &'a str,
    /// The command's exit status.
    pub(crate) exit: i32,
    /// Byte offset just past the end marker in the searched text.
    pub(crate) end: usize,
}

/// Prefix of every marker; short, so framing adds little to each round trip.
const PREFIX: &str = "LC";

impl Frame {
    /// A frame with a fresh nonce that nothing in the guest can predict.
    pub(crate) fn new() -> Self {
        let nonce: u64 = rand::thread_rng().gen();
        Self::with_nonce(&format!("{nonce:016x}"))
    }

    fn with_nonce(nonce: &str) -> Self {
        Self {
            nonce: nonce.to_owned(),
        }
    }

    /// The text to type for `command`: begin marker, command and end marker
    /// as ONE compound list, so the shell has read all of it before it runs
    /// anything and a command reading stdin cannot swallow the end marker.
    /// The newline before `}` lets the command end with `&` or a `#` comment.
    pub(crate) fn command_text(&self, command: &str) -> String {
        let nonce = &self.nonce;
        format!(
            "printf '{PREFIX}%s%s\\n' BEGIN {nonce}; {{ {command}\n}}; \
             printf '{PREFIX}%s%s:%d\\n' END {nonce} \"$?\"\n"
        )
    }

    /// The line that prepares a freshly booted shell for framed commands and
    /// then prints the ready marker. Safe to run any number of times.
    pub(crate) fn shell_setup_text(&self) -> String {
        // Echo off so typed text never mixes into replies; empty prompts for
        // the same reason; wide columns so the shell never wraps long lines;
        // kernel messages off the console so they cannot land inside a reply.
        // Job control off: with it, a command killed by SIGINT makes the
        // shell interrupt itself and drop the end marker (so no exit status
        // 130), and a background job reading the terminal would be stopped.
        // No quote characters at all: lines typed while the guest is still
        // booting can reach the shell cut short, and a fragment holding one
        // quote would leave the shell waiting for its partner forever (every
        // later line has an even number of them). The backslashes split the
        // marker so the echoed line cannot match it.
        format!(
            "stty -echo 2>/dev/null; PS1=; PS2=; stty columns 4000 2>/dev/null; \
             dmesg -n 1 2>/dev/null; set +m 2>/dev/null; echo {PREFIX}\\READY\\{}\n",
            self.nonce
        )
    }

    /// The marker the setup line prints once the shell has run it.
    pub(crate) fn ready_marker(&self) -> String {
        format!("{PREFIX}READY{}\n", self.nonce)
    }

    /// The first complete reply to this frame's command in `text`, if it has
    /// fully arrived.
    pub(crate) fn find_reply<'a>(&self, text: &'a str) -> Option<Reply<'a>> {
        let begin = format!("{PREFIX}BEGIN{}\n", self.nonce);
        let end = format!("{PREFIX}END{}:", self.nonce);
        let output_start = text.find(&begin)? + begin.len();
        let output_len = text[output_start..].find(&end)?;
        let status_start = output_start + output_len + end.len();
        let status_len = text[status_start..].find('\n')?;
        let exit = text[status_start..status_start + status_len].parse().ok()?;
        Some(Reply {
            output: &text[output_start..output_start + output_len],
            exit,
            end: status_start + status_len + 1,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const NONCE: &str = "0123456789abcdef";

    fn frame() -> Frame {
        Frame::with_nonce(NONCE)
    }

    /// A setup line cut short while the guest boots must not leave the
    /// shell inside an open quote (see `shell_setup_text`).
    #[test]
    fn the_setup_line_has_no_quotes() {
        let text = frame().shell_setup_text();
        assert!(!text.contains(['\'', '"']), "{text}");
        assert!(text.contains("stty -echo"), "{text}");
        assert!(text.contains("PS1=; PS2=;"), "{text}");
        assert!(text.contains("set +m"), "{text}");
        assert!(
            text.ends_with("echo LC\\READY\\0123456789abcdef\n"),
            "{text}"
        );
        assert_eq!(frame().ready_marker(), "LCREADY0123456789abcdef\n");
    }

    #[test]
    fn command_text_is_one_compound_list() {
        assert_eq!(
            frame().command_text("nc -l -p 12345 &"),
            "printf 'LC%s%s\\n' BEGIN 0123456789abcdef; { nc -l -p 12345 &\n}; \
             printf 'LC%s%s:%d\\n' END 0123456789abcdef \"$?\"\n"
        );
    }

    #[rstest]
    #[case::command("echo hi")]
    #[case::setup("")]
    fn typed_text_never_contains_a_marker(#[case] command: &str) {
        let typed = frame().command_text(command) + &frame().shell_setup_text();
        for word in ["BEGIN", "END", "READY"] {
            for marker in [format!("LC{word}"), format!("{word}{NONCE}")] {
                assert!(!typed.contains(&marker), "{marker:?} in {typed:?}");
            }
        }
    }

    #[rstest]
    #[case::simple("LCBEGIN0123456789abcdef\nhi\nLCEND0123456789abcdef:0\n", "hi\n", 0)]
    #[case::empty_output("LCBEGIN0123456789abcdef\nLCEND0123456789abcdef:127\n", "", 127)]
    #[case::no_final_newline("LCBEGIN0123456789abcdef\n-nLCEND0123456789abcdef:1\n", "-n", 1)]
    #[case::multi_line(
        "LCBEGIN0123456789abcdef\na\n\nb\nLCEND0123456789abcdef:42\n",
        "a\n\nb\n",
        42
    )]
    #[case::noise_before(
        "old stuff\nprintf 'LC%s%s\\n' BEGIN 0123456789abcdef\nLCBEGIN0123456789abcdef\nx\nLCEND0123456789abcdef:0\n",
        "x\n",
        0
    )]
    #[case::older_nonce_in_output(
        "LCBEGIN0123456789abcdef\nLCBEGINffffffffffffffff\nLCENDffffffffffffffff:3\nLCEND0123456789abcdef:0\n",
        "LCBEGINffffffffffffffff\nLCENDffffffffffffffff:3\n",
        0
    )]
    fn finds_complete_reply(#[case] text: &str, #[case] output: &str, #[case] exit: i32) {
        let reply = frame().find_reply(text).expect("a complete reply");
        assert_eq!((reply.output, reply.exit), (output, exit));
        assert_eq!(&text[reply.end..], "");
    }

    #[test]
    fn reply_end_is_just_past_the_end_marker() {
        let text = "LCBEGIN0123456789abcdef\nx\nLCEND0123456789abcdef:0\nnext";
        let reply = frame().find_reply(text).expect("a complete reply");
        assert_eq!(&text[reply.end..], "next");
    }

    #[test]
    fn reply_split_across_chunks_is_found_only_once_complete() {
        let reply = "LCBEGIN0123456789abcdef\nhello\nLCEND0123456789abcdef:130\n";
        for cut in 0..reply.len() {
            let mut view = super::super::view::View::default();
            let (head, rest) = reply.as_bytes().split_at(cut);
            view.push(head);
            assert_eq!(frame().find_reply(view.after(0)), None, "complete at {cut}");
            view.push(rest);
            let found = frame().find_reply(view.after(0));
            assert_eq!(found.map(|r| (r.output, r.exit)), Some(("hello\n", 130)));
        }
    }

    #[rstest]
    #[case::other_nonce_only("LCBEGINffffffffffffffff\nx\nLCENDffffffffffffffff:0\n")]
    #[case::echoed_command("printf 'LC%s%s\\n' BEGIN 0123456789abcdef; { echo\n}\n")]
    #[case::status_not_a_number("LCBEGIN0123456789abcdef\nLCEND0123456789abcdef:x\n")]
    fn ignores_what_is_not_this_frames_reply(#[case] text: &str) {
        assert_eq!(frame().find_reply(text), None);
    }

    #[test]
    fn nonces_differ_between_frames() {
        assert_ne!(Frame::new().nonce, Frame::new().nonce);
    }
}

//! Nonce framing: the text typed into the guest shell for one command, and
//! the parsing of the framed reply out of the console view.
//!
//! Every frame carries a fresh random nonce, so nothing in the guest (an older
//! reply still in the view, a command's own output) can end it early. The
//! typed text prints each marker with `echo LC\B<nonce>`: the shell removes
//! the backslash, so the marker `LCB<nonce>` never appears in the text typed
//! and a terminal echoing the typed line cannot fake a reply.
//!
//! Frames are short because every byte counts: under TCG each byte typed or
//! printed crosses an emulated 16550 UART and the guest's tty layer, about
//! 11 µs apiece (BENCHMARKS.md). This framing types 44 bytes and prints 26
//! around a command, against 97 and 48 for the `printf` framing before it,
//! which cut the median round trip by about a quarter.

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

/// Characters of a nonce: 8 alphanumerics, about 47.6 bits, which no guest
/// can guess, in the fewest bytes that any shell takes unquoted.
const NONCE_LEN: usize = 8;

impl Frame {
    /// A frame with a fresh nonce that nothing in the guest can predict.
    pub(crate) fn new() -> Self {
        let nonce: String = rand::thread_rng()
            .sample_iter(rand::distributions::Alphanumeric)
            .take(NONCE_LEN)
            .map(char::from)
            .collect();
        Self::with_nonce(&nonce)
    }

    /// The nonce that marks this frame's reply.
    pub(crate) fn nonce(&self) -> &str {
        &self.nonce
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
    /// Nothing in the frame needs quotes: the nonce is alphanumeric and `$?`
    /// only digits.
    pub(crate) fn command_text(&self, command: &str) -> String {
        let nonce = &self.nonce;
        format!("echo {PREFIX}\\B{nonce};{{ {command}\n}};echo {PREFIX}\\E{nonce}:$?\n")
    }

    /// The line that prepares a freshly booted shell for framed commands and
    /// then prints the ready marker. Safe to run any number of times.
    pub(crate) fn shell_setup_text(&self) -> String {
        // Echo off so typed text never mixes into replies; empty prompts for
        // the same reason; wide columns so the shell never wraps long lines.
        // Job control off: with it, a command killed by SIGINT makes the
        // shell interrupt itself and drop the end marker (so no exit status
        // 130), and a background job reading the terminal would be stopped.
        // (Kernel messages are kept off the console by the guest's own boot
        // script, so a shell on the host is left as it was.)
        //
        // The line is typed every half second while the guest boots, so the
        // shell finds a queue of copies when it starts: the guard makes every
        // copy after the first cost no process (`[` is a builtin; `stty` is
        // the line's only command that forks). The first copy often reaches
        // the shell cut short at its start, so the marker is printed from
        // `$LCSET`, which only the setup sets: a fragment that skipped the
        // setup prints `LCREADY` alone. No quote characters at all: a
        // fragment holding one would leave the shell waiting for its partner
        // forever (every later line has an even number of them); a fragment
        // holding `}` without its `{` is a syntax error, and the next copy
        // runs whole.
        format!(
            "[ x$LCSET = x{nonce} ] 2>/dev/null || {{ stty -echo columns 4000 2>/dev/null; \
             PS1=; PS2=; set +m 2>/dev/null; LCSET={nonce}; }}; echo {PREFIX}READY$LCSET\n",
            nonce = self.nonce
        )
    }

    /// The marker the setup line prints once the shell has run it.
    pub(crate) fn ready_marker(&self) -> String {
        format!("{PREFIX}READY{}\n", self.nonce)
    }

    /// The first complete reply to this frame's command in `text`, if it has
    /// fully arrived.
    pub(crate) fn find_reply<'a>(&self, text: &'a str) -> Option<Reply<'a>> {
        let begin = format!("{PREFIX}B{}\n", self.nonce);
        let end = format!("{PREFIX}E{}:", self.nonce);
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

    const NONCE: &str = "0a1B2c3D";

    fn frame() -> Frame {
        Frame::with_nonce(NONCE)
    }

    /// A setup line cut short while the guest boots must not leave the
    /// shell inside an open quote (see `shell_setup_text`).
    #[test]
    fn the_setup_line_has_no_quotes() {
        let text = frame().shell_setup_text();
        assert!(!text.contains(['\'', '"']), "{text}");
        assert!(text.contains("stty -echo columns 4000"), "{text}");
        assert!(text.contains("PS1=; PS2=;"), "{text}");
        assert!(text.contains("set +m"), "{text}");
        assert!(text.starts_with("[ x$LCSET = x0a1B2c3D ] "), "{text}");
        assert!(
            text.ends_with("LCSET=0a1B2c3D; }; echo LCREADY$LCSET\n"),
            "{text}"
        );
        assert_eq!(frame().ready_marker(), "LCREADY0a1B2c3D\n");
    }

    /// Runs `script` in `sh` with a `stty` that logs its calls; returns what
    /// the script printed and how many times `stty` ran.
    fn run_with_logging_stty(script: &str) -> (String, usize) {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("stty.log");
        let stty = dir.path().join("stty");
        std::fs::write(
            &stty,
            format!("#!/bin/sh\necho \"$*\" >> {}\n", log.display()),
        )
        .expect("write stty");
        std::fs::set_permissions(&stty, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod stty");
        let path = format!(
            "{}:{}",
            dir.path().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = std::process::Command::new("sh")
            .args(["-c", script])
            .env("PATH", path)
            .env_remove("LCSET")
            .output()
            .expect("run sh");
        let calls = std::fs::read_to_string(&log).map_or(0, |text| text.lines().count());
        (String::from_utf8_lossy(&out.stdout).into_owned(), calls)
    }

    /// Copies of the setup line queue up while a guest boots: only the first
    /// one that runs whole forks `stty`, and each one prints the marker.
    #[test]
    fn setup_line_copies_after_the_first_fork_nothing() {
        let line = frame().shell_setup_text();
        let (printed, stty_calls) = run_with_logging_stty(&line.repeat(3));
        assert_eq!(printed, frame().ready_marker().repeat(3));
        assert_eq!(stty_calls, 1);
    }

    /// The first copy often reaches the shell with its start cut off: no cut
    /// may print the marker without having run the setup.
    #[test]
    fn a_setup_line_cut_short_prints_the_marker_only_after_the_setup() {
        let line = frame().shell_setup_text();
        for cut in 0..line.len() {
            let (printed, stty_calls) = run_with_logging_stty(&line[cut..]);
            let marked = printed.contains(&frame().ready_marker());
            assert_eq!(
                marked,
                stty_calls == 1,
                "cut at {cut}: {:?} printed {printed:?}",
                &line[cut..]
            );
        }
    }

    #[test]
    fn command_text_is_one_compound_list() {
        assert_eq!(
            frame().command_text("nc -l -p 12345 &"),
            "echo LC\\B0a1B2c3D;{ nc -l -p 12345 &\n};echo LC\\E0a1B2c3D:$?\n"
        );
    }

    #[rstest]
    #[case::command("echo hi")]
    #[case::setup("")]
    fn typed_text_never_contains_a_marker(#[case] command: &str) {
        let typed = frame().command_text(command) + &frame().shell_setup_text();
        for word in ["B", "E", "READY"] {
            let marker = format!("LC{word}{NONCE}");
            assert!(!typed.contains(&marker), "{marker:?} in {typed:?}");
        }
    }

    #[rstest]
    #[case::simple("LCB0a1B2c3D\nhi\nLCE0a1B2c3D:0\n", "hi\n", 0)]
    #[case::empty_output("LCB0a1B2c3D\nLCE0a1B2c3D:127\n", "", 127)]
    #[case::no_final_newline("LCB0a1B2c3D\n-nLCE0a1B2c3D:1\n", "-n", 1)]
    #[case::multi_line("LCB0a1B2c3D\na\n\nb\nLCE0a1B2c3D:42\n", "a\n\nb\n", 42)]
    #[case::noise_before(
        "old stuff\necho LC\\B0a1B2c3D\nLCB0a1B2c3D\nx\nLCE0a1B2c3D:0\n",
        "x\n",
        0
    )]
    #[case::older_nonce_in_output(
        "LCB0a1B2c3D\nLCBzzzzzzzz\nLCEzzzzzzzz:3\nLCE0a1B2c3D:0\n",
        "LCBzzzzzzzz\nLCEzzzzzzzz:3\n",
        0
    )]
    fn finds_complete_reply(#[case] text: &str, #[case] output: &str, #[case] exit: i32) {
        let reply = frame().find_reply(text).expect("a complete reply");
        assert_eq!((reply.output, reply.exit), (output, exit));
        assert_eq!(&text[reply.end..], "");
    }

    #[test]
    fn reply_end_is_just_past_the_end_marker() {
        let text = "LCB0a1B2c3D\nx\nLCE0a1B2c3D:0\nnext";
        let reply = frame().find_reply(text).expect("a complete reply");
        assert_eq!(&text[reply.end..], "next");
    }

    #[test]
    fn reply_split_across_chunks_is_found_only_once_complete() {
        let reply = "LCB0a1B2c3D\nhello\nLCE0a1B2c3D:130\n";
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
    #[case::other_nonce_only("LCBzzzzzzzz\nx\nLCEzzzzzzzz:0\n")]
    #[case::echoed_command("echo LC\\B0a1B2c3D;{ echo\n};echo LC\\E0a1B2c3D:$?\n")]
    #[case::status_not_a_number("LCB0a1B2c3D\nLCE0a1B2c3D:x\n")]
    fn ignores_what_is_not_this_frames_reply(#[case] text: &str) {
        assert_eq!(frame().find_reply(text), None);
    }

    #[test]
    fn nonces_are_fresh_and_need_no_quoting() {
        let (one, two) = (Frame::new().nonce, Frame::new().nonce);
        assert_ne!(one, two);
        for nonce in [one, two] {
            assert_eq!(nonce.len(), NONCE_LEN, "{nonce}");
            assert!(nonce.chars().all(|c| c.is_ascii_alphanumeric()), "{nonce}");
        }
    }
}

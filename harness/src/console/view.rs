//! The matching view of a console: its bytes as plain `\n`-separated text.
//!
//! Firmware and shells decorate serial output with terminal escapes (SeaBIOS
//! prints `ESC[2J`, `ESC[6n`, `ESC[?7l` and `\r\r\n`). Patterns are written
//! against what a person would read, so the view keeps printable text, `\n`
//! and `\t`, and drops every escape sequence and other control byte. The raw
//! bytes are kept apart, in the transcript.

/// Plain text decoded from a console's byte stream, chunk by chunk.
///
/// Escape sequences and UTF-8 characters may be split across chunks; the
/// parser carries its state from one chunk to the next.
#[derive(Default)]
pub(crate) struct View {
    parser: vte::Parser,
    text: PlainText,
}

impl std::fmt::Debug for View {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("View").field("text", &self.text.0).finish()
    }
}

impl View {
    /// Appends a chunk of raw console bytes.
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.parser.advance(&mut self.text, byte);
        }
    }

    /// The text from byte offset `cursor` on (empty past the end).
    pub(crate) fn after(&self, cursor: usize) -> &str {
        self.text.0.get(cursor..).unwrap_or_default()
    }

    /// The last `n` lines, oldest first; a final line break does not count
    /// as an empty line after it.
    pub(crate) fn tail(&self, n: usize) -> Vec<String> {
        let mut lines: Vec<String> = self
            .text
            .0
            .lines()
            .rev()
            .take(n)
            .map(String::from)
            .collect();
        lines.reverse();
        lines
    }
}

/// The `vte` performer that keeps only what a reader sees as text.
#[derive(Default)]
struct PlainText(String);

impl vte::Perform for PlainText {
    fn print(&mut self, c: char) {
        self.0.push(c);
    }

    fn execute(&mut self, byte: u8) {
        // `\r` is dropped so `\r\n` and SeaBIOS's `\r\r\n` both end a line
        // with a plain `\n`; bells, backspaces and the like carry no text.
        if matches!(byte, b'\n' | b'\t') {
            self.0.push(char::from(byte));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn view_of(chunks: &[&[u8]]) -> View {
        let mut view = View::default();
        for chunk in chunks {
            view.push(chunk);
        }
        view
    }

    #[rstest]
    #[case::plain(b"hello\n", "hello\n")]
    #[case::crlf(b"a\r\nb\r\n", "a\nb\n")]
    #[case::seabios_line_end(b"SeaBIOS\r\r\n", "SeaBIOS\n")]
    #[case::clear_screen(b"\x1b[2Jboot", "boot")]
    #[case::cursor_position_query(b"x\x1b[6ny", "xy")]
    #[case::autowrap_off(b"\x1b[?7lBooting from ROM..", "Booting from ROM..")]
    #[case::colour(b"\x1b[1;31mred\x1b[0m text", "red text")]
    #[case::osc_title_bel(b"\x1b]0;title\x07prompt", "prompt")]
    #[case::osc_title_st(b"\x1b]2;title\x1b\\prompt", "prompt")]
    #[case::function_key_keeps_following_text(b"\x1b[2~after", "after")]
    #[case::charset_designation(b"\x1b(Babc", "abc")]
    #[case::tab_kept_bell_dropped(b"a\tb\x07c", "a\tbc")]
    #[case::utf8(b"caf\xc3\xa9\n", "caf\u{e9}\n")]
    #[case::invalid_utf8_dropped(b"a\xffb", "ab")]
    fn strips_escapes_and_carriage_returns(#[case] raw: &[u8], #[case] expected: &str) {
        assert_eq!(view_of(&[raw]).after(0), expected);
    }

    #[rstest]
    #[case::escape_split(&[&b"a\x1b["[..], b"2Jb"], "ab")]
    #[case::utf8_split(&[&b"caf\xc3"[..], b"\xa9"], "caf\u{e9}")]
    #[case::crlf_split(&[&b"line\r"[..], b"\r", b"\nnext"], "line\nnext")]
    fn keeps_state_across_chunks(#[case] chunks: &[&[u8]], #[case] expected: &str) {
        assert_eq!(view_of(chunks).after(0), expected);
    }

    #[rstest]
    #[case::fewer_lines_than_asked(b"a\nb\n", 5, &["a", "b"])]
    #[case::last_two(b"a\nb\nc\n", 2, &["b", "c"])]
    #[case::unfinished_last_line(b"a\nb\nprompt", 2, &["b", "prompt"])]
    #[case::blank_lines_kept(b"a\n\nb\n", 3, &["a", "", "b"])]
    #[case::empty(b"", 3, &[])]
    fn tail_returns_last_lines(#[case] raw: &[u8], #[case] n: usize, #[case] expected: &[&str]) {
        assert_eq!(view_of(&[raw]).tail(n), expected);
    }

    #[rstest]
    #[case(0, "abc")]
    #[case(1, "bc")]
    #[case(3, "")]
    #[case(99, "")]
    fn after_cursor(#[case] cursor: usize, #[case] expected: &str) {
        assert_eq!(view_of(&[b"abc"]).after(cursor), expected);
    }
}

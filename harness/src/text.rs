//! Untrusted text rendered into HTML, XML, Markdown and CSV, under one
//! control-character policy.
//!
//! Much of what labcheck renders is not its own: a console prints anything
//! (colour codes, a bell, a NUL, a lone carriage return), and a student
//! writes file names and file contents. Such text must show as written: no
//! escape sequence may act on the terminal of whoever prints the file, no
//! markup may be read as markup, nothing may break the syntax around it. So
//! every renderer passes it through here, and a control character looks the
//! same whatever the output. A leaf module: it uses nothing else of the crate.
//!
//! The policy ([`show_controls`]):
//! - a line feed and a tab stay;
//! - a carriage return before a line feed is dropped (serial consoles end
//!   their lines so);
//! - any other C0 control and DEL show as their Unicode control picture: ESC
//!   as `␛`, NUL as `␀`, a lone carriage return as `␍`, DEL as `␡`;
//! - a C1 control (U+0080 to U+009F), which has no picture, and U+FFFE and
//!   U+FFFF, which no XML document may hold, show as their code point,
//!   `\u{9b}`.
//!
//! Then one function per syntax escapes what is special there.

use std::fmt::Write as _;

/// `text` under the policy of this module: control characters shown, not
/// sent. Plain text (a Gradescope output, a JSON string) needs no more.
pub fn show_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' | '\t' => out.push(c),
            c if c < ' ' => out.push(control_picture(c)),
            '\u{7f}' => out.push('␡'),
            '\u{80}'..='\u{9f}' | '\u{fffe}' | '\u{ffff}' => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

/// U+2400 + c: the Control Pictures block mirrors C0 in order.
fn control_picture(c: char) -> char {
    char::from_u32(0x2400 + u32::from(c)).unwrap_or('\u{fffd}')
}

/// HTML text or attribute value (quoted with `"` or `'`).
pub fn html(text: &str) -> String {
    let shown = show_controls(text);
    let mut out = String::with_capacity(shown.len());
    for c in shown.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// XML element text, for quick-junit to write (it writes the entities).
/// quick-junit deletes every control character but the line feed, tab
/// included, so tabs are expanded to spaces, to the next multiple of 8
/// columns (counted in characters), and a console's columns stay aligned.
pub fn xml_text(text: &str) -> String {
    let shown = show_controls(text);
    let mut out = String::with_capacity(shown.len());
    let mut column = 0;
    for c in shown.chars() {
        match c {
            '\t' => {
                let spaces = TAB_STOP - column % TAB_STOP;
                out.extend(std::iter::repeat_n(' ', spaces));
                column += spaces;
            }
            '\n' => {
                out.push(c);
                column = 0;
            }
            c => {
                out.push(c);
                column += 1;
            }
        }
    }
    out
}

const TAB_STOP: usize = 8;

/// An XML attribute value, for quick-junit to write (it writes the
/// entities), on one line: an XML parser reads a line break or a tab in an
/// attribute as a space anyway, and quick-junit would write one raw (or
/// delete a tab), so the file says what its readers see.
pub fn xml_attr(text: &str) -> String {
    show_controls(text).replace(['\n', '\t'], " ")
}

/// Text inside a line of Markdown, shown as written: on one line (so it
/// cannot start a heading, list or block), with every character that could
/// open emphasis, a link, HTML, a table cell or math backslash-escaped
/// (CommonMark lets any ASCII punctuation be escaped). An `_` inside a word
/// is left alone: it cannot start emphasis there, and an escape would break
/// a URL GitHub links (`x86_64`).
pub fn markdown_inline(text: &str) -> String {
    let chars: Vec<char> = show_controls(&one_line(text)).chars().collect();
    let mut out = String::with_capacity(text.len());
    for (i, &c) in chars.iter().enumerate() {
        let in_word = |at: Option<&char>| at.is_some_and(|c| c.is_alphanumeric());
        let intraword =
            in_word(i.checked_sub(1).and_then(|j| chars.get(j))) && in_word(chars.get(i + 1));
        match c {
            '_' if intraword => out.push(c),
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '#' | '~' | '!' | '&' | '$' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// Text as an inline code span, on one line, whatever backticks it holds.
pub fn markdown_code(text: &str) -> String {
    let shown = show_controls(&one_line(text));
    let ticks = "`".repeat(longest_backtick_run(&shown) + 1);
    // A span that starts or ends with a backtick needs a space inside.
    let pad = if shown.starts_with('`') || shown.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{ticks}{pad}{shown}{pad}{ticks}")
}

/// Text in a fenced block whose fence no run of backticks in it can close.
pub fn markdown_fenced(text: &str) -> String {
    let shown = show_controls(text);
    let fence = "`".repeat(longest_backtick_run(&shown).max(2) + 1);
    format!("{fence}text\n{shown}\n{fence}\n")
}

/// Line breaks as spaces, before the policy sees them (so a CR LF is two
/// spaces, as it always was, and a lone CR no picture).
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

fn longest_backtick_run(text: &str) -> usize {
    text.split(|c| c != '`').map(str::len).max().unwrap_or(0)
}

/// One CSV field. A spreadsheet runs a field that starts with `=`, `+`,
/// `-`, `@` or a tab as a formula, so such a field gets a leading `'`
/// (OWASP's advice on CSV injection; a leading carriage return, on OWASP's
/// list too, is shown as `␍` by the policy and starts nothing); then a field
/// holding a comma, quote or line break is quoted, its quotes doubled
/// (RFC 4180).
pub fn csv_cell(text: &str) -> String {
    let shown = show_controls(text);
    let defused = if shown.starts_with(['=', '+', '-', '@', '\t']) {
        format!("'{shown}")
    } else {
        shown
    };
    if defused.contains([',', '"', '\n']) {
        format!("\"{}\"", defused.replace('"', "\"\""))
    } else {
        defused
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case::esc("\u{1b}[0mok", "␛[0mok")]
    #[case::nul_and_bell("\u{0}\u{7}", "␀␇")]
    #[case::del("\u{7f}", "␡")]
    #[case::c1_csi("csi \u{9b}", "csi \\u{9b}")]
    #[case::xml_noncharacters("\u{fffe}\u{ffff}", "\\u{fffe}\\u{ffff}")]
    #[case::crlf("line\r\nnext", "line\nnext")]
    #[case::lone_cr("lone\rreturn\r", "lone␍return␍")]
    #[case::tab_and_newline("tab\tkept\n", "tab\tkept\n")]
    #[case::markup_untouched("<b> & `x`", "<b> & `x`")]
    fn control_characters_are_shown_not_sent(#[case] text: &str, #[case] shown: &str) {
        assert_eq!(show_controls(text), shown);
    }

    #[rstest]
    #[case::markup("a < b && c > d", "a &lt; b &amp;&amp; c &gt; d")]
    #[case::quotes("say \"hi\" 'x'", "say &quot;hi&quot; &#39;x&#39;")]
    #[case::crlf_and_tab("line\r\nnext\ttab", "line\nnext\ttab")]
    #[case::esc_and_cr("\u{1b}[0mok\r", "␛[0mok␍")]
    #[case::nul_bell_del_c1("\u{0}\u{7}\u{7f}\u{9b}", "␀␇␡\\u{9b}")]
    #[case::script("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;")]
    fn html_text_is_escaped(#[case] text: &str, #[case] escaped: &str) {
        assert_eq!(html(text), escaped);
    }

    #[rstest]
    #[case::markup_left_to_the_writer("a < b & \"c\" ]]>", "a < b & \"c\" ]]>")]
    #[case::esc_nul_c1("\u{1b}[31mred\u{0}\u{9b}", "␛[31mred␀\\u{9b}")]
    #[case::xml_noncharacters("\u{fffe}\u{ffff}", "\\u{fffe}\\u{ffff}")]
    #[case::crlf_and_lone_cr("a\r\nb\rc", "a\nb␍c")]
    #[case::tab_to_the_next_stop("ab\tc", "ab      c")]
    #[case::tab_on_a_stop("12345678\tx", "12345678        x")]
    #[case::tab_stops_restart_on_each_line("abc\nd\te", "abc\nd       e")]
    fn xml_text_is_shown_with_tabs_expanded(#[case] text: &str, #[case] shown: &str) {
        assert_eq!(xml_text(text), shown);
    }

    #[rstest]
    #[case::markup_left_to_the_writer("say \"hi\" & <go>", "say \"hi\" & <go>")]
    #[case::line_breaks_and_tabs("two\nlines\tand a tab", "two lines and a tab")]
    #[case::crlf("one\r\ntwo", "one two")]
    #[case::bell("\u{7}bell", "␇bell")]
    fn xml_attributes_are_shown_on_one_line(#[case] text: &str, #[case] shown: &str) {
        assert_eq!(xml_attr(text), shown);
    }

    #[rstest]
    #[case::plain("VM1: ip a", "VM1: ip a")]
    #[case::markup("2*2 <b> | _x_ $y$", "2\\*2 \\<b\\> \\| \\_x\\_ \\$y\\$")]
    #[case::intraword_underscore("x86_64 and _x", "x86_64 and \\_x")]
    #[case::backticks("a `b`", "a \\`b\\`")]
    #[case::line_breaks("one\ntwo\r", "one two ")]
    #[case::crlf("one\r\ntwo", "one  two")]
    #[case::esc_nul_c1("\u{1b}[31m\u{0}\u{9b}", "␛\\[31m␀\\\\u{9b}")]
    fn markdown_inline_text_shows_as_written(#[case] text: &str, #[case] shown: &str) {
        assert_eq!(markdown_inline(text), shown);
    }

    #[rstest]
    #[case::plain("alice", "`alice`")]
    #[case::backtick_inside("a `b` c", "``a `b` c``")]
    #[case::backtick_first("`x", "`` `x ``")]
    #[case::backtick_last("x`", "`` x` ``")]
    #[case::line_breaks("two\nlines", "`two lines`")]
    #[case::esc_nul_c1("\u{1b}[0m\u{0}\u{9b}", "`␛[0m␀\\u{9b}`")]
    fn markdown_code_spans_hold_any_text(#[case] text: &str, #[case] span: &str) {
        assert_eq!(markdown_code(text), span);
    }

    #[rstest]
    #[case::plain("x", "```text\nx\n```\n")]
    #[case::long_backtick_run("a ```` b", "`````text\na ```` b\n`````\n")]
    #[case::esc_nul_cr("\u{1b}[31mred\u{0}\r\nnext", "```text\n␛[31mred␀\nnext\n```\n")]
    fn markdown_fences_outlast_the_backticks_inside(#[case] text: &str, #[case] block: &str) {
        assert_eq!(markdown_fenced(text), block);
    }

    #[rstest]
    #[case::plain("alice", "alice")]
    #[case::formula("=HYPERLINK(\"http://x\")", "\"'=HYPERLINK(\"\"http://x\"\")\"")]
    #[case::minus("-1+1", "'-1+1")]
    #[case::plus("+1", "'+1")]
    #[case::at("@SUM(A1:A2)", "'@SUM(A1:A2)")]
    #[case::tab_first("\tx", "'\tx")]
    #[case::cr_first("\rx", "␍x")]
    #[case::comma("smith, jo", "\"smith, jo\"")]
    #[case::quotes("say \"hi\"", "\"say \"\"hi\"\"\"")]
    #[case::line_break("two\nlines", "\"two\nlines\"")]
    #[case::crlf("two\r\nlines", "\"two\nlines\"")]
    #[case::esc("\u{1b}[31m", "␛[31m")]
    #[case::formula_inside("a=b-c", "a=b-c")]
    #[case::empty("", "")]
    fn csv_cells_are_quoted_and_defused(#[case] text: &str, #[case] cell: &str) {
        assert_eq!(csv_cell(text), cell);
    }
}

//! Handout-style QEMU command lines: shell words in, a model of options out.
//!
//! The text is split the way a POSIX shell would split it (single and double
//! quotes, backslash escapes, backslash-newline continuations), keeping the
//! byte range of every word so errors and options point back into the lab file.
//! Pure: no I/O.

use std::fmt;
use std::ops::Range;

/// QEMU 7.2 options that take no value (from `qemu-system-x86_64 -help`).
/// Every other option takes exactly one.
const FLAGS_WITHOUT_VALUE: &[&str] = &[
    "-alt-grab",
    "-audio-help",
    "-ctrl-grab",
    "-curses",
    "-daemonize",
    "-enable-kvm",
    "-enable-sync-profile",
    "-full-screen",
    "-h",
    "-help",
    "-mem-prealloc",
    "-no-acpi",
    "-no-fd-bootchk",
    "-no-frame",
    "-no-hpet",
    "-no-quit",
    "-no-reboot",
    "-no-shutdown",
    "-no-user-config",
    "-nodefaults",
    "-nographic",
    "-only-migratable",
    "-portrait",
    "-preconfig",
    "-S",
    "-s",
    "-semihosting",
    "-singlestep",
    "-snapshot",
    "-usb",
    "-version",
    "-win2k-hack",
    "-xen-attach",
    "-xen-domid-restrict",
];

/// Why a command line could not be read. Every variant carries the byte
/// offset in the original text (see [`CmdlineError::offset`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CmdlineError {
    #[error("unterminated {quote} quote opened at byte {offset}")]
    UnterminatedQuote { quote: char, offset: usize },
    #[error("backslash at byte {offset} ends the command line (nothing to escape)")]
    DanglingBackslash { offset: usize },
    #[error("empty command line")]
    Empty,
    #[error("`{program}` is not a QEMU system emulator (expected qemu-system-*)")]
    NotQemu { program: String, offset: usize },
    #[error("option `{flag}` at byte {offset} needs a value but the command line ends")]
    MissingValue { flag: String, offset: usize },
    #[error("expected an option starting with `-` at byte {offset}, found `{word}`")]
    ExpectedFlag { word: String, offset: usize },
}

impl CmdlineError {
    /// Byte offset in the text the command line was parsed from.
    pub fn offset(&self) -> usize {
        match self {
            Self::UnterminatedQuote { offset, .. }
            | Self::DanglingBackslash { offset }
            | Self::NotQemu { offset, .. }
            | Self::MissingValue { offset, .. }
            | Self::ExpectedFlag { offset, .. } => *offset,
            Self::Empty => 0,
        }
    }
}

/// A QEMU invocation: the program and its options in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine {
    pub program: String,
    pub options: Vec<QemuOption>,
}

/// One option as written: `-m 512`, `-nographic`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuOption {
    /// The flag as written, dashes included (`-m`; QEMU also accepts `--m`).
    pub flag: String,
    pub value: Option<String>,
    /// Byte range of the flag and its value in the original text.
    pub span: Range<usize>,
}

impl QemuOption {
    /// The flag with a single leading dash, the way QEMU reads it
    /// (`--nographic` and `-nographic` are the same option).
    pub fn name(&self) -> &str {
        normalize_flag(&self.flag)
    }

    /// The option as argv words, exactly as written.
    pub fn to_argv(&self) -> impl Iterator<Item = String> + '_ {
        std::iter::once(self.flag.clone()).chain(self.value.clone())
    }
}

fn normalize_flag(flag: &str) -> &str {
    flag.strip_prefix('-')
        .filter(|rest| rest.starts_with('-'))
        .unwrap_or(flag)
}

impl CommandLine {
    /// Parses a command line as printed in a handout.
    pub fn parse(text: &str) -> Result<Self, CmdlineError> {
        let mut words = split_words(text)?.into_iter();
        let program = words.next().ok_or(CmdlineError::Empty)?;
        if !is_qemu_system(&program.text) {
            return Err(CmdlineError::NotQemu {
                program: program.text,
                offset: program.span.start,
            });
        }
        let mut options = Vec::new();
        while let Some(word) = words.next() {
            if word.text.len() < 2 || !word.text.starts_with('-') {
                return Err(CmdlineError::ExpectedFlag {
                    word: word.text,
                    offset: word.span.start,
                });
            }
            let option = if FLAGS_WITHOUT_VALUE.contains(&normalize_flag(&word.text)) {
                QemuOption {
                    flag: word.text,
                    value: None,
                    span: word.span,
                }
            } else {
                let value = words.next().ok_or_else(|| CmdlineError::MissingValue {
                    flag: word.text.clone(),
                    offset: word.span.end,
                })?;
                QemuOption {
                    flag: word.text,
                    value: Some(value.text),
                    span: word.span.start..value.span.end,
                }
            };
            options.push(option);
        }
        Ok(Self {
            program: program.text,
            options,
        })
    }

    /// The first option named `flag` (`-m` also finds `--m`).
    pub fn get(&self, flag: &str) -> Option<&QemuOption> {
        self.all(flag).next()
    }

    /// Whether the line has an option named `flag`.
    pub fn has(&self, flag: &str) -> bool {
        self.get(flag).is_some()
    }

    /// Every option named `flag`, in order.
    pub fn all<'a>(&'a self, flag: &str) -> impl Iterator<Item = &'a QemuOption> + 'a {
        let wanted = normalize_flag(flag).to_owned();
        self.options.iter().filter(move |o| o.name() == wanted)
    }

    /// The values of every option named `flag`, in order.
    pub fn values<'a>(&'a self, flag: &str) -> impl Iterator<Item = &'a str> + 'a {
        self.all(flag).filter_map(|o| o.value.as_deref())
    }

    /// The line as argv words, program first, exactly as written.
    pub fn to_argv(&self) -> Vec<String> {
        std::iter::once(self.program.clone())
            .chain(self.options.iter().flat_map(QemuOption::to_argv))
            .collect()
    }
}

fn is_qemu_system(program: &str) -> bool {
    let base = program.rsplit('/').next().unwrap_or(program);
    base.strip_prefix("qemu-system-")
        .is_some_and(|arch| !arch.is_empty())
}

/// A shell word and the bytes of the original text it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Word {
    text: String,
    span: Range<usize>,
}

/// Splits `text` into words as `sh` would, without expansions.
fn split_words(text: &str) -> Result<Vec<Word>, CmdlineError> {
    let mut words = Vec::new();
    let mut chars = text.char_indices().peekable();
    // The word being built: where it started and its text so far.
    let mut current: Option<(usize, String)> = None;
    while let Some((at, c)) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if let Some((start, text)) = current.take() {
                    words.push(Word {
                        text,
                        span: start..at,
                    });
                }
            }
            '#' if current.is_none() => {
                // A comment runs to the end of the line.
                while chars.next_if(|&(_, c)| c != '\n').is_some() {}
            }
            '\\' => match chars.next() {
                None => return Err(CmdlineError::DanglingBackslash { offset: at }),
                Some((_, '\n')) => {}
                Some((_, '\r')) if chars.next_if(|&(_, c)| c == '\n').is_some() => {}
                Some((_, escaped)) => current.get_or_insert((at, String::new())).1.push(escaped),
            },
            '\'' => {
                let word = &mut current.get_or_insert((at, String::new())).1;
                loop {
                    match chars.next() {
                        None => {
                            return Err(CmdlineError::UnterminatedQuote {
                                quote: '\'',
                                offset: at,
                            })
                        }
                        Some((_, '\'')) => break,
                        Some((_, c)) => word.push(c),
                    }
                }
            }
            '"' => {
                let word = &mut current.get_or_insert((at, String::new())).1;
                read_double_quoted(&mut chars, word).ok_or(CmdlineError::UnterminatedQuote {
                    quote: '"',
                    offset: at,
                })?;
            }
            c => current.get_or_insert((at, String::new())).1.push(c),
        }
    }
    if let Some((start, word)) = current {
        words.push(Word {
            text: word,
            span: start..text.len(),
        });
    }
    Ok(words)
}

/// Reads up to the closing `"`, appending to `word`; `None` if there is none.
/// Inside double quotes a backslash escapes only `$`, `` ` ``, `"`, `\` and newline.
fn read_double_quoted(
    chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>,
    word: &mut String,
) -> Option<()> {
    loop {
        match chars.next()? {
            (_, '"') => return Some(()),
            (_, '\\') => match chars.next()? {
                (_, '\n') => {}
                (_, c @ ('$' | '`' | '"' | '\\')) => word.push(c),
                (_, c) => {
                    word.push('\\');
                    word.push(c);
                }
            },
            (_, c) => word.push(c),
        }
    }
}

/// A value in QEMU's `key=value,key=value` syntax, such as
/// `socket,id=net0,listen=:1234`: items in order, the first often a bare type.
/// `,,` stands for a literal comma.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValues {
    pub items: Vec<KeyValue>,
}

/// One item: `id=net0` (key and value) or `socket` (a bare word, no value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Option<String>,
}

impl KeyValues {
    /// Splits on single commas; never fails (QEMU itself judges the meaning).
    pub fn parse(text: &str) -> Self {
        let mut items = Vec::new();
        let mut item = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            if c != ',' {
                item.push(c);
            } else if chars.next_if_eq(&',').is_some() {
                item.push(',');
            } else {
                items.push(KeyValue::from_item(std::mem::take(&mut item)));
            }
        }
        items.push(KeyValue::from_item(item));
        Self { items }
    }

    /// The first item when it is a bare word: the type in `socket,id=net0`.
    pub fn kind(&self) -> Option<&str> {
        self.items
            .first()
            .filter(|item| item.value.is_none())
            .map(|item| item.key.as_str())
    }

    /// The value of the first item named `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.items
            .iter()
            .find(|item| item.key == key)
            .and_then(|item| item.value.as_deref())
    }

    /// Replaces the value of every item named `key`; false if there was none.
    pub fn set(&mut self, key: &str, value: &str) -> bool {
        let mut found = false;
        for item in self.items.iter_mut().filter(|item| item.key == key) {
            item.value = Some(value.to_owned());
            found = true;
        }
        found
    }
}

impl KeyValue {
    fn from_item(item: String) -> Self {
        match item.split_once('=') {
            Some((key, value)) => Self {
                key: key.to_owned(),
                value: Some(value.to_owned()),
            },
            None => Self {
                key: item,
                value: None,
            },
        }
    }
}

/// Escapes commas for use inside a `key=value,…` list (`,` becomes `,,`).
pub fn escape_commas(text: &str) -> String {
    text.replace(',', ",,")
}

impl fmt::Display for KeyValues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, item) in self.items.iter().enumerate() {
            if index > 0 {
                f.write_str(",")?;
            }
            f.write_str(&escape_commas(&item.key))?;
            if let Some(value) = &item.value {
                write!(f, "={}", escape_commas(value))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn words(text: &str) -> Vec<String> {
        split_words(text)
            .expect("splits")
            .into_iter()
            .map(|w| w.text)
            .collect()
    }

    #[rstest]
    #[case("a b", &["a", "b"])]
    #[case("  a \t b  ", &["a", "b"])]
    #[case("a \\\n  b", &["a", "b"])]
    #[case("a \\\r\n  b", &["a", "b"])]
    #[case("a\\\nb", &["ab"])]
    #[case("'a b' c", &["a b", "c"])]
    #[case("\"a \\\"b\\\" \\$x \\n\" c", &["a \"b\" $x \\n", "c"])]
    #[case("x'y'\"z\"", &["xyz"])]
    #[case("a\\ b", &["a b"])]
    #[case("''", &[""])]
    #[case("a # comment\n b", &["a", "b"])]
    #[case("a#b", &["a#b"])]
    fn splits_like_a_shell(#[case] text: &str, #[case] expected: &[&str]) {
        assert_eq!(words(text), expected);
    }

    #[test]
    fn word_spans_cover_quotes() {
        let split = split_words("ab 'c d' e").expect("splits");
        let spans: Vec<_> = split.iter().map(|w| w.span.clone()).collect();
        assert_eq!(spans, [0..2, 3..8, 9..10]);
    }

    #[rstest]
    #[case("qemu-system-x86_64 -m 'x", CmdlineError::UnterminatedQuote { quote: '\'', offset: 22 })]
    #[case("qemu-system-x86_64 -m \"x", CmdlineError::UnterminatedQuote { quote: '"', offset: 22 })]
    #[case("qemu-system-x86_64 -m 1 \\", CmdlineError::DanglingBackslash { offset: 24 })]
    #[case("  \\\n ", CmdlineError::Empty)]
    #[case("qemu-img create x", CmdlineError::NotQemu { program: "qemu-img".into(), offset: 0 })]
    #[case("qemu-system- -m 1", CmdlineError::NotQemu { program: "qemu-system-".into(), offset: 0 })]
    #[case("qemu-system-x86_64 -m", CmdlineError::MissingValue { flag: "-m".into(), offset: 21 })]
    #[case("qemu-system-x86_64 -m 1 512", CmdlineError::ExpectedFlag { word: "512".into(), offset: 24 })]
    #[case("qemu-system-x86_64 - x", CmdlineError::ExpectedFlag { word: "-".into(), offset: 19 })]
    fn reports_errors_with_offsets(#[case] text: &str, #[case] expected: CmdlineError) {
        let error = CommandLine::parse(text).expect_err("must fail");
        assert_eq!(error.offset(), expected.offset());
        assert_eq!(error, expected);
    }

    #[test]
    fn parses_options_with_and_without_values() {
        let text = "/usr/bin/qemu-system-x86_64 -m 512 \\\n  --enable-kvm -S -cdrom 'my disk.iso' -nographic";
        let line = CommandLine::parse(text).expect("parses");
        assert_eq!(line.program, "/usr/bin/qemu-system-x86_64");
        let shown: Vec<_> = line
            .options
            .iter()
            .map(|o| (o.flag.as_str(), o.value.as_deref(), &text[o.span.clone()]))
            .collect();
        assert_eq!(
            shown,
            [
                ("-m", Some("512"), "-m 512"),
                ("--enable-kvm", None, "--enable-kvm"),
                ("-S", None, "-S"),
                ("-cdrom", Some("my disk.iso"), "-cdrom 'my disk.iso'"),
                ("-nographic", None, "-nographic"),
            ]
        );
        assert!(line.has("-enable-kvm"));
        assert_eq!(line.get("-m").and_then(|o| o.value.as_deref()), Some("512"));
        assert!(line.get("-hda").is_none());
    }

    #[test]
    fn iterates_values_of_a_repeated_option() {
        let line =
            CommandLine::parse("qemu-system-x86_64 -net user -net nic,macaddr=52:54:00:12:34:56")
                .expect("parses");
        assert_eq!(
            line.values("-net").collect::<Vec<_>>(),
            ["user", "nic,macaddr=52:54:00:12:34:56"]
        );
        assert_eq!(
            line.to_argv(),
            [
                "qemu-system-x86_64",
                "-net",
                "user",
                "-net",
                "nic,macaddr=52:54:00:12:34:56"
            ]
        );
    }

    #[rstest]
    #[case("socket,id=net0,listen=:1234", Some("socket"), "id", Some("net0"))]
    #[case(
        "nic,macaddr=52:54:00:12:34:56",
        Some("nic"),
        "macaddr",
        Some("52:54:00:12:34:56")
    )]
    #[case("file=a,,b.img,if=ide", None, "file", Some("a,b.img"))]
    #[case("q35,accel=kvm:tcg", Some("q35"), "accel", Some("kvm:tcg"))]
    #[case("user", Some("user"), "id", None)]
    fn parses_key_values(
        #[case] text: &str,
        #[case] kind: Option<&str>,
        #[case] key: &str,
        #[case] value: Option<&str>,
    ) {
        let parsed = KeyValues::parse(text);
        assert_eq!(parsed.kind(), kind);
        assert_eq!(parsed.get(key), value);
        assert_eq!(parsed.to_string(), text, "round trip");
    }

    #[test]
    fn sets_a_key_value() {
        let mut parsed = KeyValues::parse("pc,accel=kvm");
        assert!(parsed.set("accel", "tcg"));
        assert!(!parsed.set("nothing", "x"));
        assert_eq!(parsed.to_string(), "pc,accel=tcg");
    }
}

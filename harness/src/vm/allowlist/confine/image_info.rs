//! What `qemu-img info` says about one image file: the command that asks it
//! and the part of its answer that matters. Pure; the confinement runs the
//! command through the process door.
//!
//! The command is an argv, never a shell string: the path (and the format)
//! come from a student's line or from a student's image, and each stays one
//! argument whatever it holds, spaces, quotes or `$(…)` included; `--` keeps
//! a path that starts with `-` from being read as an option.

use std::borrow::Cow;
use std::fmt;
use std::path::Path;

use tokio::process::Command;

/// The program that reads image headers.
const QEMU_IMG: &str = "qemu-img";

/// `qemu-img info` of one file, its backing file left unopened (no
/// `--backing-chain`).
#[derive(Debug)]
pub(super) struct InfoCommand<'a> {
    /// Relative to the directory the command runs in.
    pub path: &'a str,
    /// The format the image is declared to be; `None` lets qemu-img probe.
    pub format: Option<&'a str>,
}

impl InfoCommand<'_> {
    /// The words before the student's: without taking the image's lock, in JSON.
    const OPTIONS: [&'static str; 3] = ["info", "-U", "--output=json"];

    /// Everything after the program, each word an argument of its own.
    fn args(&self) -> Vec<&str> {
        let mut args = Self::OPTIONS.to_vec();
        if let Some(format) = self.format {
            args.extend(["-f", format]);
        }
        args.extend(["--", self.path]);
        args
    }

    /// The command, to run in `dir`, which [`Self::path`] is relative to.
    pub fn command(&self, dir: &Path) -> Command {
        let mut command = Command::new(QEMU_IMG);
        command.args(self.args()).current_dir(dir);
        command
    }
}

/// The command as a shell would read it, for messages only (nothing runs
/// it): the words after [`InfoCommand::OPTIONS`] quoted where they need it.
impl fmt::Display for InfoCommand<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let args = self.args();
        let (options, rest) = args.split_at(Self::OPTIONS.len());
        write!(f, "{QEMU_IMG} {}", options.join(" "))?;
        rest.iter()
            .try_for_each(|word| write!(f, " {}", quoted(word)))
    }
}

/// `word` quoted for a POSIX shell; one that cannot be (it holds a NUL, which
/// no file name has) as it is.
fn quoted(word: &str) -> Cow<'_, str> {
    shlex::try_quote(word).unwrap_or(Cow::Borrowed(word))
}

/// The part of `qemu-img info --output=json` that matters here.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) struct ImageInfo {
    pub format: String,
    /// The backing file's name as stored in the image.
    pub backing_filename: Option<String>,
    /// That name as QEMU opens it: relative to the image's own path.
    pub full_backing_filename: Option<String>,
    pub backing_filename_format: Option<String>,
    format_specific: Option<FormatSpecific>,
}

#[derive(Debug, serde::Deserialize)]
struct FormatSpecific {
    data: Option<serde_json::Value>,
}

impl ImageInfo {
    /// A qcow2 image can keep its data in a file of its own, named anywhere.
    pub fn data_file(&self) -> Option<&str> {
        self.format_specific
            .as_ref()?
            .data
            .as_ref()?
            .get("data-file")?
            .as_str()
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    use rstest::rstest;

    use super::*;

    /// A name a shell would split, expand, run or read as an option.
    const HOSTILE: &str = "-rf 'it''s' \"$(touch pwned)\" `id`; a b.qcow2";

    #[rstest]
    #[case::declared(Some("qcow2"), &["info", "-U", "--output=json", "-f", "qcow2", "--", HOSTILE])]
    #[case::probed(None, &["info", "-U", "--output=json", "--", HOSTILE])]
    fn the_path_is_one_argument_after_the_options(
        #[case] format: Option<&str>,
        #[case] expected: &[&str],
    ) {
        let info = InfoCommand {
            path: HOSTILE,
            format,
        };
        let command = info.command(Path::new("/work/alice"));
        let command = command.as_std();
        assert_eq!(command.get_program(), OsStr::new("qemu-img"));
        let args: Vec<&OsStr> = command.get_args().collect();
        let expected: Vec<&OsStr> = expected.iter().map(OsStr::new).collect();
        assert_eq!(args, expected);
        assert_eq!(command.get_current_dir(), Some(Path::new("/work/alice")));
    }

    /// Messages show the command as before it ran by argv: the fixed options
    /// plain, the student's words shell-quoted.
    #[rstest]
    #[case::plain(
        "vm1.qcow2",
        Some("qcow2"),
        "qemu-img info -U --output=json -f qcow2 -- vm1.qcow2"
    )]
    #[case::spaces("my vm.qcow2", None, "qemu-img info -U --output=json -- 'my vm.qcow2'")]
    #[case::quote("it's.img", None, "qemu-img info -U --output=json -- \"it's.img\"")]
    fn displays_as_a_quoted_shell_line(
        #[case] path: &str,
        #[case] format: Option<&str>,
        #[case] shown: &str,
    ) {
        assert_eq!(InfoCommand { path, format }.to_string(), shown);
    }

    #[test]
    fn reads_the_backing_file_and_an_external_data_file() {
        let json = r#"{
            "format": "qcow2",
            "backing-filename": "base.qcow2",
            "full-backing-filename": "clones/../base.qcow2",
            "backing-filename-format": "qcow2",
            "format-specific": {"type": "qcow2", "data": {"data-file": "data.raw"}}
        }"#;
        let info: ImageInfo = serde_json::from_str(json).expect("qemu-img's JSON");
        assert_eq!(info.format, "qcow2");
        assert_eq!(info.backing_filename.as_deref(), Some("base.qcow2"));
        assert_eq!(
            info.full_backing_filename.as_deref(),
            Some("clones/../base.qcow2")
        );
        assert_eq!(info.backing_filename_format.as_deref(), Some("qcow2"));
        assert_eq!(info.data_file(), Some("data.raw"));
    }
}

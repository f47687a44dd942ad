//! Finding students' submissions in the submissions directory: which entries
//! are submissions, whose, which are rejected (a bad name, a symbolic link)
//! and which are no submission at all. Reads names and types only, never a
//! submission's content.

use std::ffi::OsStr;
use std::fs::{self, FileType};
use std::path::{Path, PathBuf};

use super::scan::printable;
use super::{Source, SourceKind, SubmissionError};

/// An entry of the submissions directory that is a submission but cannot be
/// graded: the grader reports it as not gradable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The entry's name made printable (control and non-ASCII characters
    /// escaped, cut at 80 characters): never use it as a path, and quote it
    /// in a spreadsheet (it may start with `=`).
    pub entry: String,
    pub path: PathBuf,
    pub reason: RejectReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RejectReason {
    #[error(
        "a student name is 1 to 64 letters, digits, `.`, `_` or `-`, starting with a letter or digit"
    )]
    BadStudentName,
    #[error("it is a symbolic link, and submissions are never followed through one")]
    SymbolicLink,
}

/// Everything found in a submissions directory.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Discovery {
    /// Sorted by student name, ignoring ASCII case.
    pub sources: Vec<Source>,
    /// Sorted by path.
    pub rejected: Vec<Rejected>,
    /// Entries that are no submission at all (a README, a device file): the
    /// grader may mention them; they never fail a run. Sorted.
    pub ignored: Vec<PathBuf>,
}

/// Lists the submissions in `dir`: every directory, `.zip`, `.tar.gz` and
/// `.tgz` (extensions in any case). Symbolic links are rejected, not followed.
/// Two submissions of one student (`alice/` and `alice.zip`, or `Alice.zip`
/// and `alice.tgz`: output names must not collide on a case-insensitive file
/// system) fail the run, since which one to grade is the instructor's call.
pub fn discover(dir: &Path) -> Result<Discovery, SubmissionError> {
    let list_error = |source| SubmissionError::ListDir {
        dir: dir.to_path_buf(),
        source,
    };
    let mut found = Discovery::default();
    for entry in fs::read_dir(dir).map_err(list_error)? {
        let entry = entry.map_err(list_error)?;
        // DirEntry::file_type does not follow a symbolic link.
        let file_type = entry.file_type().map_err(list_error)?;
        let path = entry.path();
        let name = entry.file_name();
        match classify_entry(&name, file_type) {
            Classified::Submission { student, kind } => found.sources.push(Source {
                student,
                path,
                kind,
            }),
            Classified::Rejected(reason) => found.rejected.push(Rejected {
                entry: printable(&name.to_string_lossy()),
                path,
                reason,
            }),
            Classified::Ignored => found.ignored.push(path),
        }
    }
    found
        .sources
        .sort_by(|a, b| sort_key(&a.student).cmp(&sort_key(&b.student)));
    if let Some(pair) = found
        .sources
        .windows(2)
        .find(|pair| pair[0].student.eq_ignore_ascii_case(&pair[1].student))
    {
        return Err(SubmissionError::DuplicateStudent {
            student: pair[0].student.clone(),
            first: pair[0].path.clone(),
            second: pair[1].path.clone(),
        });
    }
    found.rejected.sort_by(|a, b| a.path.cmp(&b.path));
    found.ignored.sort();
    Ok(found)
}

fn sort_key(student: &str) -> (String, &str) {
    (student.to_ascii_lowercase(), student)
}

enum Classified {
    Submission { student: String, kind: SourceKind },
    Rejected(RejectReason),
    Ignored,
}

fn classify_entry(name: &OsStr, file_type: FileType) -> Classified {
    if file_type.is_symlink() {
        return Classified::Rejected(RejectReason::SymbolicLink);
    }
    let name = name.as_encoded_bytes();
    let (stem, kind) = if file_type.is_dir() {
        (name, SourceKind::Directory)
    } else if !file_type.is_file() {
        return Classified::Ignored;
    } else if let Some(stem) = strip_suffix_ignore_case(name, b".zip") {
        (stem, SourceKind::Zip)
    } else if let Some(stem) = strip_suffix_ignore_case(name, b".tar.gz")
        .or_else(|| strip_suffix_ignore_case(name, b".tgz"))
    {
        (stem, SourceKind::TarGz)
    } else {
        return Classified::Ignored;
    };
    match std::str::from_utf8(stem) {
        Ok(student) if is_student_name(student) => Classified::Submission {
            student: student.to_string(),
            kind,
        },
        _ => Classified::Rejected(RejectReason::BadStudentName),
    }
}

fn strip_suffix_ignore_case<'a>(name: &'a [u8], suffix: &[u8]) -> Option<&'a [u8]> {
    let split = name.len().checked_sub(suffix.len())?;
    let (stem, tail) = name.split_at(split);
    tail.eq_ignore_ascii_case(suffix).then_some(stem)
}

/// `[A-Za-z0-9][A-Za-z0-9._-]{0,63}`
fn is_student_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

#[cfg(test)]
mod tests {
    use rstest::rstest;
    use std::os::unix::fs::symlink;
    use tempfile::TempDir;

    use super::*;

    fn names_of(sources: &[Source]) -> Vec<(&str, SourceKind)> {
        sources
            .iter()
            .map(|source| (source.student.as_str(), source.kind))
            .collect()
    }

    #[test]
    fn discover_lists_directories_and_archives_sorted_and_ignores_the_rest() {
        let temp = TempDir::new().unwrap();
        for name in [
            "carol.tgz",
            "Bob.ZIP",
            "dave.tar.gz",
            "erin_2.x-y.zip",
            "README.md",
            "notes.tar",
        ] {
            fs::write(temp.path().join(name), b"").unwrap();
        }
        fs::create_dir(temp.path().join("alice")).unwrap();
        nix::unistd::mkfifo(&temp.path().join("pipe"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        let found = discover(temp.path()).unwrap();
        assert_eq!(
            names_of(&found.sources),
            [
                ("alice", SourceKind::Directory),
                ("Bob", SourceKind::Zip),
                ("carol", SourceKind::TarGz),
                ("dave", SourceKind::TarGz),
                ("erin_2.x-y", SourceKind::Zip),
            ]
        );
        assert_eq!(found.sources[1].path, temp.path().join("Bob.ZIP"));
        assert_eq!(
            found.ignored,
            ["README.md", "notes.tar", "pipe"].map(|name| temp.path().join(name))
        );
        assert!(found.rejected.is_empty());
    }

    #[rstest]
    #[case::formula("=cmd|' -C calc'!A0.zip", "=cmd|' -C calc'!A0.zip")]
    #[case::hidden(".hidden", ".hidden")]
    #[case::space("a b", "a b")]
    #[case::dash_first("-rf.tgz", "-rf.tgz")]
    #[case::too_long(&"a".repeat(65), &"a".repeat(65))]
    #[case::terminal_escape("\x1b]0;owned\x07.zip", "\\u{1b}]0;owned\\u{7}.zip")]
    #[case::right_to_left("alice\u{202e}piz.sh", "alice\\u{202e}piz.sh")]
    #[case::bare_extension(".zip", ".zip")]
    fn discover_rejects_a_bad_student_name(#[case] name: &str, #[case] shown: &str) {
        let temp = TempDir::new().unwrap();
        fs::create_dir(temp.path().join("alice")).unwrap();
        if name.ends_with(".zip") || name.ends_with(".tgz") {
            fs::write(temp.path().join(name), b"").unwrap();
        } else {
            fs::create_dir(temp.path().join(name)).unwrap();
        }
        let found = discover(temp.path()).unwrap();
        assert_eq!(names_of(&found.sources), [("alice", SourceKind::Directory)]);
        assert_eq!(
            found.rejected,
            [Rejected {
                entry: shown.to_string(),
                path: temp.path().join(name),
                reason: RejectReason::BadStudentName,
            }]
        );
    }

    #[test]
    fn discover_rejects_a_non_utf8_name_and_a_symbolic_link() {
        use std::os::unix::ffi::OsStrExt;
        let temp = TempDir::new().unwrap();
        let odd = OsStr::from_bytes(b"al\xffce.zip");
        fs::write(temp.path().join(odd), b"").unwrap();
        symlink("/etc", temp.path().join("mallory")).unwrap();
        let found = discover(temp.path()).unwrap();
        assert!(found.sources.is_empty());
        let rejected: Vec<(&str, RejectReason)> = found
            .rejected
            .iter()
            .map(|rejected| (rejected.entry.as_str(), rejected.reason))
            .collect();
        assert_eq!(
            rejected,
            [
                ("al\\u{fffd}ce.zip", RejectReason::BadStudentName),
                ("mallory", RejectReason::SymbolicLink)
            ]
        );
    }

    #[test]
    fn a_64_character_name_is_fine() {
        assert!(is_student_name(&"a".repeat(64)));
        assert!(is_student_name("7"));
        assert!(!is_student_name(""));
    }

    #[rstest]
    #[case::directory_and_zip(&["alice/"], &["alice.zip"], "alice")]
    #[case::zip_and_tgz(&[], &["bob.tgz", "bob.zip"], "bob")]
    #[case::differing_in_case(&["carol/"], &["Carol.tar.gz"], "Carol")]
    fn discover_refuses_two_submissions_of_one_student(
        #[case] dirs: &[&str],
        #[case] archives: &[&str],
        #[case] student: &str,
    ) {
        let temp = TempDir::new().unwrap();
        for dir in dirs {
            fs::create_dir(temp.path().join(dir)).unwrap();
        }
        for archive in archives {
            fs::write(temp.path().join(archive), b"").unwrap();
        }
        let error = discover(temp.path()).unwrap_err();
        let SubmissionError::DuplicateStudent {
            student: named,
            first,
            second,
        } = &error
        else {
            panic!("{error}");
        };
        assert!(named.eq_ignore_ascii_case(student), "{error}");
        let mut both = [first.clone(), second.clone()];
        both.sort();
        let mut expected: Vec<PathBuf> = dirs
            .iter()
            .chain(archives)
            .map(|name| temp.path().join(name.trim_end_matches('/')))
            .collect();
        expected.sort();
        assert_eq!(both.to_vec(), expected);
        assert!(error.to_string().contains(&first.display().to_string()));
        assert!(error.to_string().contains(&second.display().to_string()));
    }

    #[test]
    fn discover_fails_on_a_missing_directory() {
        let temp = TempDir::new().unwrap();
        let error = discover(&temp.path().join("nowhere")).unwrap_err();
        assert!(matches!(error, SubmissionError::ListDir { .. }), "{error}");
    }
}

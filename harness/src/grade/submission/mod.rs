//! Students' submissions: finding them in a directory ([`discover`]) and reading
//! the files a lab asks for ([`load`]).
//!
//! A submission is a directory, `.zip`, `.tar.gz` or `.tgz` named after the
//! student. It is untrusted, and some are hostile on purpose, so this module
//! never follows a symbolic link, never extracts anything to disk, reads only
//! regular files at the lab's slot paths, and stops at [`Limits`]. Whatever a
//! submission does wrong becomes a sentence in [`Loaded::problems`] for the
//! student's feedback; only a failure of the host (a directory it cannot list,
//! a file it cannot open) is a [`SubmissionError`].
//!
//! [`discover`] lists the submissions directory; [`load`] runs one reader per
//! kind of source (`directory`, `zip`, `tar_gz`), each feeding its entries to
//! the one scan policy (`scan`), which decides what is read and words the
//! problems, so every kind of submission is judged alike.

mod directory;
mod discover;
mod scan;
mod tar_gz;
#[cfg(test)]
mod test_archives;
mod zip;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub use discover::{discover, Discovery, RejectReason, Rejected};
pub use scan::Limits;
use scan::Scan;

/// A host-side failure: the run (for [`discover`]) or this submission (for
/// [`load`]) cannot be graded, through no fault of the student.
#[derive(Debug, thiserror::Error)]
pub enum SubmissionError {
    #[error("cannot list the submissions directory {}: {source}", dir.display())]
    ListDir { dir: PathBuf, source: io::Error },
    #[error(
        "student `{student}` has two submissions, {} and {}: keep one",
        first.display(),
        second.display()
    )]
    DuplicateStudent {
        student: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("cannot open the submission {}: {source}", path.display())]
    Open { path: PathBuf, source: io::Error },
}

/// What holds a submission's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Directory,
    Zip,
    /// `.tar.gz` or `.tgz`.
    TarGz,
}

/// One student's submission. `student` always matches
/// `[A-Za-z0-9][A-Za-z0-9._-]{0,63}`, so it is safe as a file name, a shell
/// word and a spreadsheet cell (no `=`, `+`, `-` or `@` to start a formula).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub student: String,
    pub path: PathBuf,
    pub kind: SourceKind,
}

/// What was read from one submission.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Loaded {
    pub student: String,
    /// Slot path (e.g. `clone/cow.sh`) to its text. A slot missing here is a
    /// step the student did not do (or a file that was not read: see `problems`).
    pub files: BTreeMap<String, String>,
    /// Sentences for the student's feedback, e.g. `clone/cow.sh is a symbolic
    /// link: not read`. Names taken from the submission are quoted and escaped.
    pub problems: Vec<String>,
}

/// Reads the files at `slots` (paths like `clone/cow.sh`) from `source`, in
/// memory. An archive may hold them at its top level or inside one top-level
/// directory of any name; so may a directory. Everything else is counted as
/// ignored. Only host failures are errors: whatever is wrong with the
/// submission itself is in [`Loaded::problems`].
pub fn load(source: &Source, slots: &[&str], limits: &Limits) -> Result<Loaded, SubmissionError> {
    let mut scan = Scan::new(slots, limits);
    match source.kind {
        SourceKind::Directory => directory::scan(&source.path, &mut scan)?,
        SourceKind::Zip => {
            if let Some(file) = open_archive(&source.path, &mut scan)? {
                zip::scan(file, &mut scan);
            }
        }
        SourceKind::TarGz => {
            if let Some(file) = open_archive(&source.path, &mut scan)? {
                tar_gz::scan(file, &mut scan);
            }
        }
    }
    Ok(scan.finish(&source.student))
}

/// Opens without following a symbolic link (the entry could have been swapped
/// for one since it was listed) and without blocking (were it swapped for a
/// FIFO).
fn open_no_follow(path: &Path) -> io::Result<File> {
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
}

/// Opens an archive, or notes why it is not read (too large: the student's
/// problem); a file the host cannot open is the host's.
fn open_archive(path: &Path, scan: &mut Scan) -> Result<Option<File>, SubmissionError> {
    let open_error = |source| SubmissionError::Open {
        path: path.to_path_buf(),
        source,
    };
    let file = open_no_follow(path).map_err(open_error)?;
    let metadata = file.metadata().map_err(open_error)?;
    if !metadata.is_file() {
        return Err(open_error(io::Error::other(
            "no longer a regular file (replaced since it was found?)",
        )));
    }
    if metadata.len() > scan.limits().max_archive_bytes {
        scan.stop(format!(
            "the archive is larger than {}: not read",
            scan::human_bytes(scan.limits().max_archive_bytes)
        ));
        return Ok(None);
    }
    Ok(Some(file))
}

#[cfg(test)]
mod tests {
    use rstest::rstest;
    use tempfile::TempDir;

    use super::test_archives::{load_default, submit, tar_gz_of, Pack, COW, F, SLOTS};
    use super::*;

    #[rstest]
    #[case::zip(Pack::Zip)]
    #[case::tar_gz(Pack::TarGz)]
    fn an_archive_too_large_on_disk_is_not_opened(#[case] pack: Pack) {
        let temp = TempDir::new().unwrap();
        let source = submit(temp.path(), "alice", pack, &[F("clone/cow.sh", COW)]);
        let limits = Limits {
            max_archive_bytes: 16,
            ..Limits::default()
        };
        let loaded = load(&source, SLOTS, &limits).unwrap();
        assert!(loaded.files.is_empty());
        assert_eq!(
            loaded.problems,
            ["the archive is larger than 16 bytes: not read"]
        );
    }

    #[rstest]
    #[case::zip_of_garbage(Pack::Zip, b"PK\x03\x04 not really".to_vec(), "the zip archive could not be read: ")]
    #[case::tgz_of_garbage(Pack::TarGz, b"not gzip at all".to_vec(), "the tar.gz archive could not be read: ")]
    #[case::empty_zip(Pack::Zip, Vec::new(), "the zip archive could not be read: ")]
    #[case::truncated_tgz(Pack::TarGz, tar_gz_of(&[F("clone/cow.sh", COW), F("clone/full.sh", &[b'#'; 4000])])[..60].to_vec(), "the tar.gz archive could not be read")]
    fn an_unreadable_archive_is_the_students_problem(
        #[case] pack: Pack,
        #[case] bytes: Vec<u8>,
        #[case] expected: &str,
    ) {
        let temp = TempDir::new().unwrap();
        let source = submit(temp.path(), "alice", pack, &[]);
        fs::write(&source.path, bytes).unwrap();
        let loaded = load_default(&source);
        assert!(loaded.files.is_empty(), "{:?}", loaded.files);
        assert_eq!(loaded.problems.len(), 1, "{:?}", loaded.problems);
        assert!(
            loaded.problems[0].starts_with(expected),
            "{:?}",
            loaded.problems
        );
    }

    #[test]
    fn a_missing_source_is_a_host_error() {
        let temp = TempDir::new().unwrap();
        for kind in [SourceKind::Directory, SourceKind::Zip, SourceKind::TarGz] {
            let source = Source {
                student: "alice".into(),
                path: temp.path().join("gone"),
                kind,
            };
            let error = load(&source, SLOTS, &Limits::default()).unwrap_err();
            assert!(matches!(error, SubmissionError::Open { .. }), "{error}");
        }
    }
}

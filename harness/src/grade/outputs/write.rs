//! Writing every rendering of a grading run to disk, under file names made
//! from student names that are checked first to be plain file names.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};

use super::{feedback, gradebook_csv, gradescope_json, junit, student_json};
use crate::grade::model::Gradebook;

/// Writes every file of a grading run under `out`, creating directories,
/// and returns the paths written. Every student name is checked to be a
/// plain file name first, so nothing is written when one is not.
pub fn write_all(book: &Gradebook, out: &Path, after_due_date: bool) -> io::Result<Vec<PathBuf>> {
    check_student_names(book)?;
    let mut files = Vec::new();
    for student in &book.students {
        let name = &student.student;
        files.push((
            out.join("results").join(format!("{name}.json")),
            student_json(student),
        ));
        files.push((
            out.join("feedback").join(format!("{name}.md")),
            feedback(student, after_due_date),
        ));
        files.push((
            out.join("gradescope").join(name).join("results.json"),
            gradescope_json(student),
        ));
    }
    files.push((out.join("gradebook.csv"), gradebook_csv(book)));
    files.push((out.join("junit.xml"), junit(book)));
    let mut written = Vec::with_capacity(files.len());
    for (path, text) in files {
        write_file(&path, &text)?;
        written.push(path);
    }
    Ok(written)
}

fn write_file(path: &Path, text: &str) -> io::Result<()> {
    let with_path = |error: io::Error| {
        io::Error::new(error.kind(), format!("writing {}: {error}", path.display()))
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(with_path)?;
    }
    std::fs::write(path, text).map_err(with_path)
}

/// Student names become path components: each must match
/// `[A-Za-z0-9][A-Za-z0-9._-]*` (no `/`, no leading `.`, so no `..`), and
/// no two may be equal (one's files would overwrite the other's).
fn check_student_names(book: &Gradebook) -> io::Result<()> {
    let mut seen = HashSet::new();
    for student in &book.students {
        let name = student.student.as_str();
        if !is_plain_file_name(name) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "student name {name:?} is not a plain file name \
                     (expected [A-Za-z0-9][A-Za-z0-9._-]*): nothing written"
                ),
            ));
        }
        if !seen.insert(name) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("student name {name:?} appears twice: nothing written"),
            ));
        }
    }
    Ok(())
}

fn is_plain_file_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;
    use crate::grade::outputs::test_book::book;

    /// The fixture with file-safe student names.
    fn writable_book() -> Gradebook {
        let mut book = book();
        book.students[1].student = "bob.smith-2".to_string();
        book
    }

    /// Every file under `dir`, recursively.
    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut files = Vec::new();
        let mut dirs = vec![dir.to_path_buf()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).expect("reads the dir") {
                let path = entry.expect("an entry").path();
                if path.is_dir() {
                    dirs.push(path);
                } else {
                    files.push(path);
                }
            }
        }
        files
    }

    #[test]
    fn write_all_writes_exactly_the_expected_files() {
        let out = tempfile::tempdir().expect("a temp dir");
        let book = writable_book();
        let written = write_all(&book, out.path(), false).expect("writes");
        let expected = [
            "results/alice.json",
            "feedback/alice.md",
            "gradescope/alice/results.json",
            "results/bob.smith-2.json",
            "feedback/bob.smith-2.md",
            "gradescope/bob.smith-2/results.json",
            "gradebook.csv",
            "junit.xml",
        ];
        let relative = |paths: Vec<PathBuf>| -> HashSet<PathBuf> {
            paths
                .into_iter()
                .map(|p| p.strip_prefix(out.path()).expect("under out").to_path_buf())
                .collect()
        };
        let expected: HashSet<PathBuf> = expected.iter().map(PathBuf::from).collect();
        assert_eq!(relative(written.clone()), expected);
        assert_eq!(relative(walk(out.path())), expected);
        let feedback_text =
            std::fs::read_to_string(out.path().join("feedback/alice.md")).expect("reads");
        assert_eq!(feedback_text, feedback(&book.students[0], false));
    }

    #[rstest]
    #[case("../escape")]
    #[case(".hidden")]
    #[case("a/b")]
    #[case("")]
    #[case("-rf")]
    #[case("bob smith")]
    fn write_all_refuses_a_name_that_is_not_a_plain_file_name(#[case] name: &str) {
        let out = tempfile::tempdir().expect("a temp dir");
        let mut book = writable_book();
        book.students[1].student = name.to_string();
        let error = write_all(&book, out.path(), false).expect_err("refuses");
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        assert!(walk(out.path()).is_empty(), "nothing is written");
    }

    #[test]
    fn write_all_refuses_two_students_of_one_name() {
        let out = tempfile::tempdir().expect("a temp dir");
        let mut book = writable_book();
        book.students[1].student = "alice".to_string();
        let error = write_all(&book, out.path(), false).expect_err("refuses");
        assert!(error.to_string().contains("appears twice"), "{error}");
    }
}

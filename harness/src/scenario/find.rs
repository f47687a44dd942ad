//! Which lab files a command means: every `*.toml` of a labs dir, or the
//! labs named by id or path. One lookup for `labcheck grade`, `selftest`,
//! `cargo xtask verify-labs` and the shipped labs' tests.

use std::path::{Path, PathBuf};

/// Why the lab files a command names cannot be found.
#[derive(Debug, thiserror::Error)]
pub enum FindError {
    /// A name that is neither a file nor `<dir>/<name>.toml`.
    #[error("no lab `{name}`: neither a file nor {}; the labs there are: {}", expected.display(), known.join(", "))]
    NoSuchLab {
        name: String,
        expected: PathBuf,
        /// The ids of the labs in the dir, sorted.
        known: Vec<String>,
    },
    #[error("cannot list the labs in {}: {source}", dir.display())]
    Unreadable {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The lab files of `dir` (`*.toml`), sorted by name.
pub fn lab_files_in(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    files.sort();
    Ok(files)
}

/// A lab's id as its file names it (`scenarios/socket.toml` is `socket`).
pub fn id_of(file: &Path) -> String {
    file.file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `names` as lab files, in the order given: an existing file as it is,
/// anything else as `<dir>/<name>.toml`. No names means every lab of `dir`.
pub fn find_labs(dir: &Path, names: &[String]) -> Result<Vec<PathBuf>, FindError> {
    if names.is_empty() {
        return lab_files_in(dir).map_err(|source| FindError::Unreadable {
            dir: dir.to_path_buf(),
            source,
        });
    }
    names.iter().map(|name| find_lab(dir, name)).collect()
}

fn find_lab(dir: &Path, name: &str) -> Result<PathBuf, FindError> {
    let as_file = PathBuf::from(name);
    if as_file.is_file() {
        return Ok(as_file);
    }
    let by_id = dir.join(format!("{name}.toml"));
    if by_id.is_file() {
        return Ok(by_id);
    }
    Err(FindError::NoSuchLab {
        name: name.to_string(),
        expected: by_id,
        known: lab_files_in(dir)
            .unwrap_or_default()
            .iter()
            .map(|file| id_of(file))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labs_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        for name in ["tap.toml", "socket.toml", "notes.md"] {
            std::fs::write(dir.path().join(name), "").expect("write");
        }
        dir
    }

    #[test]
    fn no_names_means_every_lab_file_sorted() {
        let dir = labs_dir();
        let ids: Vec<String> = find_labs(dir.path(), &[])
            .expect("found")
            .iter()
            .map(|f| id_of(f))
            .collect();
        assert_eq!(ids, ["socket", "tap"]);
    }

    #[test]
    fn names_are_ids_or_files_in_the_order_given() {
        let dir = labs_dir();
        let file = dir.path().join("socket.toml").display().to_string();
        let found = find_labs(dir.path(), &["tap".into(), file.clone()]).expect("found");
        assert_eq!(found, [dir.path().join("tap.toml"), PathBuf::from(file)]);
    }

    #[test]
    fn an_unknown_name_lists_the_labs_there() {
        let dir = labs_dir();
        let error = find_labs(dir.path(), &["sockte".into()]).expect_err("unknown");
        let FindError::NoSuchLab { known, .. } = &error else {
            panic!("{error}");
        };
        assert_eq!(known, &["socket", "tap"]);
        assert!(error
            .to_string()
            .starts_with("no lab `sockte`: neither a file nor "));
    }

    #[test]
    fn an_unreadable_labs_dir_is_an_error_not_zero_labs() {
        let error = find_labs(Path::new("/nonexistent-labs"), &[]).expect_err("no dir");
        assert!(matches!(error, FindError::Unreadable { .. }), "{error}");
    }
}

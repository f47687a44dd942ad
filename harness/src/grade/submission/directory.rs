//! The reader of a submission that is a directory: walks it without following
//! a symbolic link and reads slot files that are regular files with one name.

use std::ffi::OsString;
use std::fs::{self, FileType};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::open_no_follow;
use super::scan::{quoted, EntryType, Scan, Target};
use super::SubmissionError;

/// Walks a submission directory without following any symbolic link: every
/// entry is looked at through `lstat` (`DirEntry::file_type`), and a slot file
/// is opened with `O_NOFOLLOW`, then checked again to be a regular file.
/// Entries are taken in name order, so problems come out in a stable order.
pub(super) fn scan(top: &Path, scan: &mut Scan) -> Result<(), SubmissionError> {
    let open_error = |source| SubmissionError::Open {
        path: top.to_path_buf(),
        source,
    };
    if !fs::symlink_metadata(top).map_err(open_error)?.is_dir() {
        return Err(open_error(io::Error::other(
            "no longer a directory (replaced since it was found?)",
        )));
    }
    // Directories are listed when their turn comes, not when found, so at
    // most one listing (itself cut at the entries left) is held at a time.
    let mut pending = vec![(String::new(), top.to_path_buf())];
    while let Some((relative, dir)) = pending.pop() {
        let listing = match list_sorted(&dir, scan.entries_left()) {
            Ok(listing) => listing,
            Err(source) if relative.is_empty() => return Err(open_error(source)),
            Err(error) => {
                scan.note(format!(
                    "{} could not be listed: {error}",
                    quoted(&relative)
                ));
                continue;
            }
        };
        let mut subdirectories = Vec::new();
        for (name, file_type) in listing {
            if !scan.admit() {
                return Ok(());
            }
            let path = dir.join(&name);
            let name = name.to_string_lossy();
            let relative = if relative.is_empty() {
                name.into_owned()
            } else {
                format!("{relative}/{name}")
            };
            let entry = entry_type(file_type);
            if let Some(target) = scan.judge(&relative, &['/'], entry) {
                read_regular_file(&path, target, scan);
            }
            if entry == EntryType::Directory {
                subdirectories.push((relative, path));
            }
        }
        // Reversed onto the stack, so they are walked in name order.
        pending.extend(subdirectories.into_iter().rev());
    }
    Ok(())
}

/// A directory's entries with their own (unfollowed) types, sorted by name,
/// at most `limit` of them (which ones, if there are more, is up to the file
/// system: the walk stops there anyway, and it bounds what is held).
fn list_sorted(dir: &Path, limit: usize) -> io::Result<Vec<(OsString, FileType)>> {
    let mut listing = Vec::new();
    for entry in fs::read_dir(dir)?.take(limit) {
        let entry = entry?;
        listing.push((entry.file_name(), entry.file_type()?));
    }
    listing.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(listing)
}

fn entry_type(file_type: FileType) -> EntryType {
    if file_type.is_symlink() {
        EntryType::Symlink
    } else if file_type.is_dir() {
        EntryType::Directory
    } else if file_type.is_file() {
        EntryType::File
    } else {
        EntryType::Special
    }
}

fn read_regular_file(path: &Path, target: Target, scan: &mut Scan) {
    let opened = open_no_follow(path).and_then(|file| {
        let metadata = file.metadata()?;
        Ok((file, metadata))
    });
    let why_not = match opened {
        Ok((file, metadata)) if metadata.is_file() && metadata.nlink() == 1 => {
            return scan.read(target, file);
        }
        // Another name for the same file may lie outside the submission
        // (`ln /etc/shadow cow.sh`), just as a symbolic link would.
        Ok((_, metadata)) if metadata.is_file() => {
            "is a hard link (it has other names): not read".to_string()
        }
        Ok(_) => "is no longer a regular file: not read".to_string(),
        Err(error) => format!("could not be opened: {error}"),
    };
    scan.not_read(target, &why_not);
}

#[cfg(test)]
mod tests {
    use rstest::rstest;
    use std::fs;
    use tempfile::TempDir;

    use crate::grade::submission::test_archives::{
        build_dir, load_default, submit, Dir, Pack, Symlink, F, VM1,
    };

    #[rstest]
    #[case::flat("clone", "")]
    #[case::nested("work/clone", "work/")]
    fn a_symlinked_slot_directory_is_not_followed(#[case] link: &str, #[case] root: &str) {
        let temp = TempDir::new().unwrap();
        let outside = temp.path().join("outside");
        build_dir(&outside, &[F("cow.sh", b"outside\n")]);
        let vm1 = format!("{root}socket/vm1.qemu");
        let source = submit(
            temp.path(),
            "alice",
            Pack::Directory,
            &[Symlink(link, outside.to_str().unwrap()), F(&vm1, VM1)],
        );
        let loaded = load_default(&source);
        assert_eq!(loaded.files.keys().collect::<Vec<_>>(), ["socket/vm1.qemu"]);
        assert_eq!(loaded.problems, ["clone is a symbolic link: not followed"]);
    }

    #[test]
    fn a_hard_link_in_a_directory_is_not_read() {
        let temp = TempDir::new().unwrap();
        let secret = temp.path().join("secret");
        fs::write(&secret, "root:x:0:0\n").unwrap();
        let source = submit(temp.path(), "alice", Pack::Directory, &[Dir("clone")]);
        fs::hard_link(&secret, source.path.join("clone/cow.sh")).unwrap();
        let loaded = load_default(&source);
        assert!(loaded.files.is_empty());
        assert_eq!(
            loaded.problems,
            ["clone/cow.sh is a hard link (it has other names): not read"]
        );
    }

    #[test]
    fn a_fifo_in_a_directory_is_not_opened() {
        let temp = TempDir::new().unwrap();
        let source = submit(temp.path(), "alice", Pack::Directory, &[Dir("clone")]);
        nix::unistd::mkfifo(
            &source.path.join("clone/cow.sh"),
            nix::sys::stat::Mode::S_IRWXU,
        )
        .unwrap();
        let loaded = load_default(&source);
        assert!(loaded.files.is_empty());
        assert_eq!(
            loaded.problems,
            ["clone/cow.sh is not a regular file (a device, pipe or the like): not read"]
        );
    }
}

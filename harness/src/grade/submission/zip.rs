//! The reader of a `.zip` submission: the central directory tells each
//! entry's name and type, and only slot entries are decompressed.

use std::fs::File;
use std::io::BufReader;

use super::scan::{EntryType, Scan};

/// Reads a zip in place: only the slot entries are ever decompressed. `\` is
/// a separator too, as some Windows tools write it.
pub(super) fn scan(file: File, scan: &mut Scan) {
    let mut archive = match ::zip::ZipArchive::new(BufReader::new(file)) {
        Ok(archive) => archive,
        Err(error) => return scan.unreadable("zip archive", error),
    };
    for index in 0..archive.len() {
        if !scan.admit() {
            return;
        }
        // The raw entry gives name and type without decrypting or inflating.
        let target = match archive.by_index_raw(index) {
            Ok(entry) => {
                let entry_type = zip_entry_type(entry.name(), entry.unix_mode());
                scan.judge(entry.name(), &['/', '\\'], entry_type)
            }
            Err(error) => return scan.unreadable("zip archive", error),
        };
        if let Some(target) = target {
            match archive.by_index(index) {
                Ok(entry) => scan.read(target, entry),
                Err(error) => scan.not_read(target, &format!("could not be read: {error}")),
            }
        }
    }
}

fn zip_entry_type(name: &str, unix_mode: Option<u32>) -> EntryType {
    const S_IFMT: u32 = 0o170_000;
    const S_IFREG: u32 = 0o100_000;
    const S_IFDIR: u32 = 0o040_000;
    const S_IFLNK: u32 = 0o120_000;
    match unix_mode.map(|mode| mode & S_IFMT) {
        Some(S_IFREG) => EntryType::File,
        Some(S_IFDIR) => EntryType::Directory,
        Some(S_IFLNK) => EntryType::Symlink,
        // No type recorded (a DOS or bare archive): the name tells.
        None | Some(0) if name.ends_with('/') => EntryType::Directory,
        None | Some(0) => EntryType::File,
        Some(_) => EntryType::Special,
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;
    use std::fs;
    use std::time::{Duration, Instant};
    use tempfile::TempDir;

    use crate::grade::submission::test_archives::{
        deflate_of_zeros, load_default, raw_zip, submit, Pack, RawZipEntry, COW, F, GIB, VM1,
    };

    #[test]
    fn backslashes_in_a_zip_are_separators_and_cannot_escape() {
        let temp = TempDir::new().unwrap();
        let items = [
            F("clone\\cow.sh", COW),
            F("..\\clone\\full.sh", b"escaped\n"),
        ];
        let source = submit(temp.path(), "alice", Pack::Zip, &items);
        let loaded = load_default(&source);
        assert_eq!(loaded.files.keys().collect::<Vec<_>>(), ["clone/cow.sh"]);
        assert_eq!(
            loaded.problems,
            [
                r"archive entries not read, their paths being absolute or holding `..`: `..\clone\full.sh`"
            ]
        );
    }

    /// 1 GiB of zeros in about 1 MiB, claiming its true size or a small one;
    /// the file after it is still read.
    #[rstest]
    #[case::honest_size(GIB as u32)]
    #[case::lying_size(100)]
    fn a_zip_bomb_is_read_no_further_than_the_file_limit(#[case] declared_size: u32) {
        let temp = TempDir::new().unwrap();
        let bomb = RawZipEntry {
            name: "clone/cow.sh",
            method: 8,
            data: deflate_of_zeros(b"", GIB),
            crc: 0, // never checked: the reader stops long before the end
            declared_size,
        };
        let after = RawZipEntry::stored("socket/vm1.qemu", VM1);
        let archive = raw_zip(&[bomb, after]);
        assert!(archive.len() < 2 << 20, "{} bytes", archive.len());
        let source = submit(temp.path(), "alice", Pack::Zip, &[]);
        fs::write(&source.path, archive).unwrap();
        let started = Instant::now();
        let loaded = load_default(&source);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(loaded.files.keys().collect::<Vec<_>>(), ["socket/vm1.qemu"]);
        assert_eq!(
            loaded.problems,
            ["clone/cow.sh is larger than 64 KiB: not read"]
        );
    }

    /// 7-Zip and others can write methods this build does not read (only
    /// stored and deflate are): the student is told, the rest is still read.
    #[test]
    fn an_unsupported_zip_method_is_the_students_problem() {
        let temp = TempDir::new().unwrap();
        let bzip2 = RawZipEntry {
            name: "clone/cow.sh",
            method: 12,
            data: b"BZh9 whatever".to_vec(),
            crc: 0,
            declared_size: 100,
        };
        let stored = RawZipEntry::stored("socket/vm1.qemu", VM1);
        let source = submit(temp.path(), "alice", Pack::Zip, &[]);
        fs::write(&source.path, raw_zip(&[bzip2, stored])).unwrap();
        let loaded = load_default(&source);
        assert_eq!(loaded.files.keys().collect::<Vec<_>>(), ["socket/vm1.qemu"]);
        assert_eq!(loaded.problems.len(), 1, "{:?}", loaded.problems);
        assert!(
            loaded.problems[0].starts_with("clone/cow.sh could not be read: "),
            "{:?}",
            loaded.problems
        );
    }
}

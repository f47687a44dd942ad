//! The reader of a `.tar.gz` or `.tgz` submission: one gzip stream read
//! from start to end, capped at the total limit.

use std::fs::File;
use std::io::{self, BufReader, Read};

use super::scan::{Capped, EntryType, Scan};

/// Reads a `.tar.gz` as one stream. Skipping an entry still inflates it, so
/// the whole decompressed stream is capped at the total limit: a bomb stops
/// there instead of inflating for minutes.
pub(super) fn scan(file: File, scan: &mut Scan) {
    let stream = Capped::new(
        flate2::read::GzDecoder::new(BufReader::new(file)),
        scan.limits().max_total_bytes,
    );
    let mut archive = tar::Archive::new(stream);
    let outcome = scan_tar_entries(&mut archive, scan);
    if archive.into_inner().exceeded() {
        scan.stop_at_total();
    } else if let Err(error) = outcome {
        scan.unreadable("tar.gz archive", error);
    }
}

fn scan_tar_entries<R: Read>(archive: &mut tar::Archive<R>, scan: &mut Scan) -> io::Result<()> {
    for entry in archive.entries()? {
        if !scan.admit() {
            return Ok(());
        }
        let entry = entry?;
        let entry_type = tar_entry_type(entry.header().entry_type());
        let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        if let Some(target) = scan.judge(&path, &['/'], entry_type) {
            scan.read(target, entry);
        }
    }
    Ok(())
}

fn tar_entry_type(entry_type: tar::EntryType) -> EntryType {
    match entry_type {
        tar::EntryType::Regular | tar::EntryType::Continuous => EntryType::File,
        tar::EntryType::Directory => EntryType::Directory,
        tar::EntryType::Symlink => EntryType::Symlink,
        tar::EntryType::Link => EntryType::HardLink,
        _ => EntryType::Special,
    }
}

#[cfg(test)]
mod tests {
    use flate2::write::GzEncoder;
    use flate2::Compression;
    use rstest::rstest;
    use std::fs;
    use std::path::Path;
    use std::time::{Duration, Instant};
    use tempfile::TempDir;

    use crate::grade::submission::test_archives::{
        deflate_of_zeros, load_default, submit, tar_header, Pack, GIB,
    };
    use crate::grade::submission::{Source, SourceKind};

    /// Alice's `.tgz` of `entries`, whose headers are made by hand so they
    /// can say what no honest tool writes.
    fn tgz_of_headers(dir: &Path, entries: &[(tar::Header, &[u8])]) -> Source {
        let path = dir.join("alice.tgz");
        let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
        for (header, content) in entries {
            builder.append(header, *content).unwrap();
        }
        fs::write(&path, builder.into_inner().unwrap().finish().unwrap()).unwrap();
        Source {
            student: "alice".into(),
            path,
            kind: SourceKind::TarGz,
        }
    }

    #[test]
    fn a_hard_link_or_device_in_a_tar_is_not_read() {
        let temp = TempDir::new().unwrap();
        let link = tar_header(
            b"clone/cow.sh",
            tar::EntryType::Link,
            0,
            Some("/etc/shadow"),
        );
        let device = tar_header(b"clone/full.sh", tar::EntryType::Char, 0, None);
        let source = tgz_of_headers(temp.path(), &[(link, b""), (device, b"")]);
        let loaded = load_default(&source);
        assert!(loaded.files.is_empty());
        assert_eq!(
            loaded.problems,
            [
                "clone/cow.sh is a hard link: not read",
                "clone/full.sh is not a regular file (a device, pipe or the like): not read"
            ]
        );
    }

    #[test]
    fn a_non_utf8_name_in_a_tar_is_another_file() {
        let temp = TempDir::new().unwrap();
        let odd = tar_header(b"clone/cow.sh\xff", tar::EntryType::Regular, 1, None);
        let source = tgz_of_headers(temp.path(), &[(odd, b"x")]);
        let loaded = load_default(&source);
        assert!(loaded.files.is_empty());
        assert_eq!(
            loaded.problems,
            ["1 other file(s) ignored: only the lab's files are read"]
        );
    }

    /// A `.tar.gz` holding 1 GiB of zeros, in a slot or in an entry skipped
    /// as another file: skipping still inflates, so the stream's own cap ends it.
    #[rstest]
    #[case::in_a_slot("clone/cow.sh", &["clone/cow.sh is larger than 64 KiB: not read"])]
    #[case::in_another_file("junk.bin", &["1 other file(s) ignored: only the lab's files are read"])]
    fn a_tar_gz_bomb_stops_at_the_total_limit(#[case] name: &str, #[case] first_problems: &[&str]) {
        let temp = TempDir::new().unwrap();
        let header = tar_header(name.as_bytes(), tar::EntryType::Regular, GIB, None);
        let mut archive = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]; // gzip header
        archive.extend(deflate_of_zeros(header.as_bytes(), GIB));
        assert!(archive.len() < 2 << 20, "{} bytes", archive.len());
        let source = submit(temp.path(), "alice", Pack::TarGz, &[]);
        fs::write(&source.path, archive).unwrap();
        let started = Instant::now();
        let loaded = load_default(&source);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert!(loaded.files.is_empty());
        let mut expected: Vec<&str> = first_problems.to_vec();
        expected.push("the submission holds more than 16 MiB of data: reading stopped there");
        assert_eq!(loaded.problems, expected);
    }
}

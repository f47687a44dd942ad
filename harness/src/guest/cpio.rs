//! A deterministic writer for the `newc` cpio format the kernel unpacks as an initramfs.
//!
//! Entries are kept in a sorted map, so the archive's order does not depend on the order they
//! were added in; every entry is owned by root, carries the same mtime and gets its inode number
//! from its position. Device nodes are written as archive entries, so no root is needed.

use std::collections::BTreeMap;

const MAGIC: &str = "070701";
const TRAILER: &str = "TRAILER!!!";
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Dir,
    File(Vec<u8>),
    Symlink(String),
    CharDevice { major: u32, minor: u32 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    permissions: u32,
    node: Node,
}

/// A file tree to be written as a newc archive. Paths are relative (`bin/sh`); missing parent
/// directories are created with mode 0755.
#[derive(Debug, Clone, Default)]
pub struct CpioTree {
    entries: BTreeMap<String, Entry>,
}

impl CpioTree {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn dir(&mut self, path: &str, permissions: u32) {
        self.insert(path, permissions, Node::Dir);
    }

    pub fn file(&mut self, path: &str, permissions: u32, bytes: Vec<u8>) {
        self.insert(path, permissions, Node::File(bytes));
    }

    pub fn symlink(&mut self, path: &str, target: &str) {
        self.insert(path, 0o777, Node::Symlink(target.to_string()));
    }

    pub fn char_device(&mut self, path: &str, permissions: u32, major: u32, minor: u32) {
        self.insert(path, permissions, Node::CharDevice { major, minor });
    }

    pub fn contains(&self, path: &str) -> bool {
        self.entries.contains_key(path.trim_matches('/'))
    }

    fn insert(&mut self, path: &str, permissions: u32, node: Node) {
        let path = path.trim_matches('/');
        let mut parent = path;
        while let Some((up, _)) = parent.rsplit_once('/') {
            self.entries.entry(up.to_string()).or_insert(Entry {
                permissions: 0o755,
                node: Node::Dir,
            });
            parent = up;
        }
        self.entries
            .insert(path.to_string(), Entry { permissions, node });
    }

    /// The archive, every entry stamped with `mtime`.
    pub fn write(&self, mtime: u64) -> Vec<u8> {
        let mut out = Vec::new();
        for (index, (path, entry)) in self.entries.iter().enumerate() {
            let (kind, data, nlink, rdev): (u32, &[u8], u32, (u32, u32)) = match &entry.node {
                Node::Dir => (S_IFDIR, &[], 2, (0, 0)),
                Node::File(bytes) => (S_IFREG, bytes, 1, (0, 0)),
                Node::Symlink(target) => (S_IFLNK, target.as_bytes(), 1, (0, 0)),
                Node::CharDevice { major, minor } => (S_IFCHR, &[], 1, (*major, *minor)),
            };
            let header = Header {
                ino: index as u64 + 1,
                mode: kind | (entry.permissions & 0o7777),
                nlink,
                mtime,
                rdev,
            };
            push_entry(&mut out, &header, path, data);
        }
        let trailer = Header {
            ino: 0,
            mode: 0,
            nlink: 1,
            mtime: 0,
            rdev: (0, 0),
        };
        push_entry(&mut out, &trailer, TRAILER, &[]);
        out
    }
}

struct Header {
    ino: u64,
    mode: u32,
    nlink: u32,
    mtime: u64,
    rdev: (u32, u32),
}

fn push_entry(out: &mut Vec<u8>, header: &Header, name: &str, data: &[u8]) {
    let fields: [u64; 13] = [
        header.ino,
        u64::from(header.mode),
        0, // uid
        0, // gid
        u64::from(header.nlink),
        header.mtime,
        data.len() as u64,
        0, // devmajor
        0, // devminor
        u64::from(header.rdev.0),
        u64::from(header.rdev.1),
        name.len() as u64 + 1,
        0, // check
    ];
    out.extend_from_slice(MAGIC.as_bytes());
    for field in fields {
        // newc fields are 8 hex digits; values are truncated to 32 bits like every cpio does.
        out.extend_from_slice(format!("{:08x}", field & 0xffff_ffff).as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
    out.extend_from_slice(data);
    pad4(out);
}

fn pad4(out: &mut Vec<u8>) {
    while out.len() % 4 != 0 {
        out.push(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One entry read back from an archive.
    #[derive(Debug, PartialEq, Eq)]
    struct Parsed {
        name: String,
        mode: u32,
        rdev: (u32, u32),
        data: Vec<u8>,
    }

    fn parsed(name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) -> Parsed {
        Parsed {
            name: name.into(),
            mode,
            rdev,
            data: data.to_vec(),
        }
    }

    /// Parses a newc archive back into entries: a reader just strict enough to check the
    /// writer against the format.
    fn parse(mut bytes: &[u8]) -> Vec<Parsed> {
        let start = bytes.as_ptr() as usize;
        let mut entries = Vec::new();
        loop {
            assert_eq!((bytes.as_ptr() as usize - start) % 4, 0, "entry aligned");
            assert_eq!(&bytes[..6], b"070701");
            let field = |i: usize| {
                u32::from_str_radix(
                    std::str::from_utf8(&bytes[6 + 8 * i..14 + 8 * i]).expect("ascii"),
                    16,
                )
                .expect("hex")
            };
            let (mode, size, rdev, namesize) = (
                field(1),
                field(6) as usize,
                (field(9), field(10)),
                field(11) as usize,
            );
            assert_eq!((field(2), field(3)), (0, 0), "owned by root");
            let name = std::str::from_utf8(&bytes[110..110 + namesize - 1])
                .expect("utf8")
                .to_string();
            assert_eq!(bytes[110 + namesize - 1], 0, "name NUL-terminated");
            let data_start = (110 + namesize).div_ceil(4) * 4;
            let data = bytes[data_start..data_start + size].to_vec();
            bytes = &bytes[(data_start + size).div_ceil(4) * 4..];
            if name == TRAILER {
                assert!(bytes.is_empty(), "nothing after the trailer");
                return entries;
            }
            entries.push(Parsed {
                name,
                mode,
                rdev,
                data,
            });
        }
    }

    #[test]
    fn writes_sorted_entries_with_parents_first() {
        let mut tree = CpioTree::new();
        tree.file("sbin/init", 0o755, b"#!/bin/sh\n".to_vec());
        tree.symlink("bin/sh", "busybox");
        tree.char_device("dev/console", 0o600, 5, 1);
        tree.dir("proc", 0o555);
        assert_eq!(
            parse(&tree.write(1_686_355_200)),
            vec![
                parsed("bin", 0o040755, (0, 0), b""),
                parsed("bin/sh", 0o120777, (0, 0), b"busybox"),
                parsed("dev", 0o040755, (0, 0), b""),
                parsed("dev/console", 0o020600, (5, 1), b""),
                parsed("proc", 0o040555, (0, 0), b""),
                parsed("sbin", 0o040755, (0, 0), b""),
                parsed("sbin/init", 0o100755, (0, 0), b"#!/bin/sh\n"),
            ]
        );
    }

    #[test]
    fn insertion_order_does_not_change_the_bytes() {
        let mut one = CpioTree::new();
        one.file("a/x", 0o644, b"1".to_vec());
        one.file("b", 0o644, b"22".to_vec());
        let mut two = CpioTree::new();
        two.file("b", 0o644, b"22".to_vec());
        two.file("a/x", 0o644, b"1".to_vec());
        assert_eq!(one.write(7), two.write(7));
        assert_ne!(one.write(7), one.write(8), "mtime is recorded");
    }

    #[test]
    fn header_layout_matches_newc() {
        let mut tree = CpioTree::new();
        tree.file("f", 0o644, b"abc".to_vec());
        let bytes = tree.write(0x10);
        let header = std::str::from_utf8(&bytes[..110]).expect("ascii header");
        let fields = [
            "070701", "00000001", "000081a4", "00000000", "00000000", "00000001", "00000010",
            "00000003", "00000000", "00000000", "00000000", "00000000", "00000002", "00000000",
        ];
        assert_eq!(
            header,
            fields.concat(),
            "magic, ino, mode, uid, gid, nlink, mtime, size, dev, rdev, namesize, check"
        );
        // 110 + "f\0" is already 4-aligned, so the data follows at once, then pads to 4.
        assert_eq!(&bytes[110..116], b"f\0abc\0");
    }
}

//! Test support for every reader of submissions: builds directories, zips and
//! `.tar.gz` files from a list of entries, and the hostile archives no honest
//! tool writes (a header with `..` in its path, a zip entry whose sizes and
//! CRC lie, a deflate bomb made in milliseconds), so each reader's tests and
//! the scan policy's run on the same inputs.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::symlink;
use std::path::Path;

use flate2::write::GzEncoder;
use flate2::{Compress, Compression, FlushCompress};
use zip::write::SimpleFileOptions;

use super::{load, Limits, Loaded, Source, SourceKind};

pub(super) const SLOTS: &[&str] = &[
    "clone/cow.sh",
    "clone/full.sh",
    "clone/vm2.qemu",
    "clone/vm2.guest",
    "socket/vm1.qemu",
    "socket/vm2.qemu",
    "socket/vm1.guest",
    "socket/vm2.guest",
    "tap/setup.sh",
    "tap/vm1.qemu",
    "tap/vm2.qemu",
    "tap/vm1.guest",
    "tap/vm2.guest",
    "tap/cleanup.sh",
];

/// One entry of a submission to build.
#[derive(Debug, Clone, Copy)]
pub(super) enum Item<'a> {
    File(&'a str, &'a [u8]),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
}
pub(super) use Item::{Dir, File as F, Symlink};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pack {
    Directory,
    Zip,
    TarGz,
    Tgz,
}

/// Builds `items` as `student`'s submission of kind `pack` in `dir`.
pub(super) fn submit(dir: &Path, student: &str, pack: Pack, items: &[Item]) -> Source {
    let (name, kind) = match pack {
        Pack::Directory => (student.to_string(), SourceKind::Directory),
        Pack::Zip => (format!("{student}.zip"), SourceKind::Zip),
        Pack::TarGz => (format!("{student}.tar.gz"), SourceKind::TarGz),
        Pack::Tgz => (format!("{student}.tgz"), SourceKind::TarGz),
    };
    let path = dir.join(name);
    match pack {
        Pack::Directory => build_dir(&path, items),
        Pack::Zip => fs::write(&path, zip_of(items)).unwrap(),
        Pack::TarGz | Pack::Tgz => fs::write(&path, tar_gz_of(items)).unwrap(),
    }
    Source {
        student: student.to_string(),
        path,
        kind,
    }
}

pub(super) fn build_dir(root: &Path, items: &[Item]) {
    fs::create_dir_all(root).unwrap();
    for item in items {
        match *item {
            F(path, content) => {
                let path = root.join(path);
                fs::create_dir_all(path.parent().unwrap()).unwrap();
                fs::write(path, content).unwrap();
            }
            Dir(path) => fs::create_dir_all(root.join(path)).unwrap(),
            Symlink(path, target) => {
                let path = root.join(path);
                fs::create_dir_all(path.parent().unwrap()).unwrap();
                symlink(target, path).unwrap();
            }
        }
    }
}

pub(super) fn zip_of(items: &[Item]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for item in items {
        match *item {
            F(path, content) => {
                writer.start_file(path, options).unwrap();
                writer.write_all(content).unwrap();
            }
            Dir(path) => writer.add_directory(path, options).unwrap(),
            Symlink(path, target) => writer.add_symlink(path, target, options).unwrap(),
        }
    }
    writer.finish().unwrap().into_inner()
}

pub(super) fn tar_gz_of(items: &[Item]) -> Vec<u8> {
    let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
    for item in items {
        let (path, entry_type, link, content): (&str, _, _, &[u8]) = match *item {
            F(path, content) => (path, tar::EntryType::Regular, None, content),
            Dir(path) => (path, tar::EntryType::Directory, None, b""),
            Symlink(path, target) => (path, tar::EntryType::Symlink, Some(target), b""),
        };
        let header = tar_header(path.as_bytes(), entry_type, content.len() as u64, link);
        builder.append(&header, content).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

/// A header with `path` written as is: `tar::Builder`'s own setters
/// refuse `..` and absolute paths, which hostile archives hold.
pub(super) fn tar_header(
    path: &[u8],
    entry_type: tar::EntryType,
    size: u64,
    link: Option<&str>,
) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.as_gnu_mut().unwrap().name[..path.len()].copy_from_slice(path);
    header.set_entry_type(entry_type);
    header.set_size(size);
    header.set_mode(0o644);
    if let Some(link) = link {
        header.set_link_name(link).unwrap();
    }
    header.set_cksum();
    header
}

pub(super) fn load_default(source: &Source) -> Loaded {
    load(source, SLOTS, &Limits::default()).unwrap()
}

pub(super) fn files(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(slot, text)| (slot.to_string(), text.to_string()))
        .collect()
}

pub(super) const COW: &[u8] = b"qemu-img create -f qcow2 -b base.qcow2 -F qcow2 vm2.qcow2\n";
pub(super) const VM1: &[u8] = b"-netdev socket,id=n0,listen=:1234\n";

pub(super) const GIB: u64 = 1 << 30;

/// A raw deflate stream of `prefix` then `zeros` zero bytes (a multiple
/// of 1 MiB), made in milliseconds: one compressed MiB of zeros repeated.
/// A sync-flushed block ends byte-aligned and its back-references reach
/// only zeros, so copies of it chain into one valid stream.
pub(super) fn deflate_of_zeros(prefix: &[u8], zeros: u64) -> Vec<u8> {
    const CHUNK: u64 = 1 << 20;
    let mut stream = sync_flushed(prefix);
    let chunk = sync_flushed(&vec![0; CHUNK as usize]);
    for _ in 0..zeros / CHUNK {
        stream.extend_from_slice(&chunk);
    }
    stream.extend_from_slice(&[0x03, 0x00]); // an empty final block
    stream
}

fn sync_flushed(data: &[u8]) -> Vec<u8> {
    let mut compress = Compress::new(Compression::best(), false);
    let mut out = Vec::with_capacity(data.len() + 1024);
    compress
        .compress_vec(data, &mut out, FlushCompress::Sync)
        .unwrap();
    assert_eq!(compress.total_in(), data.len() as u64);
    out
}

/// One zip entry, written byte by byte, so its sizes and CRC can lie.
pub(super) struct RawZipEntry<'a> {
    pub(super) name: &'a str,
    pub(super) method: u16,
    pub(super) data: Vec<u8>,
    pub(super) crc: u32,
    pub(super) declared_size: u32,
}

impl<'a> RawZipEntry<'a> {
    /// `data` stored uncompressed, its size and CRC true.
    pub(super) fn stored(name: &'a str, data: &[u8]) -> Self {
        RawZipEntry {
            name,
            method: 0,
            data: data.to_vec(),
            crc: crc32(data),
            declared_size: data.len() as u32,
        }
    }
}

pub(super) fn raw_zip(entries: &[RawZipEntry]) -> Vec<u8> {
    const DOS_DATE_1980_01_01: u16 = 0x21;
    const UNIX_REGULAR_FILE: u32 = 0o100_644 << 16;
    let mut zip = Vec::new();
    let mut central = Vec::new();
    for entry in entries {
        let offset = zip.len() as u32;
        let name = entry.name.as_bytes();
        let sizes = |out: &mut Vec<u8>| {
            out.extend_from_slice(&entry.method.to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes()); // time
            out.extend_from_slice(&DOS_DATE_1980_01_01.to_le_bytes());
            out.extend_from_slice(&entry.crc.to_le_bytes());
            out.extend_from_slice(&(entry.data.len() as u32).to_le_bytes());
            out.extend_from_slice(&entry.declared_size.to_le_bytes());
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes()); // extra field
        };
        zip.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        zip.extend_from_slice(&20u16.to_le_bytes()); // version needed
        zip.extend_from_slice(&0u16.to_le_bytes()); // flags
        sizes(&mut zip);
        zip.extend_from_slice(name);
        zip.extend_from_slice(&entry.data);

        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&(3u16 << 8 | 20).to_le_bytes()); // made by Unix
        central.extend_from_slice(&20u16.to_le_bytes());
        central.extend_from_slice(&0u16.to_le_bytes());
        sizes(&mut central);
        central.extend_from_slice(&0u16.to_le_bytes()); // comment
        central.extend_from_slice(&0u16.to_le_bytes()); // disk
        central.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
        central.extend_from_slice(&UNIX_REGULAR_FILE.to_le_bytes());
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name);
    }
    let central_offset = zip.len() as u32;
    zip.extend_from_slice(&central);
    zip.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    zip.extend_from_slice(&[0; 4]); // disk numbers
    zip.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    zip.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    zip.extend_from_slice(&(central.len() as u32).to_le_bytes());
    zip.extend_from_slice(&central_offset.to_le_bytes());
    zip.extend_from_slice(&0u16.to_le_bytes()); // comment
    zip
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = flate2::Crc::new();
    crc.update(data);
    crc.sum()
}

#[test]
fn the_bomb_stream_inflates_to_its_prefix_and_zeros() {
    let stream = deflate_of_zeros(b"head", 3 << 20);
    let mut inflated = Vec::new();
    flate2::read::DeflateDecoder::new(&stream[..])
        .read_to_end(&mut inflated)
        .unwrap();
    assert_eq!(inflated.len(), 4 + (3 << 20));
    assert_eq!(&inflated[..4], b"head");
    assert!(inflated[4..].iter().all(|byte| *byte == 0));
}

//! Reading Debian packages without dpkg: an `ar` archive whose `data.tar.xz` holds the files.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::GuestError;

/// A regular file or symlink taken from a package's data archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebFile {
    /// Relative path inside the package, without the leading `./`.
    pub path: PathBuf,
    pub mode: u32,
    pub content: Content,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    Bytes(Vec<u8>),
    Symlink(PathBuf),
}

/// The regular files and symlinks of `deb` whose path `wanted` accepts, in archive order.
pub fn read_files(
    deb: &Path,
    wanted: &mut dyn FnMut(&Path) -> bool,
) -> Result<Vec<DebFile>, GuestError> {
    let bad = |reason: String| GuestError::BadPackage {
        path: deb.to_path_buf(),
        reason,
    };
    let mut found = Vec::new();
    with_data_tar(deb, &mut |tar| {
        let mut archive = tar::Archive::new(tar);
        for entry in archive.entries().map_err(|e| bad(e.to_string()))? {
            let mut entry = entry.map_err(|e| bad(e.to_string()))?;
            let path = relative(&entry.path().map_err(|e| bad(e.to_string()))?);
            let kind = entry.header().entry_type();
            if !(kind.is_file() || kind.is_symlink()) || !wanted(&path) {
                continue;
            }
            let mode = entry.header().mode().map_err(|e| bad(e.to_string()))?;
            let content = if kind.is_symlink() {
                let target = entry
                    .link_name()
                    .map_err(|e| bad(e.to_string()))?
                    .ok_or_else(|| bad(format!("symlink {} has no target", path.display())))?;
                Content::Symlink(target.into_owned())
            } else {
                let mut bytes = Vec::with_capacity(entry.size() as usize);
                entry
                    .read_to_end(&mut bytes)
                    .map_err(|e| bad(e.to_string()))?;
                Content::Bytes(bytes)
            };
            found.push(DebFile {
                path,
                mode,
                content,
            });
        }
        Ok(())
    })?;
    Ok(found)
}

/// Unpacks the whole data archive of `deb` into `dest` (used for the pinned build tools).
pub fn unpack(deb: &Path, dest: &Path) -> Result<(), GuestError> {
    with_data_tar(deb, &mut |tar| {
        tar::Archive::new(tar)
            .unpack(dest)
            .map_err(|e| GuestError::BadPackage {
                path: deb.to_path_buf(),
                reason: format!("unpacking into {}: {e}", dest.display()),
            })
    })
}

/// Finds the `data.tar.*` member and hands its decompressed stream to `use_tar`.
fn with_data_tar(
    deb: &Path,
    use_tar: &mut dyn FnMut(&mut dyn Read) -> Result<(), GuestError>,
) -> Result<(), GuestError> {
    let bad = |reason: String| GuestError::BadPackage {
        path: deb.to_path_buf(),
        reason,
    };
    let file = File::open(deb).map_err(|e| GuestError::io(deb, e))?;
    let mut archive = ar::Archive::new(file);
    while let Some(member) = archive.next_entry() {
        let member = member.map_err(|e| bad(e.to_string()))?;
        let name = String::from_utf8_lossy(member.header().identifier()).into_owned();
        match name.as_str() {
            "data.tar.xz" => return use_tar(&mut xz2::read::XzDecoder::new(member)),
            "data.tar" => return use_tar(&mut { member }),
            other if other.starts_with("data.tar") => {
                return Err(bad(format!(
                    "member {other} uses a compression labcheck does not read (only .xz)"
                )))
            }
            _ => continue,
        }
    }
    Err(bad("no data.tar member".into()))
}

fn relative(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| matches!(c, std::path::Component::Normal(_)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A minimal .deb: `debian-binary`, an empty control archive and an xz data archive.
    fn make_deb(dir: &Path, data_member: &str, files: &[(&str, &[u8])]) -> PathBuf {
        let mut tar = tar::Builder::new(Vec::new());
        for (path, bytes) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o755);
            header.set_cksum();
            tar.append_data(&mut header, path, *bytes)
                .expect("tar entry");
        }
        let mut link = tar::Header::new_gnu();
        link.set_entry_type(tar::EntryType::Symlink);
        link.set_size(0);
        link.set_mode(0o777);
        tar.append_link(&mut link, "./usr/bin/mcopy", "mtools")
            .expect("tar link");
        let tar = tar.into_inner().expect("tar done");
        let mut xz = xz2::write::XzEncoder::new(Vec::new(), 1);
        xz.write_all(&tar).expect("xz");
        let data = xz.finish().expect("xz done");

        let path = dir.join("demo.deb");
        let mut deb = ar::Builder::new(File::create(&path).expect("create"));
        for (name, bytes) in [
            ("debian-binary", b"2.0\n".to_vec()),
            ("control.tar.xz", Vec::new()),
            (data_member, data),
        ] {
            let header = ar::Header::new(name.as_bytes().to_vec(), bytes.len() as u64);
            deb.append(&header, &bytes[..]).expect("ar member");
        }
        path
    }

    #[test]
    fn reads_selected_files_and_symlinks() {
        let dir = tempfile::tempdir().expect("temp dir");
        let deb = make_deb(
            dir.path(),
            "data.tar.xz",
            &[("./bin/busybox", b"BB"), ("./usr/share/doc/x", b"doc")],
        );
        let files = read_files(&deb, &mut |p| !p.starts_with("usr/share")).expect("read");
        assert_eq!(
            files,
            vec![
                DebFile {
                    path: "bin/busybox".into(),
                    mode: 0o755,
                    content: Content::Bytes(b"BB".to_vec())
                },
                DebFile {
                    path: "usr/bin/mcopy".into(),
                    mode: 0o777,
                    content: Content::Symlink("mtools".into())
                },
            ]
        );
    }

    #[test]
    fn other_compressions_are_named_in_the_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let deb = make_deb(dir.path(), "data.tar.zst", &[]);
        let err = read_files(&deb, &mut |_| true).expect_err("zst unsupported");
        assert!(err.to_string().contains("data.tar.zst"), "{err}");
    }
}

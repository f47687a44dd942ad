//! Reading Debian packages without dpkg: an `ar` archive whose `data.tar.xz` holds the files.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::GuestError;

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

/// Unpacks the `.tar.xz` file at `inner` inside the data archive of `deb` into `dest`, streamed
/// (Debian's kernel source is a 140 MB tarball inside its package, 1.5 GB unpacked).
pub fn unpack_nested_tar_xz(deb: &Path, inner: &str, dest: &Path) -> Result<(), GuestError> {
    let bad = |reason: String| GuestError::BadPackage {
        path: deb.to_path_buf(),
        reason,
    };
    with_data_tar(deb, &mut |tar| {
        let mut archive = tar::Archive::new(tar);
        for entry in archive.entries().map_err(|e| bad(e.to_string()))? {
            let entry = entry.map_err(|e| bad(e.to_string()))?;
            let path = entry.path().map_err(|e| bad(e.to_string()))?;
            if relative(&path) != Path::new(inner) {
                continue;
            }
            return tar::Archive::new(xz2::read::XzDecoder::new(entry))
                .unpack(dest)
                .map_err(|e| bad(format!("unpacking {inner} into {}: {e}", dest.display())));
        }
        Err(bad(format!("no {inner} in the package")))
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

    fn xz(bytes: &[u8]) -> Vec<u8> {
        let mut xz = xz2::write::XzEncoder::new(Vec::new(), 1);
        xz.write_all(bytes).expect("xz");
        xz.finish().expect("xz done")
    }

    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        for (path, bytes) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(&mut header, path, *bytes)
                .expect("tar entry");
        }
        tar.into_inner().expect("tar done")
    }

    /// A minimal .deb: `debian-binary`, an empty control archive and an xz data archive.
    fn make_deb(dir: &Path, data_member: &str, files: &[(&str, &[u8])]) -> PathBuf {
        let path = dir.join("demo.deb");
        let mut deb = ar::Builder::new(File::create(&path).expect("create"));
        for (name, bytes) in [
            ("debian-binary", b"2.0\n".to_vec()),
            ("control.tar.xz", Vec::new()),
            (data_member, xz(&tar_of(files))),
        ] {
            let header = ar::Header::new(name.as_bytes().to_vec(), bytes.len() as u64);
            deb.append(&header, &bytes[..]).expect("ar member");
        }
        path
    }

    #[test]
    fn unpacks_a_tarball_inside_the_package() {
        let dir = tempfile::tempdir().expect("temp dir");
        let inner = xz(&tar_of(&[("src-1.0/Makefile", b"all:\n")]));
        let deb = make_deb(
            dir.path(),
            "data.tar.xz",
            &[
                ("./usr/share/doc/x", b"doc"),
                ("./usr/src/src-1.0.tar.xz", &inner),
            ],
        );
        let dest = dir.path().join("out");
        unpack_nested_tar_xz(&deb, "usr/src/src-1.0.tar.xz", &dest).expect("unpacked");
        assert_eq!(
            std::fs::read(dest.join("src-1.0/Makefile")).expect("file"),
            b"all:\n"
        );
    }

    #[test]
    fn a_missing_inner_tarball_is_named() {
        let dir = tempfile::tempdir().expect("temp dir");
        let deb = make_deb(dir.path(), "data.tar.xz", &[("./usr/share/doc/x", b"doc")]);
        let err = unpack_nested_tar_xz(&deb, "usr/src/src-1.0.tar.xz", dir.path())
            .expect_err("nothing to unpack");
        assert!(
            err.to_string().contains("no usr/src/src-1.0.tar.xz"),
            "{err}"
        );
    }

    #[test]
    fn other_compressions_are_named_in_the_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let deb = make_deb(dir.path(), "data.tar.zst", &[]);
        let err = unpack(&deb, dir.path()).expect_err("zst unsupported");
        assert!(err.to_string().contains("data.tar.zst"), "{err}");
    }
}

//! Downloads of pinned packages into the cache, verified by sha256 before they are kept.

use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::lock::LockedPackage;
use super::GuestError;

/// Where a verified package lives in the cache: named by its hash, so a changed pin never
/// reuses a stale file.
pub fn cached_path(downloads: &Path, package: &LockedPackage) -> PathBuf {
    downloads.join(format!("{}.deb", package.sha256))
}

/// The package's file in `downloads`, fetched from `mirror` if it is not there yet.
/// `mirror` is asked for only when a download is needed, so a full cache works offline.
pub fn ensure_downloaded(
    downloads: &Path,
    package: &LockedPackage,
    mirror: &mut dyn FnMut() -> Result<String, GuestError>,
    progress: &mut dyn FnMut(&str),
) -> Result<PathBuf, GuestError> {
    let target = cached_path(downloads, package);
    if target.is_file() {
        return Ok(target);
    }
    let url = format!("{}/{}", mirror()?, package.path);
    progress(&format!(
        "downloading {} {} ({} bytes)",
        package.name, package.version, package.size
    ));
    std::fs::create_dir_all(downloads).map_err(|e| GuestError::io(downloads, e))?;
    let response = ureq::get(&url).call().map_err(|e| GuestError::Download {
        package: package.name.clone(),
        url: url.clone(),
        reason: e.to_string(),
    })?;
    save_verified(response.into_reader(), downloads, package, &target)?;
    Ok(target)
}

/// Streams `body` into a temp file beside `target`, and renames it into place only when its
/// sha256 matches the lock: a bad or interrupted download never becomes a cached file.
pub fn save_verified(
    mut body: impl Read,
    downloads: &Path,
    package: &LockedPackage,
    target: &Path,
) -> Result<(), GuestError> {
    let mut temp =
        tempfile::NamedTempFile::new_in(downloads).map_err(|e| GuestError::io(downloads, e))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let n = body.read(&mut buffer).map_err(|e| GuestError::Download {
            package: package.name.clone(),
            url: package.path.clone(),
            reason: e.to_string(),
        })?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        temp.write_all(&buffer[..n])
            .map_err(|e| GuestError::io(temp.path(), e))?;
    }
    let actual = hex::encode(hasher.finalize());
    if actual != package.sha256 {
        return Err(GuestError::Checksum {
            package: package.name.clone(),
            expected: package.sha256.clone(),
            actual,
        });
    }
    temp.persist(target)
        .map_err(|e| GuestError::io(target, e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package_for(bytes: &[u8]) -> LockedPackage {
        LockedPackage {
            name: "demo".into(),
            version: "1".into(),
            path: "pool/main/d/demo/demo_1_all.deb".into(),
            sha256: hex::encode(Sha256::digest(bytes)),
            size: bytes.len() as u64,
        }
    }

    #[test]
    fn good_bytes_are_kept_under_their_hash() {
        let dir = tempfile::tempdir().expect("temp dir");
        let package = package_for(b"hello");
        let target = cached_path(dir.path(), &package);
        save_verified(&b"hello"[..], dir.path(), &package, &target).expect("verified");
        assert_eq!(std::fs::read(&target).expect("kept"), b"hello");
    }

    #[test]
    fn bad_bytes_are_refused_and_leave_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let package = package_for(b"hello");
        let target = cached_path(dir.path(), &package);
        let err = save_verified(&b"tampered"[..], dir.path(), &package, &target)
            .expect_err("checksum mismatch");
        let message = err.to_string();
        assert!(
            message.contains("demo") && message.contains(&package.sha256),
            "{message}"
        );
        assert!(
            message.contains(&hex::encode(Sha256::digest(b"tampered"))),
            "{message}"
        );
        let left: Vec<_> = std::fs::read_dir(dir.path()).expect("list").collect();
        assert!(left.is_empty(), "nothing may be left behind: {left:?}");
    }

    #[test]
    fn a_cached_file_needs_no_mirror() {
        let dir = tempfile::tempdir().expect("temp dir");
        let package = package_for(b"cached");
        std::fs::write(cached_path(dir.path(), &package), b"cached").expect("seed");
        let mut no_mirror = || -> Result<String, GuestError> { panic!("mirror must not be asked") };
        let path = ensure_downloaded(dir.path(), &package, &mut no_mirror, &mut |_| {})
            .expect("served from cache");
        assert_eq!(path, cached_path(dir.path(), &package));
    }
}

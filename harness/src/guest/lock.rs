//! The package lock: which Debian packages the guest is made of, pinned by sha256.

use serde::Deserialize;
use std::path::Path;

use super::GuestError;

/// One pinned package: where it lives in the archive and what its bytes must hash to.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedPackage {
    pub name: String,
    pub version: String,
    /// Relative to the archive root, e.g. `pool/main/b/busybox/…deb`.
    pub path: String,
    pub sha256: String,
    pub size: u64,
}

/// The parsed `packages.lock`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    /// Timestamp given to every file the build writes, so outputs do not depend on the clock.
    pub source_date_epoch: u64,
    #[serde(rename = "package")]
    pub packages: Vec<LockedPackage>,
}

impl Lock {
    pub fn parse(text: &str, origin: &Path) -> Result<Self, GuestError> {
        let lock: Lock = toml::from_str(text).map_err(|e| GuestError::Lock {
            path: origin.to_path_buf(),
            reason: e.to_string(),
        })?;
        lock.validate(origin)?;
        Ok(lock)
    }

    fn validate(&self, origin: &Path) -> Result<(), GuestError> {
        let bad = |reason: String| GuestError::Lock {
            path: origin.to_path_buf(),
            reason,
        };
        for package in &self.packages {
            let is_hex = package.sha256.len() == 64
                && package
                    .sha256
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
            if !is_hex {
                return Err(bad(format!(
                    "package {}: sha256 must be 64 lowercase hex digits, got {:?}",
                    package.name, package.sha256
                )));
            }
            if package.path.contains("://") || package.path.starts_with('/') {
                return Err(bad(format!(
                    "package {}: path must be relative to the archive root, got {:?}",
                    package.name, package.path
                )));
            }
        }
        Ok(())
    }

    /// The package called `name`, or an error naming the lock file.
    pub fn package(&self, name: &str) -> Result<&LockedPackage, GuestError> {
        self.packages
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| GuestError::MissingPackage {
                name: name.to_string(),
            })
    }

    /// The one package whose name starts with `prefix` (the kernel's name carries its ABI).
    pub fn package_with_prefix(&self, prefix: &str) -> Result<&LockedPackage, GuestError> {
        let mut matches = self.packages.iter().filter(|p| p.name.starts_with(prefix));
        match (matches.next(), matches.next()) {
            (Some(found), None) => Ok(found),
            _ => Err(GuestError::MissingPackage {
                name: format!("exactly one {prefix}*"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    const SAMPLE: &str = r#"
source_date_epoch = 1686355200

[[package]]
name = "busybox-static"
version = "1:1.35.0-4+deb12u1+b1"
path = "pool/main/b/busybox/busybox-static_1.35.0-4%2bdeb12u1%2bb1_amd64.deb"
sha256 = "3d3fdbe91d4660c873e14b092c213fe81c1da6362daa236eb25d0171eb108744"
size = 928188

[[package]]
name = "linux-image-6.1.0-50-amd64"
version = "6.1.176-1"
path = "pool/main/l/linux-signed-amd64/linux-image-6.1.0-50-amd64_6.1.176-1_amd64.deb"
sha256 = "7b5597492a0a65aee61985a492e6bcc3f2cde830072a0e3b3d8c7e1b90279bd3"
size = 70305560
"#;

    fn origin() -> PathBuf {
        PathBuf::from("packages.lock")
    }

    #[test]
    fn parses_packages_and_epoch() {
        let lock = Lock::parse(SAMPLE, &origin()).expect("sample parses");
        assert_eq!(lock.source_date_epoch, 1_686_355_200);
        assert_eq!(lock.packages.len(), 2);
        let busybox = lock.package("busybox-static").expect("busybox present");
        assert_eq!(busybox.size, 928_188);
        assert!(busybox.path.starts_with("pool/main/b/busybox/"));
        let kernel = lock
            .package_with_prefix("linux-image-")
            .expect("one kernel");
        assert_eq!(kernel.version, "6.1.176-1");
    }

    #[test]
    fn missing_package_is_named() {
        let lock = Lock::parse(SAMPLE, &origin()).expect("sample parses");
        let err = lock.package("mtools").expect_err("not in the sample");
        assert!(err.to_string().contains("mtools"), "{err}");
    }

    #[test]
    fn the_committed_lock_parses() {
        let path = super::super::lock_path();
        let text = std::fs::read_to_string(&path).expect("lock file readable");
        let lock = Lock::parse(&text, &path).expect("committed lock parses");
        for name in super::super::SMALL_PACKAGES {
            lock.package(name).expect("package pinned");
        }
        lock.package_with_prefix(super::super::KERNEL_SOURCE_PREFIX)
            .expect("one kernel source pinned");
    }

    #[rstest::rstest]
    #[case::uppercase_hash(
        "3D3FDBE91D4660C873E14B092C213FE81C1DA6362DAA236EB25D0171EB108744",
        "pool/x.deb",
        "sha256"
    )]
    #[case::short_hash("abc", "pool/x.deb", "sha256")]
    #[case::absolute_url(
        "3d3fdbe91d4660c873e14b092c213fe81c1da6362daa236eb25d0171eb108744",
        "http://mirror.example/debian/pool/x.deb",
        "relative"
    )]
    fn rejects_bad_entries(#[case] sha256: &str, #[case] path: &str, #[case] complaint: &str) {
        let text = format!(
            "source_date_epoch = 1\n[[package]]\nname = \"x\"\nversion = \"1\"\npath = \"{path}\"\nsha256 = \"{sha256}\"\nsize = 1\n"
        );
        let err = Lock::parse(&text, &origin()).expect_err("bad entry rejected");
        assert!(err.to_string().contains(complaint), "{err}");
    }
}

//! The built-in guest: pinned Debian packages made into an ISO, a disk and direct-boot artifacts.
//!
//! labcheck has no Alpine ISO and no network at run time, so it builds a small Linux guest from
//! the Debian bookworm packages pinned in `fixtures/guest/packages.lock`: the kernel's source, a
//! static busybox, isolinux/syslinux, and the build tools mtools and dosfstools. Packages are
//! fetched by plain HTTP from the machine's Debian mirror, checked by sha256 and cached; the
//! build tools run from the cache, so neither root nor apt is needed for them. The kernel is
//! compiled here, once per configuration (`kernel`: `fixtures/guest/kernel.config`), with the
//! host's compiler.
//!
//! One initramfs (busybox, the lab's kernel modules, a root shell on ttyS0, labcheck's control
//! shell on ttyS1 when the VM has that port) in three forms: `guest.iso` (isolinux, stands in for
//! the Alpine ISO), `disk.qcow2` (syslinux on FAT, stands in for "the disk of VM1"; it keeps the
//! guest's hostname), and `vmlinux` + `initramfs` for direct boot with `-kernel`, which skips the
//! kernel's own decompression.
//!
//! # Determinism
//!
//! Building twice from the same lock, kernel configuration and compiler gives byte-identical
//! outputs:
//! - every timestamp is the lock's `source_date_epoch`;
//! - the kernel is compiled with a fixed build environment (`kernel`);
//! - the initramfs is written by our own newc writer (`cpio`): entries sorted by path, owned by
//!   root, inode numbers by position, device nodes as entries;
//! - the ISO is written by our own ISO 9660 writer (`iso9660`) whose layout depends only on the
//!   files, with fixed dates;
//! - the FAT disk is made by `mkfs.fat --invariant` with a fixed volume id and by mtools honouring
//!   `SOURCE_DATE_EPOCH` in UTC, from staged files stamped with the epoch; `qemu-img convert`
//!   writes the same qcow2 for the same raw image;
//! - module load order comes from the modules' own `.modinfo`, sorted by a fixed walk;
//! - the ISO's and the disk's copies of the initramfs are compressed by our own LZ4 writer
//!   (`lz4`).
//!
//! # Boot speed
//!
//! Under TCG the guest's own work is what costs. The kernel has only what a lab VM uses
//! (`kernel`), with the disks' and file systems' drivers as modules; the guest loads only the
//! drivers of the hardware it has, and the rest when the kernel asks (`modules`); only the disk
//! form waits for its disk controller before the shell (`init::rcs`); no modprobe runs during
//! the kernel's own init (`init::KERNEL_DEFAULT_MODPROBE`).
//!
//! The ISO and the disk cost more than direct boot: isolinux or syslinux read the kernel and
//! the initramfs through the BIOS, about 10 MB/s from the CD and 4 MB/s from the IDE disk
//! (PIO, a sector at a time, under TCG), and the bzImage's stub unpacks the kernel. So the
//! kernel is LZ4-compressed, and the ISO and the disk carry the initramfs LZ4-compressed too,
//! which the kernel unpacks about as fast as it copies the uncompressed one.
//!
//! Shutting down costs nothing either: busybox init sleeps two seconds in every `poweroff` and
//! `reboot` (one after asking every process to end, one before the final call), which a lab VM
//! pays at every power-off and reboot step; the guest's own `poweroff`, `reboot` and `halt`
//! sync and unmount the disk and then call the kernel at once (`init::profile`).
//!
//! The artifact directory is named by a digest of the recipe version, the lock and the guest's
//! configuration texts, so a changed recipe never reuses an old build.

mod cpio;
mod deb;
mod fatdisk;
mod fetch;
mod init;
mod iso9660;
mod kernel;
mod lock;
mod lz4;
mod mirror;
mod modules;
mod tool;

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use kernel::{tool_present, BUILD_TOOLS as KERNEL_BUILD_TOOLS};
pub use lock::{Lock, LockedPackage};

/// Bumped whenever the recipe (what is built from the lock, and how) changes.
pub const RECIPE_VERSION: u32 = 11;

pub const CACHE_DIR_ENV: &str = "LABCHECK_CACHE_DIR";

/// Where to cache downloads and builds, and which mirror to download from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildOptions {
    pub cache_dir: PathBuf,
    /// A Debian mirror URL; `None` reads the machine's apt sources when a download is needed.
    pub mirror: Option<String>,
}

impl BuildOptions {
    /// Cache dir: `$LABCHECK_CACHE_DIR`, else `$XDG_CACHE_HOME/labcheck`, else
    /// `$HOME/.cache/labcheck`. Mirror: `$LABCHECK_DEBIAN_MIRROR` if set.
    pub fn from_env() -> Result<Self, GuestError> {
        let cache_dir = cache_dir_from(&|name| std::env::var_os(name))?;
        let mirror = std::env::var(mirror::MIRROR_ENV)
            .ok()
            .filter(|m| !m.is_empty());
        Ok(BuildOptions { cache_dir, mirror })
    }
}

/// The cache dir rules of [`BuildOptions::from_env`], over any source of variables.
fn cache_dir_from(var: &dyn Fn(&str) -> Option<std::ffi::OsString>) -> Result<PathBuf, GuestError> {
    let get = |name: &str| var(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    get(CACHE_DIR_ENV)
        .or_else(|| get("XDG_CACHE_HOME").map(|d| d.join("labcheck")))
        .or_else(|| get("HOME").map(|d| d.join(".cache/labcheck")))
        .ok_or(GuestError::NoCacheDir)
}

/// The built guest's files.
#[derive(Debug, Clone)]
pub struct Artifacts {
    /// `<cache>/guest/<digest>/`
    pub dir: PathBuf,
    /// `guest.iso`: boots with `-cdrom … -boot d`; its initramfs is LZ4-compressed.
    pub iso: PathBuf,
    /// `disk.qcow2`: boots with `-hda`; keeps the hostname (`vm1`) on its FAT volume.
    pub disk_qcow2: PathBuf,
    /// Uncompressed ELF kernel with a PVH entry, for `-kernel`.
    pub vmlinux: PathBuf,
    /// Uncompressed newc initramfs, for `-initrd`.
    pub initramfs: PathBuf,
    /// sha256 over the recipe version, the lock and the guest configuration.
    pub digest: String,
}

impl Artifacts {
    /// The kernel command line for direct boot (`-append`).
    pub const DIRECT_BOOT_APPEND: &'static str = init::KERNEL_APPEND;

    fn in_dir(dir: PathBuf, digest: String) -> Self {
        Artifacts {
            iso: dir.join("guest.iso"),
            disk_qcow2: dir.join("disk.qcow2"),
            vmlinux: dir.join("vmlinux"),
            initramfs: dir.join("initramfs"),
            dir,
            digest,
        }
    }

    fn all_present(&self) -> bool {
        [&self.iso, &self.disk_qcow2, &self.vmlinux, &self.initramfs]
            .iter()
            .all(|p| p.is_file())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    #[error("no cache directory: set {CACHE_DIR_ENV} (or XDG_CACHE_HOME or HOME)")]
    NoCacheDir,
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("package lock {}: {reason}", path.display())]
    Lock { path: PathBuf, reason: String },
    #[error("package {name} is not pinned in fixtures/guest/packages.lock; add it from `apt-get download --print-uris PACKAGE`")]
    MissingPackage { name: String },
    #[error("no Debian mirror to download from: set {env} to a Debian mirror URL (like http://HOST/debian), or configure an apt source for bookworm main in {}", searched.display())]
    NoMirror {
        env: &'static str,
        searched: PathBuf,
    },
    #[error("downloading {package} from {url}: {reason}")]
    Download {
        package: String,
        url: String,
        reason: String,
    },
    #[error("package {package}: sha256 mismatch, expected {expected}, got {actual}; the download was discarded (check the mirror, or the pin in the lock)")]
    Checksum {
        package: String,
        expected: String,
        actual: String,
    },
    #[error("{}: not a usable Debian package: {reason}", path.display())]
    BadPackage { path: PathBuf, reason: String },
    #[error("kernel: {0}")]
    Kernel(String),
    #[error("interrupted while compiling the guest's kernel; its work dir was deleted")]
    KernelCompileInterrupted,
    #[error("compiling the guest's kernel needs {missing}, which this machine lacks; install with `{install}` (or run `sudo cargo xtask setup`)")]
    BuildTools { missing: String, install: String },
    #[error("kernel modules: {0}")]
    Module(String),
    #[error("ISO image: {0}")]
    Iso(String),
    #[error("{tool} failed: {reason}")]
    Tool { tool: String, reason: String },
    #[error("the guest is not built (expected {}): run `cargo xtask fixtures`", dir.display())]
    NotBuilt { dir: PathBuf },
}

impl GuestError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        GuestError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// `fixtures/guest/packages.lock` in the source tree.
pub fn lock_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("fixtures/guest/packages.lock")
}

/// The already built guest for the current lock and recipe, without building anything.
pub fn locate(opts: &BuildOptions) -> Result<Artifacts, GuestError> {
    let artifacts = expected_artifacts(opts)?;
    if artifacts.all_present() {
        Ok(artifacts)
    } else {
        Err(GuestError::NotBuilt { dir: artifacts.dir })
    }
}

/// The guest, built first if it is missing or stale. The build happens in a temp dir renamed
/// into place, so an interrupted build leaves nothing half-made; a lock file keeps concurrent
/// callers from building twice.
pub fn ensure_built(
    opts: &BuildOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<Artifacts, GuestError> {
    let expected = expected_artifacts(opts)?;
    if expected.all_present() {
        return Ok(expected);
    }
    let guest_dir = opts.cache_dir.join("guest");
    std::fs::create_dir_all(&guest_dir).map_err(|e| GuestError::io(&guest_dir, e))?;
    let _guard = BuildLock::acquire(&guest_dir.join(".build.lock"))?;
    if expected.all_present() {
        return Ok(expected); // built by another process while we waited
    }
    progress(&format!(
        "building the guest into {}",
        expected.dir.display()
    ));
    let temp = tempfile::Builder::new()
        .prefix(".building-")
        .tempdir_in(&guest_dir)
        .map_err(|e| GuestError::io(&guest_dir, e))?;
    build_to(opts, temp.path(), progress)?;
    if expected.dir.exists() {
        // An incomplete directory from an older labcheck: replace it.
        std::fs::remove_dir_all(&expected.dir).map_err(|e| GuestError::io(&expected.dir, e))?;
    }
    let built = temp.keep();
    std::fs::rename(&built, &expected.dir).map_err(|e| GuestError::io(&expected.dir, e))?;
    Ok(expected)
}

/// Builds the guest's four files into `dir` (created if missing), using and filling the
/// download cache of `opts`. Returns the artifacts as they lie in `dir`.
pub fn build_to(
    opts: &BuildOptions,
    dir: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<Artifacts, GuestError> {
    let (lock, digest) = read_lock()?;
    std::fs::create_dir_all(dir).map_err(|e| GuestError::io(dir, e))?;
    let artifacts = Artifacts::in_dir(dir.to_path_buf(), digest);
    let packages = Packages::fetch(opts, &lock, progress)?;
    let epoch = lock.source_date_epoch;

    let config = read_kernel_config()?;
    let recipe = kernel::Recipe {
        source: &packages.kernel_source,
        deb: &packages.kernel_deb,
        config: &config,
        epoch,
    };
    let built = kernel::ensure_built(&opts.cache_dir, &recipe, progress)?;
    let kernel = read_kernel(&built)?;
    let busybox = packages.unpacked("busybox-static")?.join("bin/busybox");
    progress("writing the initramfs");
    let initramfs = initramfs(&busybox, &kernel)?.write(epoch);
    write(&artifacts.initramfs, &initramfs)?;
    std::fs::copy(built.vmlinux(), &artifacts.vmlinux)
        .map_err(|e| GuestError::io(&artifacts.vmlinux, e))?;

    // Direct boot loads its initramfs through fw_cfg at memory speed; isolinux and syslinux
    // read the ISO's and the disk's through the BIOS, where every byte saved counts (see `lz4`).
    let loader_initramfs = lz4::compress_legacy_frame(&initramfs);
    progress("writing the ISO");
    let iso = iso_image(&packages, &kernel.bzimage, &loader_initramfs, epoch)?;
    write(&artifacts.iso, &iso)?;

    progress("making the disk");
    let scratch = tempfile::tempdir_in(dir).map_err(|e| GuestError::io(dir, e))?;
    let raw = scratch.path().join("disk.raw");
    let tools = packages.tools()?;
    fatdisk::make_raw_disk(
        &tools,
        &disk_files(&kernel.bzimage, &loader_initramfs),
        epoch,
        scratch.path(),
        &raw,
    )?;
    fatdisk::convert_to_qcow2(&raw, &artifacts.disk_qcow2)?;
    Ok(artifacts)
}

fn expected_artifacts(opts: &BuildOptions) -> Result<Artifacts, GuestError> {
    let (_, digest) = read_lock()?;
    let dir = opts.cache_dir.join("guest").join(&digest);
    Ok(Artifacts::in_dir(dir, digest))
}

/// The lock and the digest naming its build: recipe version, lock bytes, guest configuration.
fn read_lock() -> Result<(Lock, String), GuestError> {
    let path = lock_path();
    let text = std::fs::read_to_string(&path).map_err(|e| GuestError::io(&path, e))?;
    let lock = Lock::parse(&text, &path)?;
    let mut hasher = Sha256::new();
    for part in [
        format!("labcheck guest recipe {RECIPE_VERSION}"),
        text,
        init::INITTAB.to_string(),
        init::FSTAB.to_string(),
        init::rcs(),
        init::rck(),
        init::control(),
        init::profile(),
        init::boot_loader_config("", "", &init::disk_append()),
        init::modprobe(),
        modules::WANTED.join(","),
        read_kernel_config()?,
    ] {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    Ok((lock, hex::encode(hasher.finalize())))
}

fn read_kernel_config() -> Result<String, GuestError> {
    let path = kernel::config_path();
    std::fs::read_to_string(&path).map_err(|e| GuestError::io(&path, e))
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), GuestError> {
    std::fs::write(path, bytes).map_err(|e| GuestError::io(path, e))
}

/// The verified packages: the kernel source's .deb, and the small packages unpacked in the cache.
struct Packages {
    kernel_source: LockedPackage,
    kernel_deb: PathBuf,
    unpacked: BTreeMap<String, PathBuf>,
}

/// The kernel source package's name, without its version (`linux-source-6.1`).
const KERNEL_SOURCE_PREFIX: &str = "linux-source-";

const SMALL_PACKAGES: &[&str] = &[
    "busybox-static",
    "isolinux",
    "syslinux-common",
    "syslinux",
    "mtools",
    "dosfstools",
];

impl Packages {
    fn fetch(
        opts: &BuildOptions,
        lock: &Lock,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Self, GuestError> {
        let downloads = opts.cache_dir.join("downloads");
        let mut resolved: Option<String> = None;
        let mut mirror = || -> Result<String, GuestError> {
            if resolved.is_none() {
                resolved = Some(mirror::resolve(
                    opts.mirror.as_deref(),
                    Path::new("/etc/apt"),
                )?);
            }
            Ok(resolved.clone().unwrap_or_default())
        };
        let kernel_source = lock.package_with_prefix(KERNEL_SOURCE_PREFIX)?.clone();
        let kernel_deb =
            fetch::ensure_downloaded(&downloads, &kernel_source, &mut mirror, progress)?;
        let mut unpacked = BTreeMap::new();
        for name in SMALL_PACKAGES {
            let package = lock.package(name)?;
            let deb = fetch::ensure_downloaded(&downloads, package, &mut mirror, progress)?;
            let dir = unpack_once(&opts.cache_dir.join("unpacked"), package, &deb)?;
            unpacked.insert(name.to_string(), dir);
        }
        Ok(Packages {
            kernel_source,
            kernel_deb,
            unpacked,
        })
    }

    fn unpacked(&self, name: &str) -> Result<&Path, GuestError> {
        self.unpacked
            .get(name)
            .map(PathBuf::as_path)
            .ok_or_else(|| GuestError::MissingPackage {
                name: name.to_string(),
            })
    }

    fn tools(&self) -> Result<fatdisk::Tools, GuestError> {
        Ok(fatdisk::Tools {
            mtools_bin: self.unpacked("mtools")?.join("usr/bin"),
            mkfs_fat: self.unpacked("dosfstools")?.join("sbin/mkfs.fat"),
            syslinux: self.unpacked("syslinux")?.join("usr/bin/syslinux"),
        })
    }

    fn file(&self, package: &str, path: &str) -> Result<Vec<u8>, GuestError> {
        let full = self.unpacked(package)?.join(path);
        std::fs::read(&full).map_err(|e| GuestError::io(&full, e))
    }
}

/// A small package unpacked under `<unpacked>/<sha256>/`, renamed into place when complete.
fn unpack_once(root: &Path, package: &LockedPackage, deb: &Path) -> Result<PathBuf, GuestError> {
    let dest = root.join(&package.sha256);
    if dest.is_dir() {
        return Ok(dest);
    }
    std::fs::create_dir_all(root).map_err(|e| GuestError::io(root, e))?;
    let temp = tempfile::Builder::new()
        .prefix(".unpacking-")
        .tempdir_in(root)
        .map_err(|e| GuestError::io(root, e))?;
    deb::unpack(deb, temp.path())?;
    match std::fs::rename(temp.path(), &dest) {
        Ok(()) => {
            let _moved = temp.keep(); // it now lives at `dest`: nothing to delete
            Ok(dest)
        }
        Err(_) if dest.is_dir() => Ok(dest), // unpacked concurrently by another build
        Err(e) => Err(GuestError::io(&dest, e)),
    }
}

struct Kernel {
    bzimage: Vec<u8>,
    /// Module name to its bytes, for the modules to carry, in load order.
    modules: Vec<(String, Vec<u8>)>,
    /// The guest's module loader for these modules (see [`modules::modprobe_library`]).
    modprobe_library: String,
}

/// The bzImage and the wanted modules (with their dependencies) of the compiled kernel. Every
/// module is read once to learn its dependencies and aliases.
fn read_kernel(built: &kernel::Built) -> Result<Kernel, GuestError> {
    let read = |path: &Path| std::fs::read(path).map_err(|e| GuestError::io(path, e));
    let bzimage = read(&built.bzimage())?;
    let mut depends = BTreeMap::new();
    let mut aliases = BTreeMap::new();
    let mut bytes = BTreeMap::new();
    for path in built.modules()? {
        let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let Some(name) = file_name.as_deref().and_then(modules::name_from_file) else {
            return Err(GuestError::Module(format!(
                "{}: not a .ko file",
                path.display()
            )));
        };
        let content = read(&path)?;
        let modinfo = modules::modinfo_section(&content)?;
        depends.insert(name.clone(), modules::depends_in_modinfo(modinfo));
        aliases.insert(name.clone(), modules::aliases_in_modinfo(modinfo));
        bytes.insert(name, content);
    }
    let order = modules::load_order(modules::WANTED, &depends)?;
    let modprobe_library = modules::modprobe_library(&order, &depends, &aliases)?;
    let modules = order
        .into_iter()
        .filter_map(|name| bytes.remove(&name).map(|b| (name, b)))
        .collect();
    Ok(Kernel {
        bzimage,
        modules,
        modprobe_library,
    })
}

/// The initramfs tree: busybox with its applet links, the modules and their loader, the init
/// configuration.
fn initramfs(busybox: &Path, kernel: &Kernel) -> Result<cpio::CpioTree, GuestError> {
    let mut tree = cpio::CpioTree::new();
    tree.file(
        "bin/busybox",
        0o755,
        std::fs::read(busybox).map_err(|e| GuestError::io(busybox, e))?,
    );
    // Ours, not busybox's: busybox modprobe needs a modules.dep the guest does not have.
    tree.file(init::MODPROBE_PATH, 0o755, init::modprobe().into_bytes());
    for applet in busybox_applets(busybox)? {
        if !tree.contains(&applet) && applet != init::KERNEL_DEFAULT_MODPROBE {
            let depth = applet.matches('/').count();
            tree.symlink(&applet, &format!("{}bin/busybox", "../".repeat(depth)));
        }
    }
    for dir in ["dev", "proc", "sys", "root", "run", "media/disk", "mnt"] {
        tree.dir(dir, 0o755);
    }
    tree.dir("tmp", 0o1777);
    tree.char_device("dev/console", 0o600, 5, 1);
    // The kernel runs /init; busybox, called `init`, is busybox init as PID 1, with no shell
    // started first to hand over.
    tree.symlink("init", "bin/busybox");
    tree.file("etc/fstab", 0o644, init::FSTAB.into());
    tree.file("etc/inittab", 0o644, init::INITTAB.into());
    tree.file("etc/init.d/rcS", 0o755, init::rcs().into_bytes());
    tree.file(init::SHUTDOWN_PATH, 0o755, init::rck().into_bytes());
    tree.file(init::CONTROL_PATH, 0o755, init::control().into_bytes());
    tree.file("etc/profile", 0o644, init::profile().into_bytes());
    tree.file("etc/hostname", 0o644, b"localhost\n".to_vec());
    tree.file(
        "etc/passwd",
        0o644,
        b"root:x:0:0:root:/root:/bin/sh\n".to_vec(),
    );
    tree.file("etc/group", 0o644, b"root:x:0:\n".to_vec());
    tree.file(
        modules::LIBRARY_PATH,
        0o644,
        kernel.modprobe_library.clone().into_bytes(),
    );
    for (name, bytes) in &kernel.modules {
        tree.file(&format!("lib/modules/{name}.ko"), 0o644, bytes.clone());
    }
    Ok(tree)
}

/// Installation paths of busybox's applets (`sbin/init`, `usr/bin/nc`…), as busybox lists them.
fn busybox_applets(busybox: &Path) -> Result<Vec<String>, GuestError> {
    let label = format!("{} --list-full", busybox.display());
    let mut command = std::process::Command::new(busybox);
    command.arg("--list-full");
    Ok(tool::run_tool(&label, &mut command, "")?
        .lines()
        .map(|l| l.trim().trim_start_matches('/').to_string())
        .filter(|l| !l.is_empty())
        .collect())
}

/// The CD's label; it must differ from the state disk's label, which the guest looks for.
const ISO_VOLUME_ID: &str = "LABCHECK_CD";

fn iso_image(
    packages: &Packages,
    bzimage: &[u8],
    initramfs: &[u8],
    epoch: u64,
) -> Result<Vec<u8>, GuestError> {
    let config = init::boot_loader_config(
        "/isolinux/vmlinuz",
        "/isolinux/initrd.img",
        init::KERNEL_APPEND,
    );
    iso9660::write(&iso9660::IsoSpec {
        volume_id: ISO_VOLUME_ID.into(),
        files: vec![
            (
                "ISOLINUX/ISOLINUX.BIN".into(),
                packages.file("isolinux", "usr/lib/ISOLINUX/isolinux.bin")?,
            ),
            (
                "ISOLINUX/LDLINUX.C32".into(),
                packages.file(
                    "syslinux-common",
                    "usr/lib/syslinux/modules/bios/ldlinux.c32",
                )?,
            ),
            ("ISOLINUX/ISOLINUX.CFG".into(), config.into_bytes()),
            ("ISOLINUX/VMLINUZ".into(), bzimage.to_vec()),
            ("ISOLINUX/INITRD.IMG".into(), initramfs.to_vec()),
        ],
        boot_file: "ISOLINUX/ISOLINUX.BIN".into(),
        timestamp: epoch,
    })
}

/// The disk's files: boot loader config, kernel, initramfs and the state of "VM1".
fn disk_files(bzimage: &[u8], initramfs: &[u8]) -> Vec<fatdisk::DiskFile> {
    let file = |path: &str, bytes: Vec<u8>| fatdisk::DiskFile {
        path: path.into(),
        bytes,
    };
    vec![
        file(
            "/syslinux.cfg",
            init::boot_loader_config("/vmlinuz", "/initrd.img", &init::disk_append()).into_bytes(),
        ),
        file("/vmlinuz", bzimage.to_vec()),
        file("/initrd.img", initramfs.to_vec()),
        file("/etc/hostname", b"vm1\n".to_vec()),
    ]
}

/// An exclusive lock on a file, released on drop.
struct BuildLock {
    _lock: nix::fcntl::Flock<std::fs::File>,
}

impl BuildLock {
    fn acquire(path: &Path) -> Result<Self, GuestError> {
        let file = std::fs::File::create(path).map_err(|e| GuestError::io(path, e))?;
        let lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, errno)| GuestError::io(path, errno.into()))?;
        Ok(BuildLock { _lock: lock })
    }
}

impl std::fmt::Debug for BuildLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BuildLock")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::explicit(&[("LABCHECK_CACHE_DIR", "/c"), ("XDG_CACHE_HOME", "/x"), ("HOME", "/h")], "/c")]
    #[case::xdg(&[("XDG_CACHE_HOME", "/x"), ("HOME", "/h")], "/x/labcheck")]
    #[case::home(&[("HOME", "/h")], "/h/.cache/labcheck")]
    #[case::empty_is_unset(&[("LABCHECK_CACHE_DIR", ""), ("HOME", "/h")], "/h/.cache/labcheck")]
    fn cache_dir_rules(#[case] vars: &[(&str, &str)], #[case] expected: &str) {
        let lookup = |name: &str| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| std::ffi::OsString::from(v))
        };
        assert_eq!(
            cache_dir_from(&lookup).expect("a cache dir"),
            PathBuf::from(expected)
        );
    }

    #[test]
    fn no_variables_means_no_cache_dir() {
        let err = cache_dir_from(&|_| None).expect_err("nothing set");
        assert!(err.to_string().contains(CACHE_DIR_ENV), "{err}");
    }

    #[test]
    fn the_cd_is_not_mistaken_for_the_state_disk() {
        assert_ne!(ISO_VOLUME_ID, init::DISK_LABEL);
    }

    #[test]
    fn locate_without_a_build_says_how_to_build() {
        let cache = tempfile::tempdir().expect("temp dir");
        let opts = BuildOptions {
            cache_dir: cache.path().to_path_buf(),
            mirror: None,
        };
        let err = locate(&opts).expect_err("nothing built");
        assert!(
            err.to_string().contains("run `cargo xtask fixtures`"),
            "{err}"
        );
    }

    #[test]
    fn the_digest_names_the_artifact_dir_and_is_stable() {
        let (_, one) = read_lock().expect("lock");
        let (_, two) = read_lock().expect("lock");
        assert_eq!(one, two);
        assert_eq!(one.len(), 64);
        let opts = BuildOptions {
            cache_dir: PathBuf::from("/cache"),
            mirror: None,
        };
        let expected = expected_artifacts(&opts).expect("artifacts");
        assert_eq!(expected.dir, PathBuf::from("/cache/guest").join(&one));
        assert_eq!(expected.iso, expected.dir.join("guest.iso"));
    }
}

//! A submission's image files, judged just before its QEMU starts: each
//! file a line names, and every file of its qcow2 backing chain, must be a
//! regular file inside the work dir with no other hard link, in an allowed
//! format, and no file in the work dir may look like QEMU's firmware.
//!
//! Unlike [`super::options`], this reads the files: a student's script can
//! point a symlink or a backing file anywhere. It asks `qemu-img info` about
//! one file at a time (see [`image_info`]), through the process door.

use std::collections::HashSet;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::options::{host_path, images, Image, Refusal};
use super::table::IMAGE_FORMATS;
use crate::process::{self, Enclosure, ShellExit};
use crate::time::Deadline;
use crate::vm::cmdline::CommandLine;

mod image_info;
#[cfg(test)]
mod tests;

use image_info::{ImageInfo, InfoCommand};

/// Longest backing chain followed; a longer one (or a loop) is refused.
const MAX_CHAIN: usize = 16;

/// The harness itself could not judge the images: the submission is not
/// gradable, which is not the student's fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfineError {
    #[error("work dir {path}: {source}")]
    WorkDir { path: PathBuf, source: io::Error },
    #[error("could not run `{command}`: {source}")]
    Spawn { command: String, source: io::Error },
    #[error("`{command}` still running after {after:?}; output so far: {output}")]
    Timeout {
        command: String,
        after: Duration,
        output: String,
    },
    #[error("`{command}` was killed by signal {signal}; output: {output}")]
    Killed {
        command: String,
        signal: i32,
        output: String,
    },
    #[error("`{command}` printed no JSON image description ({source}); output: {output}")]
    BadInfo {
        command: String,
        source: serde_json::Error,
        output: String,
    },
}

/// Judges the files a line's images are, just before QEMU opens them, for a
/// line [`super::check`] accepted: each must resolve (through any symlinks) to a
/// regular file inside `work_dir`, with no other hard link, in an allowed
/// format, and so must every file of its qcow2 backing chain.
///
/// `provided` are canonical paths of files the grader itself put in the work
/// dir (such as a stand-in ISO linked from the guest cache): an image that
/// resolves to one of them is accepted as it is.
///
/// The chain is walked one file at a time (`qemu-img info` without
/// `--backing-chain`), each backing file judged before anything opens it:
/// `--backing-chain` would open them all first, an `nbd:` or `http:` one
/// included.
pub async fn confine_images(
    work_dir: &Path,
    provided: &[PathBuf],
    line: &CommandLine,
    deadline: Deadline,
) -> Result<Vec<Refusal>, ConfineError> {
    let root = tokio::fs::canonicalize(work_dir)
        .await
        .map_err(|source| ConfineError::WorkDir {
            path: work_dir.to_owned(),
            source,
        })?;
    let confinement = Confinement {
        work_dir,
        root,
        provided,
        deadline,
    };
    let mut refusals = Vec::new();
    for image in images(line) {
        match confinement.image(&image).await {
            Ok(()) => {}
            Err(Stop::Refused(reason)) => refusals.push(Refusal::new(image.option, reason)),
            Err(Stop::Failed(error)) => return Err(error),
        }
    }
    Ok(refusals)
}

/// File name endings QEMU's firmware and option ROMs have.
const FIRMWARE_ENDINGS: &[&str] = &[".bin", ".rom", ".fd", ".dtb"];

/// Where QEMU keeps the data files it looks up by bare name.
const QEMU_DATA_DIR: &str = "/usr/share/qemu";

/// Files in the work dir that QEMU would take for its own firmware: QEMU
/// looks a data file up in its working directory (the work dir) before its
/// data dir, so a student's `bios-256k.bin` or `efi-e1000.rom` symlink
/// would be loaded into the guest. Judged just before QEMU starts, with the
/// student's processes gone.
pub fn firmware_lookalikes(work_dir: &Path) -> io::Result<Vec<Refusal>> {
    let data_files: HashSet<std::ffi::OsString> = match std::fs::read_dir(QEMU_DATA_DIR) {
        Ok(entries) => entries.filter_map(|e| Some(e.ok()?.file_name())).collect(),
        Err(_) => HashSet::new(),
    };
    let mut found = Vec::new();
    for entry in std::fs::read_dir(work_dir)? {
        let name = entry?.file_name();
        let text = name.to_string_lossy();
        let firmware_like = FIRMWARE_ENDINGS.iter().any(|end| text.ends_with(end));
        if firmware_like || data_files.contains(&name) {
            found.push(Refusal {
                option: text.to_string(),
                reason: "is named like a firmware file QEMU loads from its working directory: \
                 leave only your disk images in the work dir"
                    .to_string(),
            });
        }
    }
    found.sort_by(|a, b| a.option.cmp(&b.option));
    Ok(found)
}

/// Why judging an image stopped: the student's file, or the harness.
#[derive(Debug)]
enum Stop {
    Refused(String),
    Failed(ConfineError),
}

impl From<ConfineError> for Stop {
    fn from(error: ConfineError) -> Self {
        Self::Failed(error)
    }
}

struct Confinement<'a> {
    /// Where QEMU runs: relative names are relative to it.
    work_dir: &'a Path,
    /// `work_dir`, canonical.
    root: PathBuf,
    provided: &'a [PathBuf],
    deadline: Deadline,
}

impl Confinement<'_> {
    /// Follows `image` and its backing chain, refusing at the first file
    /// that is not allowed.
    async fn image(&self, image: &Image<'_>) -> Result<(), Stop> {
        host_path(&image.path).map_err(Stop::Refused)?;
        let mut seen = HashSet::new();
        // The file as QEMU will open it (relative to the work dir), and its
        // declared format.
        let mut next = Some((image.path.clone(), image.format.clone()));
        while let Some((path, format)) = next.take() {
            let canonical = self.resolve(&path).await?;
            if self.provided.contains(&canonical) {
                return Ok(());
            }
            self.confined(&path, &canonical).await?;
            if !seen.insert(canonical) || seen.len() > MAX_CHAIN {
                return Err(Stop::Refused(format!(
                    "the backing chain of `{}` loops or is longer than {MAX_CHAIN} images",
                    image.path
                )));
            }
            let info = self.info(&path, format.as_deref()).await?;
            next = backing_file(&path, info)?;
        }
        Ok(())
    }

    async fn resolve(&self, path: &str) -> Result<PathBuf, Stop> {
        tokio::fs::canonicalize(self.work_dir.join(path))
            .await
            .map_err(|error| {
                Stop::Refused(match error.kind() {
                    io::ErrorKind::NotFound => {
                        format!(
                            "`{path}` does not exist in your work dir (or is a link to nothing)"
                        )
                    }
                    _ => format!("`{path}` cannot be read: {error}"),
                })
            })
    }

    /// `canonical` (what `path` resolves to) is a regular file inside the
    /// work dir, and no other name outside can reach its content.
    async fn confined(&self, path: &str, canonical: &Path) -> Result<(), Stop> {
        let refused = |why: String| Err(Stop::Refused(why));
        if !canonical.starts_with(&self.root) {
            return refused(format!(
                "`{path}` leads to {}, outside your work dir",
                canonical.display()
            ));
        }
        let metadata = tokio::fs::metadata(canonical)
            .await
            .map_err(|error| Stop::Refused(format!("`{path}` cannot be read: {error}")))?;
        if !metadata.is_file() {
            return refused(format!("`{path}` is not a regular file"));
        }
        // A hard link is the same file under another name, which could be
        // outside the work dir.
        if metadata.nlink() > 1 {
            return refused(format!(
                "`{path}` has other hard links, which may be files outside your work dir: copy the image instead of linking it"
            ));
        }
        Ok(())
    }

    /// `qemu-img info` of the one file `path` (its backing file unopened),
    /// judged: an allowed format, no external data file.
    async fn info(&self, path: &str, format: Option<&str>) -> Result<ImageInfo, Stop> {
        let info = InfoCommand { path, format };
        let command = info.to_string();
        let output = process::run(
            info.command(self.work_dir),
            &Enclosure::host(),
            self.deadline,
        )
        .await
        .map_err(|source| ConfineError::Spawn {
            command: command.clone(),
            source,
        })?;
        match output.exit {
            ShellExit::Exited(0) => {}
            ShellExit::Exited(_) => {
                return Err(Stop::Refused(format!(
                    "qemu-img cannot read `{path}` as an image: {}",
                    output.text().trim()
                )))
            }
            ShellExit::TimedOut { after } => {
                let output = output.text();
                return Err(ConfineError::Timeout {
                    command,
                    after,
                    output,
                }
                .into());
            }
            ShellExit::Signaled(signal) => {
                let output = output.text();
                return Err(ConfineError::Killed {
                    command,
                    signal,
                    output,
                }
                .into());
            }
        }
        let info: ImageInfo =
            serde_json::from_slice(&output.output).map_err(|source| ConfineError::BadInfo {
                command,
                source,
                output: output.text(),
            })?;
        if !IMAGE_FORMATS.contains(&info.format.as_str()) {
            return Err(Stop::Refused(format!(
                "`{path}` is a {} image: only qcow2 and raw images are allowed",
                info.format
            )));
        }
        if let Some(data_file) = info.data_file() {
            return Err(Stop::Refused(format!(
                "`{path}` keeps its data in the external file `{data_file}`: keep the data inside the qcow2 image"
            )));
        }
        Ok(info)
    }
}

/// The next file of the chain after the image at `path`: its backing file as
/// QEMU will open it, with the format the image declares for it.
fn backing_file(path: &str, info: ImageInfo) -> Result<Option<(String, Option<String>)>, Stop> {
    let Some(name) = info.backing_filename else {
        return Ok(None);
    };
    if name.contains(':') {
        return Err(Stop::Refused(format!(
            "`{path}` has the backing file `{name}`, which names a protocol, not a file"
        )));
    }
    // Judged before qemu-img opens the file with it: a protocol driver
    // given as the format (`-f http`) would read a plain name as an address.
    if let Some(format) = &info.backing_filename_format {
        if !IMAGE_FORMATS.contains(&format.as_str()) {
            return Err(Stop::Refused(format!(
                "`{path}` declares its backing file `{name}` a {format} image: only qcow2 and raw images are allowed"
            )));
        }
    }
    let opened = info.full_backing_filename.unwrap_or(name);
    Ok(Some((opened, info.backing_filename_format)))
}

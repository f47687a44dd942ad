//! Students' submissions: finding them in a directory ([`discover`]) and reading
//! the files a lab asks for ([`load`]).
//!
//! A submission is a directory, `.zip`, `.tar.gz` or `.tgz` named after the
//! student. It is untrusted, and some are hostile on purpose, so this module
//! never follows a symbolic link, never extracts anything to disk, reads only
//! regular files at the lab's slot paths, and stops at [`Limits`]. Whatever a
//! submission does wrong becomes a sentence in [`Loaded::problems`] for the
//! student's feedback; only a failure of the host (a directory it cannot list,
//! a file it cannot open) is a [`SubmissionError`].

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, FileType};
use std::io::{self, BufReader, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// A host-side failure: the run (for [`discover`]) or this submission (for
/// [`load`]) cannot be graded, through no fault of the student.
#[derive(Debug, thiserror::Error)]
pub enum SubmissionError {
    #[error("cannot list the submissions directory {}: {source}", dir.display())]
    ListDir { dir: PathBuf, source: io::Error },
    #[error(
        "student `{student}` has two submissions, {} and {}: keep one",
        first.display(),
        second.display()
    )]
    DuplicateStudent {
        student: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("cannot open the submission {}: {source}", path.display())]
    Open { path: PathBuf, source: io::Error },
}

/// What holds a submission's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Directory,
    Zip,
    /// `.tar.gz` or `.tgz`.
    TarGz,
}

/// One student's submission. `student` always matches
/// `[A-Za-z0-9][A-Za-z0-9._-]{0,63}`, so it is safe as a file name, a shell
/// word and a spreadsheet cell (no `=`, `+`, `-` or `@` to start a formula).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub student: String,
    pub path: PathBuf,
    pub kind: SourceKind,
}

/// An entry of the submissions directory that is a submission but cannot be
/// graded: the grader reports it as not gradable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The entry's name made printable (control and non-ASCII characters
    /// escaped, cut at 80 characters): never use it as a path, and quote it
    /// in a spreadsheet (it may start with `=`).
    pub entry: String,
    pub path: PathBuf,
    pub reason: RejectReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RejectReason {
    #[error(
        "a student name is 1 to 64 letters, digits, `.`, `_` or `-`, starting with a letter or digit"
    )]
    BadStudentName,
    #[error("it is a symbolic link, and submissions are never followed through one")]
    SymbolicLink,
}

/// Everything found in a submissions directory.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Discovery {
    /// Sorted by student name, ignoring ASCII case.
    pub sources: Vec<Source>,
    /// Sorted by path.
    pub rejected: Vec<Rejected>,
    /// Entries that are no submission at all (a README, a device file): the
    /// grader may mention them; they never fail a run. Sorted.
    pub ignored: Vec<PathBuf>,
}

/// How much of a submission is read, at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A slot file above this is not read. Default 64 KiB.
    pub max_file_bytes: u64,
    /// Entries (files, directories, links) looked at before stopping. Default 10 000.
    pub max_entries: usize,
    /// Bytes read in total: slot files, and for a `.tar.gz` the whole
    /// decompressed stream, skipped entries included. Default 16 MiB.
    pub max_total_bytes: u64,
    /// A `.zip`, `.tar.gz` or `.tgz` above this on disk is not opened (a zip's
    /// central directory is parsed whole, so its size bounds that). Default 16 MiB.
    pub max_archive_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_file_bytes: 64 * KIB,
            max_entries: 10_000,
            max_total_bytes: 16 * MIB,
            max_archive_bytes: 16 * MIB,
        }
    }
}

/// What was read from one submission.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Loaded {
    pub student: String,
    /// Slot path (e.g. `clone/cow.sh`) to its text. A slot missing here is a
    /// step the student did not do (or a file that was not read: see `problems`).
    pub files: BTreeMap<String, String>,
    /// Sentences for the student's feedback, e.g. `clone/cow.sh is a symbolic
    /// link: not read`. Names taken from the submission are quoted and escaped.
    pub problems: Vec<String>,
}

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
/// How many names taken from a submission one problem line gives before it
/// just counts the rest.
const NAMED_AT_MOST: usize = 5;

/// Lists the submissions in `dir`: every directory, `.zip`, `.tar.gz` and
/// `.tgz` (extensions in any case). Symbolic links are rejected, not followed.
/// Two submissions of one student (`alice/` and `alice.zip`, or `Alice.zip`
/// and `alice.tgz`: output names must not collide on a case-insensitive file
/// system) fail the run, since which one to grade is the instructor's call.
pub fn discover(dir: &Path) -> Result<Discovery, SubmissionError> {
    let list_error = |source| SubmissionError::ListDir {
        dir: dir.to_path_buf(),
        source,
    };
    let mut found = Discovery::default();
    for entry in fs::read_dir(dir).map_err(list_error)? {
        let entry = entry.map_err(list_error)?;
        // DirEntry::file_type does not follow a symbolic link.
        let file_type = entry.file_type().map_err(list_error)?;
        let path = entry.path();
        let name = entry.file_name();
        match classify_entry(&name, file_type) {
            Classified::Submission { student, kind } => found.sources.push(Source {
                student,
                path,
                kind,
            }),
            Classified::Rejected(reason) => found.rejected.push(Rejected {
                entry: printable(&name.to_string_lossy()),
                path,
                reason,
            }),
            Classified::Ignored => found.ignored.push(path),
        }
    }
    found
        .sources
        .sort_by(|a, b| sort_key(&a.student).cmp(&sort_key(&b.student)));
    if let Some(pair) = found
        .sources
        .windows(2)
        .find(|pair| pair[0].student.eq_ignore_ascii_case(&pair[1].student))
    {
        return Err(SubmissionError::DuplicateStudent {
            student: pair[0].student.clone(),
            first: pair[0].path.clone(),
            second: pair[1].path.clone(),
        });
    }
    found.rejected.sort_by(|a, b| a.path.cmp(&b.path));
    found.ignored.sort();
    Ok(found)
}

fn sort_key(student: &str) -> (String, &str) {
    (student.to_ascii_lowercase(), student)
}

enum Classified {
    Submission { student: String, kind: SourceKind },
    Rejected(RejectReason),
    Ignored,
}

fn classify_entry(name: &OsStr, file_type: FileType) -> Classified {
    if file_type.is_symlink() {
        return Classified::Rejected(RejectReason::SymbolicLink);
    }
    let name = name.as_encoded_bytes();
    let (stem, kind) = if file_type.is_dir() {
        (name, SourceKind::Directory)
    } else if !file_type.is_file() {
        return Classified::Ignored;
    } else if let Some(stem) = strip_suffix_ignore_case(name, b".zip") {
        (stem, SourceKind::Zip)
    } else if let Some(stem) = strip_suffix_ignore_case(name, b".tar.gz")
        .or_else(|| strip_suffix_ignore_case(name, b".tgz"))
    {
        (stem, SourceKind::TarGz)
    } else {
        return Classified::Ignored;
    };
    match std::str::from_utf8(stem) {
        Ok(student) if is_student_name(student) => Classified::Submission {
            student: student.to_string(),
            kind,
        },
        _ => Classified::Rejected(RejectReason::BadStudentName),
    }
}

fn strip_suffix_ignore_case<'a>(name: &'a [u8], suffix: &[u8]) -> Option<&'a [u8]> {
    let split = name.len().checked_sub(suffix.len())?;
    let (stem, tail) = name.split_at(split);
    tail.eq_ignore_ascii_case(suffix).then_some(stem)
}

/// `[A-Za-z0-9][A-Za-z0-9._-]{0,63}`
fn is_student_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// `text` safe to show anywhere: printable ASCII kept, anything else (control
/// characters, terminal escapes, bidirectional overrides) escaped, cut at 80
/// characters.
fn printable(text: &str) -> String {
    const SHOWN: usize = 80;
    let mut shown = String::new();
    for c in text.chars().take(SHOWN) {
        if c.is_ascii_graphic() || c == ' ' {
            shown.push(c);
        } else {
            shown.extend(c.escape_unicode());
        }
    }
    if text.chars().nth(SHOWN).is_some() {
        shown.push('…');
    }
    shown
}

/// `printable`, in backquotes: for names taken from a submission.
fn quoted(text: &str) -> String {
    format!("`{}`", printable(text))
}

fn human_bytes(bytes: u64) -> String {
    if bytes >= MIB && bytes % MIB == 0 {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= KIB && bytes % KIB == 0 {
        format!("{} KiB", bytes / KIB)
    } else {
        format!("{bytes} bytes")
    }
}

/// Reads the files at `slots` (paths like `clone/cow.sh`) from `source`, in
/// memory. An archive may hold them at its top level or inside one top-level
/// directory of any name; so may a directory. Everything else is counted as
/// ignored. Only host failures are errors: whatever is wrong with the
/// submission itself is in [`Loaded::problems`].
pub fn load(source: &Source, slots: &[&str], limits: &Limits) -> Result<Loaded, SubmissionError> {
    let mut scan = Scan::new(slots, limits);
    match source.kind {
        SourceKind::Directory => scan_directory(&source.path, &mut scan)?,
        SourceKind::Zip => {
            if let Some(file) = open_archive(&source.path, &mut scan)? {
                scan_zip(file, &mut scan);
            }
        }
        SourceKind::TarGz => {
            if let Some(file) = open_archive(&source.path, &mut scan)? {
                scan_tar_gz(file, &mut scan);
            }
        }
    }
    Ok(scan.finish(&source.student))
}

/// What an entry is, in any kind of source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EntryType {
    File,
    Directory,
    Symlink,
    HardLink,
    /// A device, pipe, socket or anything else that is not plain data.
    Special,
}

/// A slot file to read, under a root (`""` for the top level, else the name
/// of the one top-level directory holding the slots).
#[derive(Debug)]
struct Target {
    root: String,
    slot: String,
}

/// What one root of a submission holds.
#[derive(Debug, Default)]
struct Findings {
    files: BTreeMap<String, String>,
    problems: Vec<String>,
    /// Slots met (read or not), which also makes duplicates visible.
    slots_seen: BTreeSet<String>,
}

/// The walk over one submission's entries, whatever holds them: decides what
/// each entry is for, reads slot files within the limits, and words problems.
#[derive(Debug)]
struct Scan<'a> {
    slots: &'a [&'a str],
    limits: &'a Limits,
    roots: BTreeMap<String, Findings>,
    /// The first few unsafe archive paths, quoted, and how many there were.
    unsafe_paths_named: Vec<String>,
    unsafe_paths: usize,
    other_files: usize,
    entries: usize,
    bytes_read: u64,
    /// Problems about the submission as a whole (unreadable, a limit reached).
    general: Vec<String>,
    stopped: bool,
}

impl<'a> Scan<'a> {
    fn new(slots: &'a [&'a str], limits: &'a Limits) -> Self {
        Scan {
            slots,
            limits,
            roots: BTreeMap::new(),
            unsafe_paths_named: Vec::new(),
            unsafe_paths: 0,
            other_files: 0,
            entries: 0,
            bytes_read: 0,
            general: Vec::new(),
            stopped: false,
        }
    }

    /// Counts one more entry; false (and the walk must stop) once the entry
    /// limit or any other stop was reached.
    fn admit(&mut self) -> bool {
        if !self.stopped && self.entries >= self.limits.max_entries {
            self.stop(format!(
                "the submission has more than {} entries: only the first {} were looked at",
                self.limits.max_entries, self.limits.max_entries
            ));
        }
        self.entries += 1;
        !self.stopped
    }

    /// Entries the walk may still look at, plus the one that tells it
    /// there were more.
    fn entries_left(&self) -> usize {
        self.limits.max_entries.saturating_sub(self.entries) + 1
    }

    /// Stops the walk; the first reason is the one reported.
    fn stop(&mut self, problem: String) {
        if !self.stopped {
            self.general.push(problem);
            self.stopped = true;
        }
    }

    /// Decides what the entry at `path` (its separators: `separators`) is
    /// for: `Some` for a slot file to read now, `None` for anything else
    /// (after noting a problem if it is a slot, or the way to one, gone wrong).
    fn judge(&mut self, path: &str, separators: &[char], entry: EntryType) -> Option<Target> {
        let Some(components) = safe_components(path, separators) else {
            self.unsafe_paths += 1;
            if self.unsafe_paths_named.len() < NAMED_AT_MOST {
                self.unsafe_paths_named.push(quoted(path));
            }
            return None;
        };
        if components.is_empty() {
            return None;
        }
        let Some((root, rest)) = self.locate(&components) else {
            let explained =
                entry == EntryType::Symlink && self.note_symlinked_directory(&components);
            if !explained && entry != EntryType::Directory {
                self.other_files += 1;
            }
            return None;
        };
        let findings = self.roots.entry(root.clone()).or_default();
        if !findings.slots_seen.insert(rest.clone()) {
            findings.problems.push(format!(
                "{rest} appears more than once: only the first one was read"
            ));
            return None;
        }
        let why_not = match entry {
            EntryType::File => {
                return Some(Target { root, slot: rest });
            }
            EntryType::Directory => "is a directory, not a file",
            EntryType::Symlink => "is a symbolic link: not read",
            EntryType::HardLink => "is a hard link: not read",
            EntryType::Special => "is not a regular file (a device, pipe or the like): not read",
        };
        findings.problems.push(format!("{rest} {why_not}"));
        None
    }

    /// The root and slot `components` name: the slot itself at the top level
    /// first, else a slot inside a top-level directory.
    fn locate(&self, components: &[&str]) -> Option<(String, String)> {
        let whole = components.join("/");
        if self.is_slot(&whole) {
            return Some((String::new(), whole));
        }
        let (top, rest) = components.split_first()?;
        let rest = rest.join("/");
        self.is_slot(&rest).then(|| (top.to_string(), rest))
    }

    fn is_slot(&self, path: &str) -> bool {
        self.slots.contains(&path)
    }

    /// A symbolic link where a slot's directory belongs (`clone -> /etc`) is
    /// worth telling the student why none of `clone/*` was read. True if it
    /// was such a link.
    fn note_symlinked_directory(&mut self, components: &[&str]) -> bool {
        let leads_to_slot = |dir: &str| {
            let prefix = format!("{dir}/");
            self.slots.iter().any(|slot| slot.starts_with(&prefix))
        };
        let whole = components.join("/");
        let located = if leads_to_slot(&whole) {
            Some((String::new(), whole))
        } else {
            components
                .split_first()
                .map(|(top, rest)| (top.to_string(), rest.join("/")))
                .filter(|(_, rest)| !rest.is_empty() && leads_to_slot(rest))
        };
        let Some((root, dir)) = located else {
            return false;
        };
        self.roots
            .entry(root)
            .or_default()
            .problems
            .push(format!("{dir} is a symbolic link: not followed"));
        true
    }

    /// Reads the slot file `target` from `reader`: never more than the file
    /// limit (plus one byte, to know it was exceeded) or what is left of the
    /// total, whatever size the entry claims.
    fn read(&mut self, target: Target, reader: impl Read) {
        let left = self.limits.max_total_bytes.saturating_sub(self.bytes_read);
        let cap = self.limits.max_file_bytes.min(left);
        let mut content = Vec::new();
        let outcome = reader.take(cap + 1).read_to_end(&mut content);
        self.bytes_read += content.len() as u64;
        let Target { root, slot } = target;
        let problem = match outcome {
            Err(error) if is_total_exceeded(&error) => {
                self.stop_at_total();
                return;
            }
            Err(error) => format!("{slot} could not be read: {error}"),
            Ok(_) if content.len() as u64 > self.limits.max_file_bytes => format!(
                "{slot} is larger than {}: not read",
                human_bytes(self.limits.max_file_bytes)
            ),
            Ok(_) if content.len() as u64 > cap => {
                self.stop_at_total();
                return;
            }
            Ok(_) => match String::from_utf8(content) {
                Ok(text) => {
                    self.roots.entry(root).or_default().files.insert(slot, text);
                    return;
                }
                Err(_) => format!("{slot} is not UTF-8 text: not read"),
            },
        };
        self.roots.entry(root).or_default().problems.push(problem);
    }

    fn stop_at_total(&mut self) {
        self.stop(format!(
            "the submission holds more than {} of data: reading stopped there",
            human_bytes(self.limits.max_total_bytes)
        ));
    }

    /// The archive could not be read (any more): the student's problem.
    fn unreadable(&mut self, what: &str, error: impl std::fmt::Display) {
        let when = if self.entries > 1 {
            "could not be read to its end"
        } else {
            "could not be read"
        };
        self.stop(format!("the {what} {when}: {error}"));
    }

    /// The findings of the root holding the most slots, with every problem
    /// worded.
    fn finish(mut self, student: &str) -> Loaded {
        let mut loaded = Loaded {
            student: student.to_string(),
            ..Loaded::default()
        };
        if let Some(root) = self.busiest_root() {
            let findings = self.roots.remove(&root).unwrap_or_default();
            loaded.files = findings.files;
            loaded.problems = findings.problems;
            if !self.roots.is_empty() {
                let others: Vec<String> = self
                    .roots
                    .keys()
                    .take(NAMED_AT_MOST)
                    .map(|other| root_name(other))
                    .collect();
                loaded.problems.push(format!(
                    "lab files were found in more than one place: read {}, ignored {}",
                    root_name(&root),
                    named_of(&others, self.roots.len())
                ));
            }
        }
        if self.unsafe_paths > 0 {
            loaded.problems.push(format!(
                "archive entries not read, their paths being absolute or holding `..`: {}",
                named_of(&self.unsafe_paths_named, self.unsafe_paths)
            ));
        }
        if self.other_files > 0 {
            loaded.problems.push(format!(
                "{} other file(s) ignored: only the lab's files are read",
                self.other_files
            ));
        }
        loaded.problems.extend(self.general);
        loaded
    }

    /// The root holding the most slots; on a tie the first, so the top level,
    /// then by name (`max_by_key` would take the last).
    fn busiest_root(&self) -> Option<String> {
        let mut busiest: Option<(&String, usize)> = None;
        for (root, findings) in &self.roots {
            let slots = findings.slots_seen.len();
            if busiest.is_none_or(|(_, most)| slots > most) {
                busiest = Some((root, slots));
            }
        }
        busiest.map(|(root, _)| root.clone())
    }
}

/// `named` (the first of `total` names), joined, with how many more there were.
fn named_of(named: &[String], total: usize) -> String {
    match total.saturating_sub(named.len()) {
        0 => named.join(", "),
        more => format!("{} and {more} more", named.join(", ")),
    }
}

fn root_name(root: &str) -> String {
    if root.is_empty() {
        "the top level".to_string()
    } else {
        quoted(&format!("{root}/"))
    }
}

/// The components of a relative `path` without `.` and empty ones (so
/// `./clone//cow.sh` is `clone/cow.sh`); `None` for an absolute path or one
/// with `..`, which no slot may come from.
fn safe_components<'p>(path: &'p str, separators: &[char]) -> Option<Vec<&'p str>> {
    if path.starts_with(separators) {
        return None;
    }
    let components: Vec<&str> = path
        .split(separators)
        .filter(|component| !component.is_empty() && *component != ".")
        .collect();
    (!components.contains(&"..")).then_some(components)
}

/// Walks a submission directory without following any symbolic link: every
/// entry is looked at through `lstat` (`DirEntry::file_type`), and a slot file
/// is opened with `O_NOFOLLOW`, then checked again to be a regular file.
/// Entries are taken in name order, so problems come out in a stable order.
fn scan_directory(top: &Path, scan: &mut Scan) -> Result<(), SubmissionError> {
    let open_error = |source| SubmissionError::Open {
        path: top.to_path_buf(),
        source,
    };
    if !fs::symlink_metadata(top).map_err(open_error)?.is_dir() {
        return Err(open_error(io::Error::other(
            "no longer a directory (replaced since it was found?)",
        )));
    }
    // Directories are listed when their turn comes, not when found, so at
    // most one listing (itself cut at the entries left) is held at a time.
    let mut pending = vec![(String::new(), top.to_path_buf())];
    while let Some((relative, dir)) = pending.pop() {
        let listing = match list_sorted(&dir, scan.entries_left()) {
            Ok(listing) => listing,
            Err(source) if relative.is_empty() => return Err(open_error(source)),
            Err(error) => {
                let problem = format!("{} could not be listed: {error}", quoted(&relative));
                scan.general.push(problem);
                continue;
            }
        };
        let mut subdirectories = Vec::new();
        for (name, file_type) in listing {
            if !scan.admit() {
                return Ok(());
            }
            let path = dir.join(&name);
            let name = name.to_string_lossy();
            let relative = if relative.is_empty() {
                name.into_owned()
            } else {
                format!("{relative}/{name}")
            };
            let entry = entry_type(file_type);
            if let Some(target) = scan.judge(&relative, &['/'], entry) {
                read_regular_file(&path, target, scan);
            }
            if entry == EntryType::Directory {
                subdirectories.push((relative, path));
            }
        }
        // Reversed onto the stack, so they are walked in name order.
        pending.extend(subdirectories.into_iter().rev());
    }
    Ok(())
}

/// A directory's entries with their own (unfollowed) types, sorted by name,
/// at most `limit` of them (which ones, if there are more, is up to the file
/// system: the walk stops there anyway, and it bounds what is held).
fn list_sorted(dir: &Path, limit: usize) -> io::Result<Vec<(OsString, FileType)>> {
    let mut listing = Vec::new();
    for entry in fs::read_dir(dir)?.take(limit) {
        let entry = entry?;
        listing.push((entry.file_name(), entry.file_type()?));
    }
    listing.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(listing)
}

fn entry_type(file_type: FileType) -> EntryType {
    if file_type.is_symlink() {
        EntryType::Symlink
    } else if file_type.is_dir() {
        EntryType::Directory
    } else if file_type.is_file() {
        EntryType::File
    } else {
        EntryType::Special
    }
}

/// Opens without following a symbolic link (the entry could have been swapped
/// for one since it was listed) and without blocking (were it swapped for a
/// FIFO).
fn open_no_follow(path: &Path) -> io::Result<File> {
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
}

fn read_regular_file(path: &Path, target: Target, scan: &mut Scan) {
    let opened = open_no_follow(path).and_then(|file| {
        let metadata = file.metadata()?;
        Ok((file, metadata))
    });
    let why_not = match opened {
        Ok((file, metadata)) if metadata.is_file() && metadata.nlink() == 1 => {
            return scan.read(target, file);
        }
        // Another name for the same file may lie outside the submission
        // (`ln /etc/shadow cow.sh`), just as a symbolic link would.
        Ok((_, metadata)) if metadata.is_file() => {
            "is a hard link (it has other names): not read".to_string()
        }
        Ok(_) => "is no longer a regular file: not read".to_string(),
        Err(error) => format!("could not be opened: {error}"),
    };
    scan.roots
        .entry(target.root)
        .or_default()
        .problems
        .push(format!("{} {why_not}", target.slot));
}

/// Opens an archive, or notes why it is not read (too large: the student's
/// problem); a file the host cannot open is the host's.
fn open_archive(path: &Path, scan: &mut Scan) -> Result<Option<File>, SubmissionError> {
    let open_error = |source| SubmissionError::Open {
        path: path.to_path_buf(),
        source,
    };
    let file = open_no_follow(path).map_err(open_error)?;
    let metadata = file.metadata().map_err(open_error)?;
    if !metadata.is_file() {
        return Err(open_error(io::Error::other(
            "no longer a regular file (replaced since it was found?)",
        )));
    }
    if metadata.len() > scan.limits.max_archive_bytes {
        scan.stop(format!(
            "the archive is larger than {}: not read",
            human_bytes(scan.limits.max_archive_bytes)
        ));
        return Ok(None);
    }
    Ok(Some(file))
}

/// Reads a zip in place: only the slot entries are ever decompressed. `\` is
/// a separator too, as some Windows tools write it.
fn scan_zip(file: File, scan: &mut Scan) {
    let mut archive = match zip::ZipArchive::new(BufReader::new(file)) {
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
                Err(error) => scan
                    .roots
                    .entry(target.root)
                    .or_default()
                    .problems
                    .push(format!("{} could not be read: {error}", target.slot)),
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

/// Reads a `.tar.gz` as one stream. Skipping an entry still inflates it, so
/// the whole decompressed stream is capped at the total limit: a bomb stops
/// there instead of inflating for minutes.
fn scan_tar_gz(file: File, scan: &mut Scan) {
    let stream = Capped::new(
        flate2::read::GzDecoder::new(BufReader::new(file)),
        scan.limits.max_total_bytes,
    );
    let mut archive = tar::Archive::new(stream);
    let outcome = scan_tar_entries(&mut archive, scan);
    if archive.into_inner().exceeded {
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

/// The error [`Capped`] fails with.
#[derive(Debug, thiserror::Error)]
#[error("the decompressed size limit was reached")]
struct TotalExceeded;

fn is_total_exceeded(error: &io::Error) -> bool {
    error
        .get_ref()
        .is_some_and(|inner| inner.is::<TotalExceeded>())
}

/// A reader that fails with [`TotalExceeded`] once more than `left` bytes
/// come through, and remembers it did: the error may reach the caller wrapped.
#[derive(Debug)]
struct Capped<R> {
    inner: R,
    left: u64,
    exceeded: bool,
}

impl<R> Capped<R> {
    fn new(inner: R, limit: u64) -> Self {
        Capped {
            inner,
            left: limit,
            exceeded: false,
        }
    }
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            // At the limit: fine if the stream ends exactly here.
            let mut probe = [0u8; 1];
            if self.inner.read(&mut probe)? == 0 {
                return Ok(0);
            }
            self.exceeded = true;
            return Err(io::Error::other(TotalExceeded));
        }
        let wanted = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let count = self.inner.read(&mut buf[..wanted])?;
        self.left -= count as u64;
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use flate2::{Compress, Compression, FlushCompress};
    use rstest::rstest;
    use std::io::Write;
    use std::os::unix::fs::symlink;
    use std::time::{Duration, Instant};
    use tempfile::TempDir;
    use zip::write::SimpleFileOptions;

    const SLOTS: &[&str] = &[
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
    enum Item<'a> {
        File(&'a str, &'a [u8]),
        Dir(&'a str),
        Symlink(&'a str, &'a str),
    }
    use Item::{Dir, File as F, Symlink};

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Pack {
        Directory,
        Zip,
        TarGz,
        Tgz,
    }

    /// Builds `items` as `student`'s submission of kind `pack` in `dir`.
    fn submit(dir: &Path, student: &str, pack: Pack, items: &[Item]) -> Source {
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

    fn build_dir(root: &Path, items: &[Item]) {
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

    fn zip_of(items: &[Item]) -> Vec<u8> {
        let mut writer = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        let options =
            SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
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

    fn tar_gz_of(items: &[Item]) -> Vec<u8> {
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
    fn tar_header(
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

    fn load_default(source: &Source) -> Loaded {
        load(source, SLOTS, &Limits::default()).unwrap()
    }

    fn files(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(slot, text)| (slot.to_string(), text.to_string()))
            .collect()
    }

    const COW: &[u8] = b"qemu-img create -f qcow2 -b base.qcow2 -F qcow2 vm2.qcow2\n";
    const VM1: &[u8] = b"-netdev socket,id=n0,listen=:1234\n";

    #[rstest]
    fn every_kind_and_layout_gives_the_same_files(
        #[values(Pack::Directory, Pack::Zip, Pack::TarGz, Pack::Tgz)] pack: Pack,
        #[values("", "./", "alice-lab2/")] prefix: &str,
    ) {
        let temp = TempDir::new().unwrap();
        let cow = format!("{prefix}clone/cow.sh");
        let vm1 = format!("{prefix}socket/vm1.qemu");
        let readme = format!("{prefix}README.md");
        let clone_dir = format!("{prefix}clone/");
        let items = [
            Dir(&clone_dir),
            F(&cow, COW),
            F(&vm1, VM1),
            F(&readme, b"notes\n"),
        ];
        let source = submit(temp.path(), "alice", pack, &items);
        let loaded = load_default(&source);
        assert_eq!(loaded.student, "alice");
        assert_eq!(
            loaded.files,
            files(&[
                ("clone/cow.sh", std::str::from_utf8(COW).unwrap()),
                ("socket/vm1.qemu", std::str::from_utf8(VM1).unwrap())
            ])
        );
        assert_eq!(
            loaded.problems,
            ["1 other file(s) ignored: only the lab's files are read"]
        );
    }

    #[rstest]
    #[case::to_a_file_outside(Symlink("clone/cow.sh", "/etc/shadow"))]
    #[case::to_another_students_file(Symlink("clone/cow.sh", "../../bob/clone/cow.sh"))]
    fn a_symlinked_slot_is_not_read(
        #[values(Pack::Directory, Pack::Zip, Pack::TarGz)] pack: Pack,
        #[case] link: Item,
    ) {
        let temp = TempDir::new().unwrap();
        submit(
            temp.path(),
            "bob",
            Pack::Directory,
            &[F("clone/cow.sh", b"bob's\n")],
        );
        let source = submit(
            temp.path(),
            "alice",
            pack,
            &[link, F("socket/vm1.qemu", VM1)],
        );
        let loaded = load_default(&source);
        assert_eq!(loaded.files.keys().collect::<Vec<_>>(), ["socket/vm1.qemu"]);
        assert_eq!(
            loaded.problems,
            ["clone/cow.sh is a symbolic link: not read"]
        );
    }

    #[rstest]
    #[case::flat("clone", "")]
    #[case::nested("work/clone", "work/")]
    fn a_symlinked_slot_directory_is_not_followed(#[case] link: &str, #[case] root: &str) {
        let temp = TempDir::new().unwrap();
        let outside = temp.path().join("outside");
        build_dir(&outside, &[F("cow.sh", b"outside\n")]);
        let vm1 = format!("{root}socket/vm1.qemu");
        let source = submit(
            temp.path(),
            "alice",
            Pack::Directory,
            &[Symlink(link, outside.to_str().unwrap()), F(&vm1, VM1)],
        );
        let loaded = load_default(&source);
        assert_eq!(loaded.files.keys().collect::<Vec<_>>(), ["socket/vm1.qemu"]);
        assert_eq!(loaded.problems, ["clone is a symbolic link: not followed"]);
    }

    #[test]
    fn a_hard_link_in_a_directory_is_not_read() {
        let temp = TempDir::new().unwrap();
        let secret = temp.path().join("secret");
        fs::write(&secret, "root:x:0:0\n").unwrap();
        let source = submit(temp.path(), "alice", Pack::Directory, &[Dir("clone")]);
        fs::hard_link(&secret, source.path.join("clone/cow.sh")).unwrap();
        let loaded = load_default(&source);
        assert!(loaded.files.is_empty());
        assert_eq!(
            loaded.problems,
            ["clone/cow.sh is a hard link (it has other names): not read"]
        );
    }

    #[test]
    fn a_fifo_in_a_directory_is_not_opened() {
        let temp = TempDir::new().unwrap();
        let source = submit(temp.path(), "alice", Pack::Directory, &[Dir("clone")]);
        nix::unistd::mkfifo(
            &source.path.join("clone/cow.sh"),
            nix::sys::stat::Mode::S_IRWXU,
        )
        .unwrap();
        let loaded = load_default(&source);
        assert!(loaded.files.is_empty());
        assert_eq!(
            loaded.problems,
            ["clone/cow.sh is not a regular file (a device, pipe or the like): not read"]
        );
    }

    #[test]
    fn a_hard_link_or_device_in_a_tar_is_not_read() {
        let temp = TempDir::new().unwrap();
        let path = temp.path().join("alice.tgz");
        let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
        let link = tar_header(
            b"clone/cow.sh",
            tar::EntryType::Link,
            0,
            Some("/etc/shadow"),
        );
        builder.append(&link, io::empty()).unwrap();
        let device = tar_header(b"clone/full.sh", tar::EntryType::Char, 0, None);
        builder.append(&device, io::empty()).unwrap();
        fs::write(&path, builder.into_inner().unwrap().finish().unwrap()).unwrap();
        let source = Source {
            student: "alice".into(),
            path,
            kind: SourceKind::TarGz,
        };
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

    /// `../clone/cow.sh` or `/clone/cow.sh` must not fill `clone/cow.sh`,
    /// as a careless normalisation (stripping `..` or `/`) would make it.
    #[rstest]
    fn escaping_and_absolute_archive_paths_are_not_read(
        #[values(Pack::Zip, Pack::TarGz)] pack: Pack,
    ) {
        let temp = TempDir::new().unwrap();
        let items = [
            F("../clone/cow.sh", b"escaped\n"),
            F("/clone/full.sh", b"absolute\n"),
            F("work/../../clone/vm2.qemu", b"escaped\n"),
            F("socket/vm1.qemu", VM1),
        ];
        let source = submit(temp.path(), "alice", pack, &items);
        let loaded = load_default(&source);
        assert_eq!(loaded.files.keys().collect::<Vec<_>>(), ["socket/vm1.qemu"]);
        assert_eq!(
            loaded.problems,
            [
                "archive entries not read, their paths being absolute or holding `..`: \
              `../clone/cow.sh`, `/clone/full.sh`, `work/../../clone/vm2.qemu`"
            ]
        );
    }

    #[test]
    fn many_unsafe_paths_are_named_up_to_five() {
        let temp = TempDir::new().unwrap();
        let names: Vec<String> = (1..=7).map(|n| format!("../{n}")).collect();
        let items: Vec<Item> = names.iter().map(|name| F(name, b"")).collect();
        let source = submit(temp.path(), "alice", Pack::TarGz, &items);
        assert_eq!(
            load_default(&source).problems,
            [
                "archive entries not read, their paths being absolute or holding `..`: \
              `../1`, `../2`, `../3`, `../4`, `../5` and 2 more"
            ]
        );
    }

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

    #[rstest]
    fn a_file_is_read_up_to_its_limit_and_not_past_it(
        #[values(Pack::Directory, Pack::Zip, Pack::TarGz)] pack: Pack,
    ) {
        let temp = TempDir::new().unwrap();
        let at_limit = vec![b'#'; 64 * 1024];
        let past_limit = vec![b'#'; 64 * 1024 + 1];
        let items = [
            F("clone/cow.sh", &at_limit),
            F("clone/full.sh", &past_limit),
        ];
        let source = submit(temp.path(), "alice", pack, &items);
        let loaded = load_default(&source);
        assert_eq!(loaded.files["clone/cow.sh"].len(), 64 * 1024);
        assert_eq!(loaded.files.len(), 1);
        assert_eq!(
            loaded.problems,
            ["clone/full.sh is larger than 64 KiB: not read"]
        );
    }

    #[rstest]
    fn text_must_be_utf8_and_odd_names_are_just_other_files(
        #[values(Pack::Directory, Pack::Zip, Pack::TarGz)] pack: Pack,
    ) {
        let temp = TempDir::new().unwrap();
        let items = [
            F("clone/cow.sh", b"qemu-img \xff\xfe\n"),
            F("clone/full.sh", "échappé ✓\n".as_bytes()),
            F("clone/=cmd|' \x1b[31m.sh", b"x"),
        ];
        let source = submit(temp.path(), "alice", pack, &items);
        let loaded = load_default(&source);
        assert_eq!(loaded.files, files(&[("clone/full.sh", "échappé ✓\n")]));
        assert_eq!(
            loaded.problems,
            [
                "clone/cow.sh is not UTF-8 text: not read",
                "1 other file(s) ignored: only the lab's files are read"
            ]
        );
    }

    #[test]
    fn a_non_utf8_name_in_a_tar_is_another_file() {
        let temp = TempDir::new().unwrap();
        let path = temp.path().join("alice.tgz");
        let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
        let odd = tar_header(b"clone/cow.sh\xff", tar::EntryType::Regular, 1, None);
        builder.append(&odd, &b"x"[..]).unwrap();
        fs::write(&path, builder.into_inner().unwrap().finish().unwrap()).unwrap();
        let source = Source {
            student: "alice".into(),
            path,
            kind: SourceKind::TarGz,
        };
        let loaded = load_default(&source);
        assert!(loaded.files.is_empty());
        assert_eq!(
            loaded.problems,
            ["1 other file(s) ignored: only the lab's files are read"]
        );
    }

    #[rstest]
    fn the_root_with_the_most_lab_files_is_read(
        #[values(Pack::Directory, Pack::Zip, Pack::TarGz)] pack: Pack,
    ) {
        let temp = TempDir::new().unwrap();
        let items = [
            F("old/clone/cow.sh", b"old\n"),
            F("new/clone/cow.sh", COW),
            F("new/socket/vm1.qemu", VM1),
        ];
        let source = submit(temp.path(), "alice", pack, &items);
        let loaded = load_default(&source);
        assert_eq!(
            loaded.files.keys().collect::<Vec<_>>(),
            ["clone/cow.sh", "socket/vm1.qemu"]
        );
        assert_eq!(loaded.files["clone/cow.sh"].as_bytes(), COW);
        assert_eq!(
            loaded.problems,
            ["lab files were found in more than one place: read `new/`, ignored `old/`"]
        );
    }

    #[test]
    fn many_roots_are_named_up_to_five() {
        let temp = TempDir::new().unwrap();
        let names: Vec<String> = (1..=8).map(|n| format!("copy{n}/clone/cow.sh")).collect();
        let mut items: Vec<Item> = names.iter().map(|name| F(name, COW)).collect();
        items.push(F("copy9/clone/full.sh", b"\n"));
        items.push(F("copy9/clone/cow.sh", COW));
        let source = submit(temp.path(), "alice", Pack::Zip, &items);
        let loaded = load_default(&source);
        assert_eq!(
            loaded.files.keys().collect::<Vec<_>>(),
            ["clone/cow.sh", "clone/full.sh"]
        );
        assert_eq!(
            loaded.problems,
            [
                "lab files were found in more than one place: read `copy9/`, ignored \
              `copy1/`, `copy2/`, `copy3/`, `copy4/`, `copy5/` and 3 more"
            ]
        );
    }

    #[test]
    fn a_slot_twice_in_a_tar_keeps_the_first() {
        let temp = TempDir::new().unwrap();
        let items = [F("clone/cow.sh", COW), F("clone/cow.sh", b"second\n")];
        let source = submit(temp.path(), "alice", Pack::TarGz, &items);
        let loaded = load_default(&source);
        assert_eq!(loaded.files["clone/cow.sh"].as_bytes(), COW);
        assert_eq!(
            loaded.problems,
            ["clone/cow.sh appears more than once: only the first one was read"]
        );
    }

    /// A directory's own entries (`clone/` and the like) count too.
    #[rstest]
    #[case::directory(Pack::Directory, 5)]
    #[case::zip(Pack::Zip, 2)]
    #[case::tar_gz(Pack::TarGz, 2)]
    fn scanning_stops_at_the_entry_limit(#[case] pack: Pack, #[case] max_entries: usize) {
        let temp = TempDir::new().unwrap();
        let items = [
            F("clone/cow.sh", COW),
            F("socket/vm1.qemu", VM1),
            F("tap/setup.sh", b""),
            F("tap/vm1.qemu", b""),
        ];
        let source = submit(temp.path(), "alice", pack, &items);
        let limits = Limits {
            max_entries,
            ..Limits::default()
        };
        let loaded = load(&source, SLOTS, &limits).unwrap();
        assert_eq!(
            loaded.files.keys().collect::<Vec<_>>(),
            ["clone/cow.sh", "socket/vm1.qemu"]
        );
        assert_eq!(
            loaded.problems,
            [format!("the submission has more than {max_entries} entries: only the first {max_entries} were looked at")]
        );
    }

    /// A directory or zip counts the slot files read; a `.tar.gz` its whole
    /// decompressed stream, headers included (512 bytes before each file).
    #[rstest]
    #[case::directory(Pack::Directory, 2500, &["clone/cow.sh", "clone/full.sh"])]
    #[case::zip(Pack::Zip, 2500, &["clone/cow.sh", "clone/full.sh"])]
    #[case::tar_gz(Pack::TarGz, 3500, &["clone/cow.sh", "clone/full.sh"])]
    #[case::tar_gz_cut_in_a_header(Pack::TarGz, 2000, &["clone/cow.sh"])]
    #[case::tar_gz_cut_in_a_file(Pack::TarGz, 2500, &["clone/cow.sh"])]
    fn reading_stops_at_the_total_limit(
        #[case] pack: Pack,
        #[case] max_total_bytes: u64,
        #[case] expected: &[&str],
    ) {
        let temp = TempDir::new().unwrap();
        let kib = vec![b'#'; 1024];
        let items = [
            F("clone/cow.sh", &kib),
            F("clone/full.sh", &kib),
            F("tap/setup.sh", &kib),
        ];
        let source = submit(temp.path(), "alice", pack, &items);
        let limits = Limits {
            max_total_bytes,
            ..Limits::default()
        };
        let loaded = load(&source, SLOTS, &limits).unwrap();
        assert_eq!(loaded.files.keys().collect::<Vec<_>>(), expected);
        assert_eq!(
            loaded.problems,
            [format!("the submission holds more than {max_total_bytes} bytes of data: reading stopped there")]
        );
    }

    #[rstest]
    #[case::zip(Pack::Zip)]
    #[case::tar_gz(Pack::TarGz)]
    fn an_archive_too_large_on_disk_is_not_opened(#[case] pack: Pack) {
        let temp = TempDir::new().unwrap();
        let source = submit(temp.path(), "alice", pack, &[F("clone/cow.sh", COW)]);
        let limits = Limits {
            max_archive_bytes: 16,
            ..Limits::default()
        };
        let loaded = load(&source, SLOTS, &limits).unwrap();
        assert!(loaded.files.is_empty());
        assert_eq!(
            loaded.problems,
            ["the archive is larger than 16 bytes: not read"]
        );
    }

    #[rstest]
    #[case::zip_of_garbage(Pack::Zip, b"PK\x03\x04 not really".to_vec(), "the zip archive could not be read: ")]
    #[case::tgz_of_garbage(Pack::TarGz, b"not gzip at all".to_vec(), "the tar.gz archive could not be read: ")]
    #[case::empty_zip(Pack::Zip, Vec::new(), "the zip archive could not be read: ")]
    #[case::truncated_tgz(Pack::TarGz, tar_gz_of(&[F("clone/cow.sh", COW), F("clone/full.sh", &[b'#'; 4000])])[..60].to_vec(), "the tar.gz archive could not be read")]
    fn an_unreadable_archive_is_the_students_problem(
        #[case] pack: Pack,
        #[case] bytes: Vec<u8>,
        #[case] expected: &str,
    ) {
        let temp = TempDir::new().unwrap();
        let source = submit(temp.path(), "alice", pack, &[]);
        fs::write(&source.path, bytes).unwrap();
        let loaded = load_default(&source);
        assert!(loaded.files.is_empty(), "{:?}", loaded.files);
        assert_eq!(loaded.problems.len(), 1, "{:?}", loaded.problems);
        assert!(
            loaded.problems[0].starts_with(expected),
            "{:?}",
            loaded.problems
        );
    }

    #[test]
    fn a_missing_source_is_a_host_error() {
        let temp = TempDir::new().unwrap();
        for kind in [SourceKind::Directory, SourceKind::Zip, SourceKind::TarGz] {
            let source = Source {
                student: "alice".into(),
                path: temp.path().join("gone"),
                kind,
            };
            let error = load(&source, SLOTS, &Limits::default()).unwrap_err();
            assert!(matches!(error, SubmissionError::Open { .. }), "{error}");
        }
    }

    const GIB: u64 = 1 << 30;

    /// A raw deflate stream of `prefix` then `zeros` zero bytes (a multiple
    /// of 1 MiB), made in milliseconds: one compressed MiB of zeros repeated.
    /// A sync-flushed block ends byte-aligned and its back-references reach
    /// only zeros, so copies of it chain into one valid stream.
    fn deflate_of_zeros(prefix: &[u8], zeros: u64) -> Vec<u8> {
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

    /// One zip entry, written byte by byte, so its sizes and CRC can lie.
    struct RawZipEntry<'a> {
        name: &'a str,
        method: u16,
        data: Vec<u8>,
        crc: u32,
        declared_size: u32,
    }

    fn raw_zip(entries: &[RawZipEntry]) -> Vec<u8> {
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
        let after = RawZipEntry {
            name: "socket/vm1.qemu",
            method: 0,
            data: VM1.to_vec(),
            crc: crc32(VM1),
            declared_size: VM1.len() as u32,
        };
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
        let stored = RawZipEntry {
            name: "socket/vm1.qemu",
            method: 0,
            data: VM1.to_vec(),
            crc: crc32(VM1),
            declared_size: VM1.len() as u32,
        };
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

    fn names_of(sources: &[Source]) -> Vec<(&str, SourceKind)> {
        sources
            .iter()
            .map(|source| (source.student.as_str(), source.kind))
            .collect()
    }

    #[test]
    fn discover_lists_directories_and_archives_sorted_and_ignores_the_rest() {
        let temp = TempDir::new().unwrap();
        for name in [
            "carol.tgz",
            "Bob.ZIP",
            "dave.tar.gz",
            "erin_2.x-y.zip",
            "README.md",
            "notes.tar",
        ] {
            fs::write(temp.path().join(name), b"").unwrap();
        }
        fs::create_dir(temp.path().join("alice")).unwrap();
        nix::unistd::mkfifo(&temp.path().join("pipe"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        let found = discover(temp.path()).unwrap();
        assert_eq!(
            names_of(&found.sources),
            [
                ("alice", SourceKind::Directory),
                ("Bob", SourceKind::Zip),
                ("carol", SourceKind::TarGz),
                ("dave", SourceKind::TarGz),
                ("erin_2.x-y", SourceKind::Zip),
            ]
        );
        assert_eq!(found.sources[1].path, temp.path().join("Bob.ZIP"));
        assert_eq!(
            found.ignored,
            ["README.md", "notes.tar", "pipe"].map(|name| temp.path().join(name))
        );
        assert!(found.rejected.is_empty());
    }

    #[rstest]
    #[case::formula("=cmd|' -C calc'!A0.zip", "=cmd|' -C calc'!A0.zip")]
    #[case::hidden(".hidden", ".hidden")]
    #[case::space("a b", "a b")]
    #[case::dash_first("-rf.tgz", "-rf.tgz")]
    #[case::too_long(&"a".repeat(65), &"a".repeat(65))]
    #[case::terminal_escape("\x1b]0;owned\x07.zip", "\\u{1b}]0;owned\\u{7}.zip")]
    #[case::right_to_left("alice\u{202e}piz.sh", "alice\\u{202e}piz.sh")]
    #[case::bare_extension(".zip", ".zip")]
    fn discover_rejects_a_bad_student_name(#[case] name: &str, #[case] shown: &str) {
        let temp = TempDir::new().unwrap();
        fs::create_dir(temp.path().join("alice")).unwrap();
        if name.ends_with(".zip") || name.ends_with(".tgz") {
            fs::write(temp.path().join(name), b"").unwrap();
        } else {
            fs::create_dir(temp.path().join(name)).unwrap();
        }
        let found = discover(temp.path()).unwrap();
        assert_eq!(names_of(&found.sources), [("alice", SourceKind::Directory)]);
        assert_eq!(
            found.rejected,
            [Rejected {
                entry: shown.to_string(),
                path: temp.path().join(name),
                reason: RejectReason::BadStudentName,
            }]
        );
    }

    #[test]
    fn discover_rejects_a_non_utf8_name_and_a_symbolic_link() {
        use std::os::unix::ffi::OsStrExt;
        let temp = TempDir::new().unwrap();
        let odd = OsStr::from_bytes(b"al\xffce.zip");
        fs::write(temp.path().join(odd), b"").unwrap();
        symlink("/etc", temp.path().join("mallory")).unwrap();
        let found = discover(temp.path()).unwrap();
        assert!(found.sources.is_empty());
        let rejected: Vec<(&str, RejectReason)> = found
            .rejected
            .iter()
            .map(|rejected| (rejected.entry.as_str(), rejected.reason))
            .collect();
        assert_eq!(
            rejected,
            [
                ("al\\u{fffd}ce.zip", RejectReason::BadStudentName),
                ("mallory", RejectReason::SymbolicLink)
            ]
        );
    }

    #[test]
    fn a_64_character_name_is_fine() {
        assert!(is_student_name(&"a".repeat(64)));
        assert!(is_student_name("7"));
        assert!(!is_student_name(""));
    }

    #[rstest]
    #[case::directory_and_zip(&["alice/"], &["alice.zip"], "alice")]
    #[case::zip_and_tgz(&[], &["bob.tgz", "bob.zip"], "bob")]
    #[case::differing_in_case(&["carol/"], &["Carol.tar.gz"], "Carol")]
    fn discover_refuses_two_submissions_of_one_student(
        #[case] dirs: &[&str],
        #[case] archives: &[&str],
        #[case] student: &str,
    ) {
        let temp = TempDir::new().unwrap();
        for dir in dirs {
            fs::create_dir(temp.path().join(dir)).unwrap();
        }
        for archive in archives {
            fs::write(temp.path().join(archive), b"").unwrap();
        }
        let error = discover(temp.path()).unwrap_err();
        let SubmissionError::DuplicateStudent {
            student: named,
            first,
            second,
        } = &error
        else {
            panic!("{error}");
        };
        assert!(named.eq_ignore_ascii_case(student), "{error}");
        let mut both = [first.clone(), second.clone()];
        both.sort();
        let mut expected: Vec<PathBuf> = dirs
            .iter()
            .chain(archives)
            .map(|name| temp.path().join(name.trim_end_matches('/')))
            .collect();
        expected.sort();
        assert_eq!(both.to_vec(), expected);
        assert!(error.to_string().contains(&first.display().to_string()));
        assert!(error.to_string().contains(&second.display().to_string()));
    }

    #[test]
    fn discover_fails_on_a_missing_directory() {
        let temp = TempDir::new().unwrap();
        let error = discover(&temp.path().join("nowhere")).unwrap_err();
        assert!(matches!(error, SubmissionError::ListDir { .. }), "{error}");
    }

    #[test]
    fn printable_escapes_and_cuts() {
        assert_eq!(printable("tab\there"), "tab\\u{9}here");
        assert_eq!(printable(&"x".repeat(81)), format!("{}…", "x".repeat(80)));
        assert_eq!(printable(&"x".repeat(80)), "x".repeat(80));
    }
}

//! The scan policy, the same for every kind of submission: the [`Limits`],
//! which entries are taken (a slot file at the top level or under one
//! top-level directory; never an absolute path or one with `..`), how names
//! from a submission are shown, and the [`Scan`] state a reader feeds entry by
//! entry, which words every problem for the student.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read};

use super::Loaded;

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

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
/// How many names taken from a submission one problem line gives before it
/// just counts the rest.
const NAMED_AT_MOST: usize = 5;

/// `text` safe to show anywhere: printable ASCII kept, anything else (control
/// characters, terminal escapes, bidirectional overrides) escaped, cut at 80
/// characters.
pub(super) fn printable(text: &str) -> String {
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
pub(super) fn quoted(text: &str) -> String {
    format!("`{}`", printable(text))
}

pub(super) fn human_bytes(bytes: u64) -> String {
    if bytes >= MIB && bytes % MIB == 0 {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= KIB && bytes % KIB == 0 {
        format!("{} KiB", bytes / KIB)
    } else {
        format!("{bytes} bytes")
    }
}

/// What an entry is, in any kind of source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum EntryType {
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
pub(super) struct Target {
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
pub(super) struct Scan<'a> {
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
    pub(super) fn new(slots: &'a [&'a str], limits: &'a Limits) -> Self {
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
    pub(super) fn admit(&mut self) -> bool {
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
    pub(super) fn entries_left(&self) -> usize {
        self.limits.max_entries.saturating_sub(self.entries) + 1
    }

    /// The limits this walk keeps to.
    pub(super) fn limits(&self) -> &Limits {
        self.limits
    }

    /// Stops the walk; the first reason is the one reported.
    pub(super) fn stop(&mut self, problem: String) {
        if !self.stopped {
            self.general.push(problem);
            self.stopped = true;
        }
    }

    /// Decides what the entry at `path` (its separators: `separators`) is
    /// for: `Some` for a slot file to read now, `None` for anything else
    /// (after noting a problem if it is a slot, or the way to one, gone wrong).
    pub(super) fn judge(
        &mut self,
        path: &str,
        separators: &[char],
        entry: EntryType,
    ) -> Option<Target> {
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
    pub(super) fn read(&mut self, target: Target, reader: impl Read) {
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

    /// Notes why the slot file `target` was not read (`why`: e.g. `is a hard
    /// link: not read`).
    pub(super) fn not_read(&mut self, target: Target, why: &str) {
        self.roots
            .entry(target.root)
            .or_default()
            .problems
            .push(format!("{} {why}", target.slot));
    }

    /// Notes a problem with the submission as a whole that does not stop the
    /// walk.
    pub(super) fn note(&mut self, problem: String) {
        self.general.push(problem);
    }

    pub(super) fn stop_at_total(&mut self) {
        self.stop(format!(
            "the submission holds more than {} of data: reading stopped there",
            human_bytes(self.limits.max_total_bytes)
        ));
    }

    /// The archive could not be read (any more): the student's problem.
    pub(super) fn unreadable(&mut self, what: &str, error: impl std::fmt::Display) {
        let when = if self.entries > 1 {
            "could not be read to its end"
        } else {
            "could not be read"
        };
        self.stop(format!("the {what} {when}: {error}"));
    }

    /// The findings of the root holding the most slots, with every problem
    /// worded.
    pub(super) fn finish(mut self, student: &str) -> Loaded {
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
pub(super) struct Capped<R> {
    inner: R,
    left: u64,
    exceeded: bool,
}

impl<R> Capped<R> {
    pub(super) fn new(inner: R, limit: u64) -> Self {
        Capped {
            inner,
            left: limit,
            exceeded: false,
        }
    }

    /// Whether more than the limit came through (the stream was cut).
    pub(super) fn exceeded(&self) -> bool {
        self.exceeded
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
mod tests;

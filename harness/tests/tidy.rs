//! House rules of `harness/src`, checked on the source text (rust-analyzer's
//! `tidy.rs` is the model): the dependency table of ARCHITECTURE.md, the one
//! process door, a `//!` doc on every module, no file over the length limit.
//! The rules are read from ARCHITECTURE.md where it states them, so the map
//! and the check cannot drift apart.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use support::workspace_root;

/// The longest a source file may be, tests included.
const MAX_LINES: usize = 700;

/// Where a child process may be started: the door, and the guest's kernel
/// compile (ARCHITECTURE.md says why it is the one exception).
const SPAWNING_FILES: &[&str] = &["process.rs", "guest/kernel.rs"];

#[test]
fn modules_depend_only_on_what_architecture_md_allows() {
    let allowed = dependency_table();
    let mut broken = Vec::new();
    let mut unmapped = BTreeSet::new();
    for file in source_files() {
        let Some(module) = file.module() else {
            continue;
        };
        let Some(may_use) = allowed.get(&module) else {
            unmapped.insert(module);
            continue;
        };
        for used in file.crate_references() {
            if used != module && !may_use.contains(&used) {
                broken.push(format!("{}: `{module}` uses `{used}`", file.relative));
            }
        }
    }
    assert!(
        unmapped.is_empty(),
        "modules missing from ARCHITECTURE.md's dependency table: {unmapped:?}"
    );
    assert!(
        broken.is_empty(),
        "dependencies ARCHITECTURE.md does not allow:\n{}",
        broken.join("\n")
    );
}

#[test]
fn the_dependency_table_has_no_cycle() {
    let table = dependency_table();
    // Depth-first, keeping the path: a module met again on its own path
    // closes a cycle.
    fn visit(
        module: &str,
        table: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if done.contains(module) {
            return;
        }
        assert!(
            !path.iter().any(|m| m == module),
            "ARCHITECTURE.md's dependency table has a cycle: {} -> {module}",
            path.join(" -> ")
        );
        path.push(module.to_string());
        for used in table.get(module).into_iter().flatten() {
            visit(used, table, path, done);
        }
        path.pop();
        done.insert(module.to_string());
    }
    let mut done = BTreeSet::new();
    for module in table.keys() {
        visit(module, &table, &mut Vec::new(), &mut done);
    }
}

#[test]
fn children_start_only_through_the_process_door() {
    let mut found = Vec::new();
    for file in source_files() {
        if SPAWNING_FILES.contains(&file.relative.as_str()) {
            continue;
        }
        for (number, line) in file.code_lines() {
            if starts_a_child(line) {
                found.push(format!("{}:{number}: {}", file.relative, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "children started outside the process door (use process::run, run_blocking or ChildProcess::spawn):\n{}",
        found.join("\n")
    );
}

#[test]
fn every_module_says_what_it_is_for() {
    let undocumented: Vec<String> = source_files()
        .into_iter()
        .filter(|file| {
            let first = file.text.lines().find(|line| !line.trim().is_empty());
            !first.is_some_and(|line| line.starts_with("//!"))
        })
        .map(|file| file.relative)
        .collect();
    assert!(
        undocumented.is_empty(),
        "files that do not start with a `//!` module doc: {undocumented:?}"
    );
}

#[test]
fn no_source_file_is_over_the_length_limit() {
    let long: Vec<String> = source_files()
        .into_iter()
        .filter(|file| file.text.lines().count() > MAX_LINES)
        .map(|file| format!("{} ({} lines)", file.relative, file.text.lines().count()))
        .collect();
    assert!(
        long.is_empty(),
        "files over {MAX_LINES} lines: split them along their seams: {long:?}"
    );
}

/// The checks themselves, on text made for them: a rule that cannot fail
/// checks nothing.
mod the_checks {
    use super::*;

    #[test]
    fn spawning_calls_are_recognised() {
        assert!(starts_a_child(
            "let out = Command::new(\"qemu\").output().await;"
        ));
        assert!(starts_a_child("    .spawn()?;"));
        assert!(starts_a_child("let status = cmd.status();"));
        assert!(!starts_a_child("let status = self.status();"));
        assert!(!starts_a_child(
            "running.spawn(async move { run_lab().await });"
        ));
        assert!(!starts_a_child(
            "let child = ChildProcess::spawn(cmd, None, &enclosure)?;"
        ));
    }

    #[test]
    fn references_are_read_from_code_not_from_comments_or_tests() {
        let file = SourceFile::new(
            "runner/x.rs",
            "//! Uses [`crate::cli`] in a doc.\n\
             use crate::{events::{Event, EventSink},\n    vm::Plan};\n\
             use crate::time::Deadline; // crate::report in a comment\n\
             let x = crate::shard::Shard::parse(\"1/2\");\n\
             #[cfg(test)]\n\
             mod tests {\n    use crate::guest;\n}\n",
        );
        let used: Vec<String> = file.crate_references().into_iter().collect();
        assert_eq!(used, ["events", "shard", "time", "vm"]);
    }

    #[test]
    fn test_only_files_are_left_out() {
        let files: Vec<String> = source_files().into_iter().map(|f| f.relative).collect();
        assert!(files.iter().any(|f| f == "sandbox/mod.rs"), "{files:?}");
        assert!(!files.iter().any(|f| f == "sandbox/tests.rs"), "{files:?}");
        assert!(
            !files.iter().any(|f| f == "vm/rewrite/fixtures.rs"),
            "{files:?}"
        );
    }

    #[test]
    fn child_modules_live_beside_their_parent() {
        assert_eq!(child_module_dir("lib.rs"), "");
        assert_eq!(child_module_dir("sandbox/mod.rs"), "sandbox/");
        assert_eq!(child_module_dir("cli.rs"), "cli/");
        assert_eq!(
            child_module_dir("vm/allowlist/options.rs"),
            "vm/allowlist/options/"
        );
    }

    #[test]
    fn the_table_of_architecture_md_is_read() {
        let table = dependency_table();
        assert!(table["time"].is_empty(), "{table:?}");
        assert!(table["runner"].contains("vm"), "{table:?}");
        assert!(!table["report"].contains("runner"), "{table:?}");
    }
}

/// A call that starts a process on a `Command`: `.spawn()`, `.output()`,
/// `.status()` (but a type's own `self.status()`).
fn starts_a_child(line: &str) -> bool {
    line.contains(".spawn()")
        || line.contains(".output()")
        || (line.contains(".status()") && !line.contains("self.status()"))
}

/// ARCHITECTURE.md's table under "### Dependencies": each module and the
/// modules it may use.
fn dependency_table() -> BTreeMap<String, BTreeSet<String>> {
    let text = std::fs::read_to_string(workspace_root().join("ARCHITECTURE.md"))
        .expect("ARCHITECTURE.md is readable");
    let section = text
        .split("### Dependencies")
        .nth(1)
        .expect("ARCHITECTURE.md has a `### Dependencies` section");
    let table: BTreeMap<String, BTreeSet<String>> = section
        .lines()
        .skip_while(|line| !line.starts_with('|'))
        .take_while(|line| line.starts_with('|'))
        .filter_map(|row| {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let module = backticked(cells.get(1)?).into_iter().next()?;
            Some((module, backticked(cells.get(2)?).into_iter().collect()))
        })
        .collect();
    assert!(!table.is_empty(), "the dependency table has no rows");
    table
}

/// The `code` spans of a table cell.
fn backticked(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

#[derive(Debug)]
struct SourceFile {
    /// Relative to `harness/src`, with `/`.
    relative: String,
    text: String,
}

impl SourceFile {
    fn new(relative: &str, text: &str) -> Self {
        SourceFile {
            relative: relative.to_string(),
            text: text.to_string(),
        }
    }

    /// The top-level module the file belongs to; `None` for the crate root.
    fn module(&self) -> Option<String> {
        let first = self.relative.split('/').next()?;
        let name = first.strip_suffix(".rs").unwrap_or(first);
        (!matches!(name, "lib" | "main")).then(|| name.to_string())
    }

    /// Numbered lines of code: comments and the test module at the end of
    /// the file left out.
    fn code_lines(&self) -> Vec<(usize, &str)> {
        let mut lines = Vec::new();
        let mut numbered = self.text.lines().enumerate().peekable();
        while let Some((index, line)) = numbered.next() {
            let is_test_module = line.trim() == "#[cfg(test)]"
                && numbered
                    .peek()
                    .is_some_and(|(_, next)| next.trim_start().starts_with("mod "));
            if is_test_module && !numbered.peek().is_some_and(|(_, next)| next.ends_with(';')) {
                break;
            }
            let code = line.split("//").next().unwrap_or_default();
            if !code.trim().is_empty() {
                lines.push((index + 1, code));
            }
        }
        lines
    }

    /// The top-level modules named by `crate::…` paths in the code, groups
    /// (`crate::{a::X, b}`) included, over as many lines as rustfmt puts them.
    fn crate_references(&self) -> BTreeSet<String> {
        let code: String = self
            .code_lines()
            .iter()
            .map(|(_, line)| format!("{line}\n"))
            .collect();
        let mut used = BTreeSet::new();
        for rest in code.split("crate::").skip(1) {
            match rest.strip_prefix('{') {
                Some(group) => used.extend(group_heads(group)),
                None => used.extend(leading_identifier(rest)),
            }
        }
        used
    }
}

/// The first name of each item of a `{…}` group (the text after its `{`).
fn group_heads(group: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut item_start = true;
    for (index, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => item_start = true,
            c if item_start && !c.is_whitespace() => {
                item_start = false;
                heads.extend(leading_identifier(&group[index..]));
            }
            _ => {}
        }
    }
    heads
}

fn leading_identifier(text: &str) -> Option<String> {
    let name: String = text
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

/// Every `.rs` file under `harness/src` that is not test code: files of
/// `#[cfg(test)] mod NAME;` declarations and `tests.rs` files left out.
fn source_files() -> Vec<SourceFile> {
    let src = workspace_root().join("harness/src");
    let mut paths = Vec::new();
    collect_rs(&src, &mut paths);
    let files: Vec<SourceFile> = paths
        .iter()
        .map(|path| {
            let relative = path
                .strip_prefix(&src)
                .expect("under src")
                .to_string_lossy()
                .replace('\\', "/");
            SourceFile::new(
                &relative,
                &std::fs::read_to_string(path).expect("source is readable"),
            )
        })
        .collect();
    let test_only = test_module_files(&files);
    files
        .into_iter()
        .filter(|file| !test_only.contains(&file.relative))
        .collect()
}

/// The files that hold `#[cfg(test)] mod NAME;` modules (`x/NAME.rs` or
/// `x/NAME/mod.rs` beside their parent).
fn test_module_files(files: &[SourceFile]) -> BTreeSet<String> {
    let mut test_only = BTreeSet::new();
    for file in files {
        let children = child_module_dir(&file.relative);
        let lines: Vec<&str> = file.text.lines().collect();
        for pair in lines.windows(2) {
            let declared = pair[1]
                .trim()
                .strip_prefix("mod ")
                .and_then(|rest| rest.strip_suffix(';'));
            if let (true, Some(name)) = (pair[0].trim() == "#[cfg(test)]", declared) {
                test_only.insert(format!("{children}{name}.rs"));
                test_only.insert(format!("{children}{name}/mod.rs"));
            }
        }
    }
    test_only
}

/// Where the files of a file's child modules live, with a final `/` (empty
/// for the crate root): `x/mod.rs` and `x.rs` keep them in `x/`.
fn child_module_dir(relative: &str) -> String {
    match relative {
        "lib.rs" | "main.rs" => String::new(),
        _ => format!(
            "{}/",
            relative
                .strip_suffix("/mod.rs")
                .unwrap_or_else(|| relative.trim_end_matches(".rs"))
        ),
    }
}

fn collect_rs(dir: &Path, into: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("source dir is readable")
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect_rs(&path, into);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            into.push(path);
        }
    }
}

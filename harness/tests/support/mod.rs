//! Shared by the integration tests that boot VMs.
#![allow(dead_code)] // each test binary uses its own part of this module

use std::path::{Path, PathBuf};

/// The workspace root (the harness crate's parent).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the harness lives one level below the workspace root")
        .to_path_buf()
}

/// Processes whose command line mentions `marker` (a test's own work root),
/// as `pid: command line`.
pub fn processes_mentioning(marker: &Path) -> Vec<String> {
    let marker = marker.to_string_lossy();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter_map(|entry| {
            let raw = std::fs::read(entry.path().join("cmdline")).ok()?;
            let line = String::from_utf8_lossy(&raw).replace('\0', " ");
            line.contains(marker.as_ref())
                .then(|| format!("{}: {}", entry.file_name().to_string_lossy(), line.trim()))
        })
        .collect()
}

/// What is left under `dir`, recursively, as relative paths.
pub fn leftovers(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&next) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            found.push(
                path.strip_prefix(dir)
                    .unwrap_or(&path)
                    .display()
                    .to_string(),
            );
            if path.is_dir() {
                pending.push(path);
            }
        }
    }
    found
}

/// Fails the test if any process still mentions `work_root` or anything is
/// left under it: labcheck promises neither outlives a run.
pub fn assert_nothing_left(work_root: &Path) {
    let processes = processes_mentioning(work_root);
    assert!(processes.is_empty(), "processes left: {processes:?}");
    let files = leftovers(work_root);
    assert!(
        files.is_empty(),
        "files left under the work root: {files:?}"
    );
}

/// Fails the test if the host's own network namespace has a device called
/// `name`: a lab's taps and bridges live only in the lab's namespace.
pub fn assert_no_host_link(name: &str) {
    let shown = std::process::Command::new("ip")
        .args(["link", "show", name])
        .output()
        .expect("run ip");
    assert!(
        !shown.status.success(),
        "{name} exists on the host: {}",
        String::from_utf8_lossy(&shown.stdout)
    );
}

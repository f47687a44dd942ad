//! Which Debian mirror to download from: `LABCHECK_DEBIAN_MIRROR`, else the machine's apt sources.
//!
//! No archive host is written into the project: the lock holds archive-relative paths and the
//! mirror is whatever this machine already uses for bookworm `main`.

use std::path::{Path, PathBuf};

use super::GuestError;

pub const MIRROR_ENV: &str = "LABCHECK_DEBIAN_MIRROR";
const SUITE: &str = "bookworm";
const COMPONENT: &str = "main";

/// The mirror URL without a trailing slash: the override if given, else the first apt source
/// under `apt_dir` (normally `/etc/apt`) serving `bookworm` `main`.
pub fn resolve(override_url: Option<&str>, apt_dir: &Path) -> Result<String, GuestError> {
    if let Some(url) = override_url.filter(|u| !u.trim().is_empty()) {
        return Ok(url.trim().trim_end_matches('/').to_string());
    }
    let files = source_files(apt_dir);
    files
        .iter()
        .find_map(|(path, text)| mirror_in_file(path, text))
        .ok_or_else(|| GuestError::NoMirror {
            env: MIRROR_ENV,
            searched: apt_dir.to_path_buf(),
        })
}

/// apt's own reading order: `sources.list`, then `sources.list.d/*` by name.
fn source_files(apt_dir: &Path) -> Vec<(PathBuf, String)> {
    let mut paths = vec![apt_dir.join("sources.list")];
    if let Ok(entries) = std::fs::read_dir(apt_dir.join("sources.list.d")) {
        let mut listed: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        listed.sort();
        paths.extend(listed);
    }
    paths
        .into_iter()
        .filter_map(|p| std::fs::read_to_string(&p).ok().map(|text| (p, text)))
        .collect()
}

fn mirror_in_file(path: &Path, text: &str) -> Option<String> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("sources") => mirror_in_deb822(text),
        Some("list") => mirror_in_one_line(text),
        _ => None,
    }
}

/// deb822 stanzas (`Types:`, `URIs:`, `Suites:`, `Components:`, `Enabled:`), separated by blank lines.
pub fn mirror_in_deb822(text: &str) -> Option<String> {
    stanzas(text).into_iter().find_map(|fields| {
        let get = |key: &str| {
            fields
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v.as_str())
                .unwrap_or("")
        };
        let words = |key: &str| get(key).split_whitespace().collect::<Vec<_>>();
        let enabled = !get("Enabled").trim().eq_ignore_ascii_case("no");
        let serves = enabled
            && words("Types").contains(&"deb")
            && words("Suites").contains(&SUITE)
            && words("Components").contains(&COMPONENT);
        serves
            .then(|| words("URIs").first().map(|u| normalise(u)))
            .flatten()
    })
}

/// Splits deb822 text into stanzas of (field, value); continuation lines join their field.
fn stanzas(text: &str) -> Vec<Vec<(String, String)>> {
    let mut all = Vec::new();
    let mut current: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !current.is_empty() {
                all.push(std::mem::take(&mut current));
            }
        } else if line.starts_with('#') {
            continue;
        } else if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = current.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((key, value)) = line.split_once(':') {
            current.push((key.trim().to_string(), value.trim().to_string()));
        }
    }
    all.push(current);
    all
}

/// One-line format: `deb [options] URI SUITE COMPONENT...`.
pub fn mirror_in_one_line(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let line = line.split('#').next().unwrap_or("").trim();
        let rest = line.strip_prefix("deb ")?.trim_start();
        let rest = match rest.strip_prefix('[') {
            Some(options) => options.split_once(']')?.1,
            None => rest,
        };
        let mut words = rest.split_whitespace();
        let uri = words.next()?;
        let suite = words.next()?;
        let serves = suite == SUITE && words.any(|c| c == COMPONENT);
        serves.then(|| normalise(uri))
    })
}

fn normalise(uri: &str) -> String {
    uri.trim_end_matches('/').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const DEB822: &str = "\
Types: deb
# a comment
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main

Types: deb-src
URIs: http://src.example/debian
Suites: bookworm
Components: main

Types: deb
URIs: http://mirror.example/debian/
Suites: bookworm bookworm-updates
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
";

    #[test]
    fn deb822_picks_the_stanza_serving_bookworm_main() {
        assert_eq!(
            mirror_in_deb822(DEB822).as_deref(),
            Some("http://mirror.example/debian")
        );
    }

    #[test]
    fn deb822_skips_disabled_stanzas_and_reads_continuations() {
        let text = "Types: deb\nURIs: http://off.example/debian\nSuites: bookworm\nComponents: main\nEnabled: no\n\n\
                    Types: deb\nURIs: http://mirror.example/debian\nSuites: bullseye\n bookworm\nComponents: main\n";
        assert_eq!(
            mirror_in_deb822(text).as_deref(),
            Some("http://mirror.example/debian")
        );
    }

    #[rstest]
    #[case::plain(
        "deb http://mirror.example/debian bookworm main",
        Some("http://mirror.example/debian")
    )]
    #[case::options(
        "deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian/ bookworm contrib main",
        Some("http://mirror.example/debian")
    )]
    #[case::commented("# deb http://mirror.example/debian bookworm main", None)]
    #[case::source_only("deb-src http://mirror.example/debian bookworm main", None)]
    #[case::other_suite("deb http://mirror.example/debian bookworm-updates main", None)]
    #[case::no_main("deb http://mirror.example/debian bookworm contrib", None)]
    fn one_line_sources(#[case] text: &str, #[case] expected: Option<&str>) {
        assert_eq!(mirror_in_one_line(text).as_deref(), expected);
    }

    #[test]
    fn override_wins_and_loses_its_trailing_slash() {
        let empty = tempfile::tempdir().expect("temp dir");
        let url =
            resolve(Some("http://mirror.example/debian/"), empty.path()).expect("override used");
        assert_eq!(url, "http://mirror.example/debian");
    }

    #[test]
    fn reads_an_apt_directory_in_apt_order() {
        let apt = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(apt.path().join("sources.list.d")).expect("mkdir");
        std::fs::write(apt.path().join("sources.list.d/debian.sources"), DEB822).expect("write");
        std::fs::write(
            apt.path().join("sources.list.d/zz.list.disabled"),
            "deb http://no.example/ bookworm main",
        )
        .expect("write");
        assert_eq!(
            resolve(None, apt.path()).expect("found"),
            "http://mirror.example/debian"
        );
        std::fs::write(
            apt.path().join("sources.list"),
            "deb http://first.example/debian bookworm main\n",
        )
        .expect("write");
        assert_eq!(
            resolve(None, apt.path()).expect("found"),
            "http://first.example/debian"
        );
    }

    #[test]
    fn no_source_says_what_to_set() {
        let empty = tempfile::tempdir().expect("temp dir");
        let err = resolve(None, empty.path()).expect_err("nothing configured");
        assert!(err.to_string().contains(MIRROR_ENV), "{err}");
    }
}

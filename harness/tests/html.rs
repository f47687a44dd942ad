//! The HTML renderer on the recorded reports (no VM): a reviewed snapshot,
//! a page that fetches nothing, and what a person sees when Chromium opens
//! it. See render.rs for what `passing.json` and `broken.json` hold.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use labcheck::report::{html, Outcome, Report, StepReport};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde_json::Value;

mod support;

fn recorded_json(name: &str) -> Value {
    let path = support::workspace_root().join(format!("fixtures/reports/{name}.json"));
    let text = std::fs::read_to_string(&path).expect("read a recorded report");
    serde_json::from_str(&text).expect("a recorded report is JSON")
}

fn report_of(json: Value) -> Report {
    serde_json::from_value(json).expect("a recorded report fits the model")
}

fn recorded(name: &str) -> Report {
    report_of(recorded_json(name))
}

/// The recorded reports come without their transcripts: these stand in,
/// with the console garbage a real one holds (colour codes, CR LF, markup
/// characters). One is missing, as when a report is moved without them.
fn fake_transcript(path: &str) -> Option<String> {
    if path == MISSING_TRANSCRIPT {
        return None;
    }
    Some(format!(
        "\u{1b}[0;32mOK\u{1b}[0m transcript of {path}\r\nlogin: <root> & more\r\n\u{7}# "
    ))
}

const MISSING_TRANSCRIPT: &str = "socket/vm2.control.log";

fn page(report: &Report) -> String {
    html(report, &fake_transcript)
}

#[test]
fn broken_snapshot() {
    insta::assert_snapshot!("html_broken", page(&recorded("broken")));
}

/// Every string in a report's JSON with `http` made `hxxp`: the page of
/// such a report can hold a URL only if the renderer put it there.
fn without_urls(value: Value) -> Value {
    match value {
        Value::String(text) => Value::String(text.replace("http", "hxxp")),
        Value::Array(items) => Value::Array(items.into_iter().map(without_urls).collect()),
        Value::Object(fields) => Value::Object(
            fields
                .into_iter()
                .map(|(key, value)| (key, without_urls(value)))
                .collect(),
        ),
        other => other,
    }
}

#[test]
fn the_page_fetches_nothing() {
    for name in ["passing", "broken"] {
        let json = recorded_json(name);
        let page_of_report = page(&report_of(json.clone())).to_lowercase();
        // Anything that makes a browser load a resource, or links away.
        for fetch in [
            "<link", "<script", "@import", "url(", "src=", "<img", "<iframe", "<object", "<embed",
            "<base",
        ] {
            assert!(
                !page_of_report.contains(fetch),
                "{name}: the page holds {fetch:?}"
            );
        }
        for (at, _) in page_of_report.match_indices("href=\"") {
            let target = &page_of_report[at + 6..];
            assert!(
                target.starts_with('#'),
                "{name}: a link leaves the page: {}",
                &target[..target.len().min(60)]
            );
        }
        let scrubbed = page(&report_of(without_urls(json))).to_lowercase();
        for scheme in ["http://", "https://"] {
            assert!(
                !scrubbed.contains(scheme),
                "{name}: the renderer wrote {scheme} of its own"
            );
        }
    }
    // The check above can fail: broken.json's report text has a URL.
    assert!(page(&recorded("broken")).contains("https://dl-cdn.alpinelinux.org"));
}

#[test]
fn report_text_cannot_become_markup() {
    let mut report = recorded("broken");
    report.labs[0].title = "<b>bold</b> & <script>alert(1)</script>".into();
    let text = page(&report);
    assert!(!text.contains("<b>bold"), "the title became markup");
    assert!(text.contains("&lt;b&gt;bold&lt;/b&gt; &amp; &lt;script&gt;"));
    assert!(
        text.contains(
            "␛[0;32mOK␛[0m transcript of socket/vm1.log\nlogin: &lt;root&gt; &amp; more\n␇# "
        ),
        "a transcript's control bytes show as symbols"
    );
    assert!(text.contains(&format!(
        "vm2 (control channel) — {MISSING_TRANSCRIPT}: not available"
    )));
}

/// How long one Chromium run may take: it loads one local file; a cold
/// start on a busy two-core machine takes a few seconds.
const CHROMIUM_DEADLINE: Duration = Duration::from_secs(60);

/// Appended to the page under test (a copy): the text the page shows,
/// `innerText`, which leaves out what is folded or hidden, written into
/// the DOM where `--dump-dom` prints it.
const VISIBLE_TEXT_PROBE: &str = "<pre id=\"probe-visible-text\"></pre><script>\
document.getElementById('probe-visible-text').textContent = document.body.innerText;\
</script>";

/// What Chromium made of a page: its DOM, and the text a person sees.
struct Opened {
    dom: String,
    visible: String,
}

/// Opens `page` in headless Chromium, with every host name unresolvable
/// and its background traffic off, so nothing leaves the machine.
fn open_in_chromium(page: &str) -> Opened {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("report.html");
    let probed = page.replace("</body>", &format!("{VISIBLE_TEXT_PROBE}</body>"));
    std::fs::write(&file, probed).expect("write the page");
    let dump = dir.path().join("dom.html");
    let log = dir.path().join("chromium.log");
    let status = run_chromium(dir.path(), &file, &dump, &log);
    let dom = std::fs::read_to_string(&dump).expect("read the dumped DOM");
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        status.success() && dom.contains("</html>"),
        "chromium exited {status} and dumped {} bytes; its log:\n{log}",
        dom.len()
    );
    let leftovers = support::processes_mentioning(dir.path());
    assert!(leftovers.is_empty(), "chromium left {leftovers:?}");
    let visible = unescape(
        between(&dom, "<pre id=\"probe-visible-text\">", "</pre>")
            .expect("the probe wrote the visible text"),
    );
    Opened { dom, visible }
}

fn run_chromium(dir: &Path, file: &Path, dump: &Path, log: &Path) -> std::process::ExitStatus {
    let chromium = chromium_path();
    let mut child = Command::new(&chromium)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--host-resolver-rules=MAP * ~NOTFOUND",
        ])
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", file.display()))
        // Files, not pipes: a large DOM would fill a pipe no one reads
        // while we wait.
        .stdout(File::create(dump).expect("create the dump file"))
        .stderr(File::create(log).expect("create the log file"))
        // Its own group, so a hung Chromium goes with all its helpers.
        .process_group(0)
        .spawn()
        .expect("start chromium");
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait for chromium") {
            return status;
        }
        if started.elapsed() > CHROMIUM_DEADLINE {
            let group = Pid::from_raw(i32::try_from(child.id()).expect("a pid fits i32"));
            let _ = killpg(group, Signal::SIGKILL);
            let _ = child.wait();
            let log = std::fs::read_to_string(log).unwrap_or_default();
            panic!(
                "chromium did not exit within {CHROMIUM_DEADLINE:?} on {}; killed it. Its log:\n{log}",
                file.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Chromium on PATH, or a failure saying how to install it: this test
/// must not pass on a machine that cannot run it.
fn chromium_path() -> PathBuf {
    let paths = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&paths)
        .map(|dir| dir.join("chromium"))
        .find(|path| path.is_file())
        .unwrap_or_else(|| {
            panic!(
                "chromium is not installed: `apt-get install chromium` \
                 (`cargo xtask test` installs it as root)"
            )
        })
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let to = from + text[from..].find(end)?;
    Some(&text[from..to])
}

/// Text as the DOM serializer escaped it.
fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}

/// Whitespace runs as one space: a browser lays text out so.
fn squeezed(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn assert_visible(opened: &Opened, what: &str, text: &str) {
    assert!(
        squeezed(&opened.visible).contains(&squeezed(text)),
        "the page does not show {what} {text:?}; it shows:\n{}",
        opened.visible
    );
}

fn steps_with(report: &Report, outcome: Outcome) -> Vec<&StepReport> {
    report
        .labs
        .iter()
        .flat_map(|lab| &lab.steps)
        .filter(|step| step.outcome == outcome)
        .collect()
}

#[test]
fn chromium_shows_the_broken_run() {
    let report = recorded("broken");
    let opened = open_in_chromium(&page(&report));
    assert_visible(&opened, "the lab id", &report.labs[0].id);
    let failed = steps_with(&report, Outcome::Failed);
    assert_eq!(failed.len(), 1, "broken.json has one failed step");
    let step = failed[0];
    assert_visible(&opened, "the failed step", &step.name);
    assert_visible(&opened, "what was expected", &step.expected[0]);
    assert_visible(&opened, "what was observed", &step.mismatches[0]);
    let last_console_line = step.console_tail.last().expect("a console tail");
    assert_visible(&opened, "the console tail", last_console_line);
    for claim in steps_with(&report, Outcome::NotChecked) {
        let reason = claim.note.as_deref().expect("a not-checked reason");
        assert_visible(&opened, "why a claim was not checked", reason);
    }
    // Each transcript is there, folded: its name shows, its text does not.
    let transcripts = &report.labs[0].transcripts;
    assert_eq!(
        opened.dom.matches("<details class=\"transcript\">").count(),
        transcripts.len(),
        "one <details> per transcript"
    );
    assert_visible(&opened, "the transcript's name", "vm1 — socket/vm1.log");
    assert!(opened.dom.contains("transcript of socket/vm1.log"));
    assert!(
        !opened.visible.contains("transcript of socket/vm1.log"),
        "a transcript shows unfolded"
    );
}

#[test]
fn chromium_shows_the_passing_run() {
    let report = recorded("passing");
    let opened = open_in_chromium(&page(&report));
    for lab in &report.labs {
        assert_visible(&opened, "a lab id", &lab.id);
    }
    let errata = steps_with(&report, Outcome::Erratum);
    assert!(!errata.is_empty(), "passing.json has errata");
    for step in errata {
        let erratum = step.erratum.as_ref().expect("an erratum step has one");
        assert_visible(&opened, "an erratum's reason", &erratum.reason);
        if let Some(fix) = &erratum.fix {
            assert_visible(&opened, "an erratum's fix", fix);
        }
    }
    assert_visible(
        &opened,
        "the accelerator's reason",
        &report.environment.accelerator_detail,
    );
    assert!(opened.dom.contains("<details class=\"transcript\">"));
}

//! The `labcheck` binary as a user runs it: failures, deadlines and Ctrl-C
//! leave no QEMU process and no work dir behind.

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rstest::rstest;
use support::{assert_no_host_link, assert_nothing_left, processes_mentioning};

fn labcheck() -> Command {
    Command::new(env!("CARGO_BIN_EXE_labcheck"))
}

/// Writes `lab` into `dir` and returns its path.
fn lab_file(dir: &Path, lab: &str) -> std::path::PathBuf {
    let path = dir.join("lab.toml");
    std::fs::write(&path, lab).expect("write the lab file");
    path
}

/// A VM with no boot media: SeaBIOS prints and loops, no shell ever comes.
const NO_SHELL_LAB: &str = r#"
[lab]
id = "no-shell"
title = "A VM that never reaches a shell"
handout = "none"

[vm.vm1]
qemu = "qemu-system-x86_64 -m 64 -net none -nographic"

[[step]]
name = "Boot a VM with nothing to boot"
boot = "vm1"
timeout = "2s"

[[step]]
name = "Never runs"
on = "vm1"
run = "true"
"#;

#[test]
fn a_vm_that_never_reaches_a_shell_fails_with_deadline_pattern_and_tail() {
    let dir = tempfile::tempdir().expect("temp dir");
    let work_root = dir.path().join("work");
    let out = dir.path().join("out");
    let file = lab_file(dir.path(), NO_SHELL_LAB);

    let run = labcheck()
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .env("LABCHECK_WORK_ROOT", &work_root)
        .output()
        .expect("run labcheck");
    let stdout = String::from_utf8_lossy(&run.stdout);

    assert_eq!(run.status.code(), Some(1), "stdout:\n{stdout}");
    assert!(stdout.contains("a shell on the console"), "{stdout}");
    assert!(stdout.contains("timed out after"), "{stdout}");
    assert!(stdout.contains("console (last"), "{stdout}");
    assert!(
        stdout.contains("No bootable device") || stdout.contains("SeaBIOS"),
        "{stdout}"
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).expect("report.json"))
            .expect("report.json is JSON");
    let steps = &report["labs"][0]["steps"];
    assert_eq!(steps[0]["outcome"], "failed");
    assert!(!steps[0]["console_tail"]
        .as_array()
        .expect("tail")
        .is_empty());
    assert_eq!(steps[1]["outcome"], "skipped");
    assert_nothing_left(&work_root);
}

const LONG_LAB_SETUP: &str = r#"
[lab]
id = "long"
title = "A guest command that runs until interrupted"
handout = "none"

[images]
"disk.qcow2" = "guest:disk"

[vm.vm1]
qemu = "qemu-system-x86_64 -m 256 -hda disk.qcow2 -nographic"

"#;

/// The long lab in its own network namespace, with what a network lab leaves
/// running: a tap and a bridge, QEMU on the tap, a host command in the
/// background (its command line names the work dir, so a leak would show).
const NET_LONG_LAB_SETUP: &str = r#"
[lab]
id = "net-long"
title = "A network lab that runs until interrupted"
handout = "none"
network = "namespace"

[images]
"alpine.iso" = "guest:iso"

[vm.vm1]
qemu = "qemu-system-x86_64 -m 256 -cdrom alpine.iso -netdev tap,id=n0,ifname=tap0,script=no,downscript=no -device e1000,netdev=n0 -nographic"

[[step]]
name = "A tap on a bridge"
host = "sudo ip tuntap add tap0 mode tap && sudo ip link add br0 type bridge && sudo ip link set tap0 master br0"

[[step]]
name = "Something in the background"
host = 'cp "$(command -v sleep)" lingering && exec "$PWD/lingering" 1000'
background = "lingering"

"#;
/// The end of both long labs: a guest command that runs until interrupted.
const LONG_STEPS: &str = r#"
[[step]]
name = "Boot"
boot = "vm1"

[[step]]
name = "Sleep for a long time"
on = "vm1"
run = "sleep 1000"
timeout = "10m"
"#;

/// A long lab: its set-up, then LONG_STEPS.
fn long_lab(setup: &str) -> String {
    format!("{setup}{LONG_STEPS}")
}

/// Nothing of a lab outlives it: no process, no file, and no tap or bridge
/// on the host (the network lab's live in its namespace, gone with it).
fn assert_nothing_of_the_lab_left(work_root: &Path) {
    assert_nothing_left(work_root);
    assert_no_host_link("tap0");
    assert_no_host_link("br0");
}

#[rstest]
#[case::host_network(long_lab(LONG_LAB_SETUP))]
#[case::own_namespace(long_lab(NET_LONG_LAB_SETUP))]
fn ctrl_c_stops_the_vms_and_removes_the_work_dirs(#[case] lab: String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let work_root = dir.path().join("work");
    let file = lab_file(dir.path(), &lab);
    let mut child = labcheck()
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(dir.path().join("out"))
        .env("LABCHECK_WORK_ROOT", &work_root)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start labcheck");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let ready = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|line| line.contains("shell ready"));
    assert!(ready, "labcheck ended before the VM was ready");
    assert!(
        !processes_mentioning(&work_root).is_empty(),
        "QEMU should be running now"
    );

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("send SIGINT");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "labcheck did not stop within 30 s of Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(100));
    };

    assert_eq!(status.code(), Some(130));
    assert_nothing_of_the_lab_left(&work_root);
}

#[rstest]
#[case::host_network(long_lab(LONG_LAB_SETUP))]
#[case::own_namespace(long_lab(NET_LONG_LAB_SETUP))]
fn a_guest_command_past_its_deadline_fails_and_cleans_up(#[case] lab: String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let work_root = dir.path().join("work");
    let lab = lab.replace("timeout = \"10m\"", "timeout = \"1s\"");
    let file = lab_file(dir.path(), &lab);
    let run = labcheck()
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(dir.path().join("out"))
        .env("LABCHECK_WORK_ROOT", &work_root)
        .output()
        .expect("run labcheck");
    let stdout = String::from_utf8_lossy(&run.stdout);

    assert_eq!(run.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("sleep 1000"), "{stdout}");
    assert!(stdout.contains("timed out after"), "{stdout}");
    assert_nothing_of_the_lab_left(&work_root);
}

#[test]
fn a_bad_lab_file_runs_nothing_and_exits_2_with_its_position() {
    let dir = tempfile::tempdir().expect("temp dir");
    let work_root = dir.path().join("work");
    let file = lab_file(
        dir.path(),
        &NO_SHELL_LAB.replace("on = \"vm1\"", "on = \"vm9\""),
    );
    let run = labcheck()
        .arg("run")
        .arg(&file)
        .env("LABCHECK_WORK_ROOT", &work_root)
        .output()
        .expect("run labcheck");
    let stderr = String::from_utf8_lossy(&run.stderr);

    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("vm9"), "{stderr}");
    assert!(stderr.contains("lab.toml:17:"), "{stderr}");
    assert!(!work_root.exists(), "nothing may run for a bad lab file");
}

/// Two host-only labs that can only pass together: each waits for a mark
/// the other leaves. One at a time, lab-a (given first, so run first) waits
/// in vain and lab-b then finds lab-a's mark.
fn rendezvous_lab(me: &str, other: &str, shared: &Path) -> String {
    let shared = shared.display();
    format!(
        r#"
[lab]
id = "{me}"
title = "Lab {me} meets lab {other}"
handout = "none"

[[step]]
name = "Leave a mark"
host = "touch {shared}/{me}"

[[step]]
name = "See the other lab's mark"
probe = "test -e {shared}/{other}"
timeout = "1s"
"#
    )
}

#[rstest]
#[case::one_at_a_time(1, 1, ["failed", "passed"])]
#[case::together(2, 0, ["passed", "passed"])]
fn jobs_run_labs_at_once_and_report_them_in_the_given_order(
    #[case] jobs: u8,
    #[case] exit: i32,
    #[case] outcomes: [&str; 2],
) {
    let dir = tempfile::tempdir().expect("temp dir");
    let shared = dir.path().join("marks");
    std::fs::create_dir(&shared).expect("marks dir");
    let a = dir.path().join("a.toml");
    let b = dir.path().join("b.toml");
    std::fs::write(&a, rendezvous_lab("lab-a", "lab-b", &shared)).expect("write a");
    std::fs::write(&b, rendezvous_lab("lab-b", "lab-a", &shared)).expect("write b");
    let out = dir.path().join("out");
    let run = labcheck()
        .args(["run", "--jobs", &jobs.to_string(), "--out"])
        .arg(&out)
        .arg(&a)
        .arg(&b)
        .env("LABCHECK_WORK_ROOT", dir.path().join("work"))
        .output()
        .expect("run labcheck");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(run.status.code(), Some(exit), "{stdout}");
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("report.json")).expect("report written"),
    )
    .expect("report is JSON");
    let ids: Vec<_> = report["labs"]
        .as_array()
        .expect("labs")
        .iter()
        .map(|lab| {
            (
                lab["id"].as_str().unwrap_or_default(),
                lab["outcome"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(ids, [("lab-a", outcomes[0]), ("lab-b", outcomes[1])]);
    // The same report for CI and for people, next to report.json.
    for rendered in ["junit.xml", "summary.md", "report.html"] {
        let text = std::fs::read_to_string(out.join(rendered)).expect("rendered report written");
        assert!(
            text.contains("lab-a") && text.contains("lab-b"),
            "{rendered}: {text}"
        );
    }
    assert_nothing_left(&dir.path().join("work"));
}

/// A small host-only lab whose report has some substance: output, an
/// erratum with its fix, a claim not checked.
fn sharded_lab(id: &str) -> String {
    format!(
        r#"
[lab]
id = "{id}"
title = "Lab {id}"
handout = "none"

[[step]]
name = "Say who we are"
host = "echo {id}"
expect = {{ output = "{id}" }}

[[step]]
name = "A handout command that fails the known way"
host = "echo 'no such option' >&2; exit 2"
erratum = {{ reason = "the option is gone", fix = "echo fixed", observed = {{ exit = 2 }} }}

[[step]]
name = "A claim"
not-checked = "not here"
"#
    )
}

/// The canonical reports of the labs in `out/report.json`, in its order.
fn canonical_labs(out: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(out.join("report.json")).expect("report written");
    let report: labcheck::report::Report = serde_json::from_str(&text).expect("a report");
    report
        .labs
        .iter()
        .map(|lab| {
            serde_json::to_value(labcheck::report::CanonicalLab::of(lab)).expect("serializes")
        })
        .collect()
}

#[test]
fn two_shards_merged_equal_the_full_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let files: Vec<_> = ["d-lab", "a-lab", "c-lab", "b-lab", "e-lab"]
        .iter()
        .map(|id| {
            let path = dir.path().join(format!("{id}.toml"));
            std::fs::write(&path, sharded_lab(id)).expect("write lab");
            path
        })
        .collect();
    let run = |out: &str, shard: Option<&str>| {
        let mut command = labcheck();
        command
            .arg("run")
            .arg("--out")
            .arg(dir.path().join(out))
            .args(&files)
            .env("LABCHECK_WORK_ROOT", dir.path().join("work"));
        if let Some(shard) = shard {
            command.args(["--shard", shard]);
        }
        let done = command.output().expect("run labcheck");
        assert_eq!(done.status.code(), Some(0), "{done:?}");
        String::from_utf8_lossy(&done.stdout).into_owned()
    };
    run("full", None);
    let first = run("shard-1", Some("1/2"));
    let second = run("shard-2", Some("2/2"));
    assert!(first.contains("shard 1/2: a-lab, c-lab, e-lab"), "{first}");
    assert!(second.contains("shard 2/2: b-lab, d-lab"), "{second}");

    let merged = labcheck()
        .arg("merge")
        .arg("--out")
        .arg(dir.path().join("merged"))
        .arg(dir.path().join("shard-2/report.json"))
        .arg(dir.path().join("shard-1/report.json"))
        .output()
        .expect("run labcheck merge");
    assert_eq!(merged.status.code(), Some(0), "{merged:?}");
    // The full run reports the labs in the order given; the merge by id.
    let mut full = canonical_labs(&dir.path().join("full"));
    full.sort_by_key(|lab| lab["id"].as_str().unwrap_or_default().to_owned());
    assert_eq!(canonical_labs(&dir.path().join("merged")), full);
    for rendered in ["junit.xml", "summary.md", "report.html"] {
        assert!(
            dir.path().join("merged").join(rendered).exists(),
            "{rendered}"
        );
    }
}

#[test]
fn merging_overlapping_shards_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("a-lab.toml");
    std::fs::write(&file, sharded_lab("a-lab")).expect("write lab");
    let out = dir.path().join("out");
    let ran = labcheck()
        .arg("run")
        .arg("--out")
        .arg(&out)
        .arg(&file)
        .env("LABCHECK_WORK_ROOT", dir.path().join("work"))
        .output()
        .expect("run labcheck");
    assert_eq!(ran.status.code(), Some(0));
    let report = out.join("report.json");
    let merged = labcheck()
        .arg("merge")
        .arg("--out")
        .arg(dir.path().join("merged"))
        .arg(&report)
        .arg(&report)
        .output()
        .expect("run labcheck merge");
    assert_eq!(merged.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&merged.stderr);
    assert!(
        stderr.contains("lab `a-lab` is in more than one report"),
        "{stderr}"
    );
}

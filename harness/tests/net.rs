//! The net module against the real kernel: namespaces, taps, bridges and a
//! QEMU attached to a lab's tap. Runs as root here, so both kinds are tested;
//! each test makes its own namespaces, so the handout's names (tap0, br0)
//! cannot collide between tests.

mod support;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use labcheck::net::{links_in, LabNamespace, Link, NamespaceKind};
use labcheck::process::{run_shell, ChildProcess, Enclosure, ShellExit};
use labcheck::time::Deadline;
use rstest::rstest;
use support::processes_mentioning;
use tempfile::TempDir;

const STEP: Duration = Duration::from_secs(10);

/// A fresh work dir and a namespace labelled with it, as the runner will make.
async fn lab(kind: NamespaceKind) -> (TempDir, LabNamespace) {
    let dir = tempfile::tempdir().expect("temp dir");
    let label = format!("labcheck-netns:{}", dir.path().display());
    let namespace =
        LabNamespace::create(kind, &dir.path().join("bin"), &label, Deadline::after(STEP))
            .await
            .expect("namespace created");
    (dir, namespace)
}

/// Runs `command` in `enclosure`; panics with its output unless it exits 0.
async fn sh(command: &str, dir: &Path, enclosure: &Enclosure) -> String {
    let ran = run_shell(command, dir, enclosure, Deadline::after(STEP))
        .await
        .expect("shell started");
    assert_eq!(
        ran.exit,
        ShellExit::Exited(0),
        "`{command}` printed {:?}",
        ran.text()
    );
    ran.text()
}

/// The network namespace a process is in, as `net:[inode]`.
fn net_namespace_of(pid: u32) -> Option<String> {
    let link = std::fs::read_link(format!("/proc/{pid}/ns/net")).ok()?;
    Some(link.display().to_string())
}

/// Pids of every process in network namespace `namespace` (`net:[inode]`).
fn processes_in(namespace: &str) -> Vec<u32> {
    let entries = std::fs::read_dir("/proc").expect("/proc readable");
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_string_lossy().parse::<u32>().ok())
        .filter(|&pid| net_namespace_of(pid).as_deref() == Some(namespace))
        .collect()
}

/// Open file descriptors, as `/proc/PID/fd/N`, that keep network namespace
/// `namespace` (`net:[inode]`) alive without a process in it.
fn holders_of(namespace: &str) -> Vec<String> {
    let entries = std::fs::read_dir("/proc").expect("/proc readable");
    entries
        .filter_map(Result::ok)
        .filter_map(|process| std::fs::read_dir(process.path().join("fd")).ok())
        .flat_map(|fds| fds.filter_map(Result::ok))
        .filter(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|target| target.as_os_str() == namespace)
        })
        .map(|fd| fd.path().display().to_string())
        .collect()
}

/// Polls `condition` every 10 ms until it holds or `budget` passes.
fn eventually(budget: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < budget {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    condition()
}

/// The holder is gone within 2 s of `event`, and no process is left in the
/// namespace it held.
fn assert_holder_gone_with_its_processes(holder: u32, namespace: &str, event: &str) {
    let gone = eventually(Duration::from_secs(2), || {
        !Path::new(&format!("/proc/{holder}")).exists()
    });
    assert!(gone, "holder {holder} still exists 2 s after {event}");
    // The kernel ends a namespace's other processes as the holder goes, but their exits
    // finish asynchronously: a loaded host showed two of them a moment after the holder.
    eventually(Duration::from_secs(2), || {
        processes_in(namespace).is_empty()
    });
    assert_eq!(
        processes_in(namespace),
        Vec::<u32>::new(),
        "processes still in {namespace} 2 s after the holder went"
    );
}
fn names(links: &[Link]) -> Vec<&str> {
    links.iter().map(|link| link.name.as_str()).collect()
}

#[rstest]
#[case::as_root(NamespaceKind::Net)]
#[case::unprivileged(NamespaceKind::UserAndNet)]
#[tokio::test]
async fn the_tap_lab_commands_work_inside_and_touch_nothing_outside(#[case] kind: NamespaceKind) {
    let (dir, lab) = lab(kind).await;
    assert_eq!(lab.kind(), kind);
    let sudo = sh("command -v sudo", dir.path(), lab.enclosure()).await;
    assert_eq!(
        sudo.trim(),
        lab.tool_dir().join("sudo").display().to_string()
    );
    assert_eq!(sh("id -u", dir.path(), lab.enclosure()).await.trim(), "0");
    // Only a user namespace has a one-id map: its root is whoever runs us.
    let uid_map = sh("cat /proc/self/uid_map", dir.path(), lab.enclosure()).await;
    let our_uid = nix::unistd::geteuid().as_raw().to_string();
    let expected_map = match kind {
        NamespaceKind::Net => ["0", "0", "4294967295"],
        NamespaceKind::UserAndNet => ["0", our_uid.as_str(), "1"],
    };
    assert_eq!(uid_map.split_whitespace().collect::<Vec<_>>(), expected_map);

    sh(
        "sudo ip tuntap add tap0 mode tap user $(whoami) && \
         sudo ip link add name br0 type bridge && \
         sudo ip link set tap0 master br0",
        dir.path(),
        lab.enclosure(),
    )
    .await;

    let inside = lab
        .links(&["tun", "bridge"], Deadline::after(STEP))
        .await
        .expect("links inside");
    assert_eq!(
        inside,
        [
            Link {
                name: "tap0".into(),
                kind: "tun".into(),
                master: Some("br0".into())
            },
            Link {
                name: "br0".into(),
                kind: "bridge".into(),
                master: None
            },
        ]
    );
    let outside = links_in(
        &Enclosure::host(),
        &["tun", "bridge"],
        Deadline::after(STEP),
    )
    .await
    .expect("links on the host");
    assert!(
        !names(&outside)
            .iter()
            .any(|name| ["tap0", "br0"].contains(name)),
        "the host has {outside:?}"
    );

    let lo: serde_json::Value =
        serde_json::from_str(&sh("ip -j link show lo", dir.path(), lab.enclosure()).await)
            .expect("ip -j prints JSON");
    let flags = &lo[0]["flags"];
    assert!(
        flags
            .as_array()
            .is_some_and(|flags| flags.iter().any(|flag| flag == "UP")),
        "lo inside is not up: {lo}"
    );
}

/// Why a lab cannot send traffic beyond itself: its namespace starts with
/// nothing but loopback, and no route leads anywhere else.
#[rstest]
#[case::as_root(NamespaceKind::Net)]
#[case::unprivileged(NamespaceKind::UserAndNet)]
#[tokio::test]
async fn nothing_leaves_a_labs_namespace(#[case] kind: NamespaceKind) {
    let (dir, namespace) = lab(kind).await;
    let links = sh("ip -o link show", dir.path(), namespace.enclosure()).await;
    assert_eq!(links.lines().count(), 1, "only loopback: {links}");
    assert!(links.contains(": lo:"), "{links}");
    let routes = sh("ip route show table all", dir.path(), namespace.enclosure()).await;
    assert!(
        routes.lines().all(|route| route.contains("dev lo")),
        "every route is loopback's: {routes}"
    );
    let outside = run_shell(
        "ip route get 192.0.2.1",
        dir.path(),
        namespace.enclosure(),
        Deadline::after(STEP),
    )
    .await
    .expect("shell started");
    assert_eq!(outside.exit, ShellExit::Exited(2), "{}", outside.text());
    assert!(outside.text().contains("Network is unreachable"));
}

#[rstest]
#[case::as_root(NamespaceKind::Net)]
#[case::unprivileged(NamespaceKind::UserAndNet)]
#[tokio::test]
async fn dropping_the_lab_removes_its_namespace_and_devices(#[case] kind: NamespaceKind) {
    let (dir, lab) = lab(kind).await;
    let holder = lab.holder_pid();
    let namespace = net_namespace_of(holder).expect("holder has a namespace");
    assert_ne!(
        Some(&namespace),
        net_namespace_of(std::process::id()).as_ref()
    );
    let seen_inside = sh("readlink /proc/self/ns/net", dir.path(), lab.enclosure()).await;
    assert_eq!(
        seen_inside.trim(),
        namespace,
        "children must run in the lab's namespace"
    );
    assert_eq!(
        processes_mentioning(dir.path()),
        [format!(
            "{holder}: labcheck-netns:{} infinity",
            dir.path().display()
        )],
        "the holder is findable by the work dir"
    );
    // A persistent tap, with a name no other test uses: if the kernel moved
    // it to the host instead of deleting it, it would show up there.
    let tap = format!("lt{}", std::process::id());
    sh(
        &format!("sudo ip tuntap add {tap} mode tap"),
        dir.path(),
        lab.enclosure(),
    )
    .await;
    assert_eq!(
        names(
            &lab.links(&["tun"], Deadline::after(STEP))
                .await
                .expect("links")
        ),
        [tap.as_str()]
    );

    drop(lab);

    assert_holder_gone_with_its_processes(holder, &namespace, "the drop");
    assert_eq!(
        holders_of(&namespace),
        Vec::<String>::new(),
        "{namespace} still held open"
    );
    // The kernel tears a namespace down in a work queue; give it a second.
    let mut host_links = Vec::new();
    let appeared = eventually(Duration::from_secs(1), || {
        host_links = std::fs::read_dir("/sys/class/net")
            .expect("/sys/class/net readable")
            .filter_map(Result::ok)
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .collect();
        host_links.contains(&tap)
    });
    assert!(!appeared, "{tap} reached the host: {host_links:?}");
    assert_eq!(processes_mentioning(dir.path()), Vec::<String>::new());
}

#[rstest]
#[case::as_root(NamespaceKind::Net)]
#[case::unprivileged(NamespaceKind::UserAndNet)]
#[tokio::test]
async fn qemu_attaches_to_the_labs_tap(#[case] kind: NamespaceKind) {
    let (dir, lab) = lab(kind).await;
    sh(
        "sudo ip tuntap add tap0 mode tap user $(whoami)",
        dir.path(),
        lab.enclosure(),
    )
    .await;
    let mut qemu = tokio::process::Command::new("qemu-system-x86_64");
    qemu.args(["-accel", "tcg", "-nodefaults", "-display", "none", "-S"])
        .args(["-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no"])
        .args(["-device", "e1000,netdev=n0"])
        // Only so that the leak check below can find it by the work dir.
        .arg("-name")
        .arg(dir.path())
        .stdout(Stdio::null());
    let log = dir.path().join("qemu.log");
    let mut qemu = ChildProcess::spawn(qemu, Some(&log), lab.enclosure()).expect("qemu started");

    tokio::time::sleep(Duration::from_secs(1)).await;
    let status = qemu.try_wait().expect("qemu's status");
    let said = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(status, None, "qemu exited within 1 s: {said}");
    assert_eq!(
        net_namespace_of(qemu.pid()),
        net_namespace_of(lab.holder_pid())
    );
    assert!(
        holds_tap(qemu.pid(), "tap0"),
        "qemu holds no file attached to tap0 (its log: {said:?})"
    );
    let inside = lab
        .links(&["tun"], Deadline::after(STEP))
        .await
        .expect("links");
    assert_eq!(
        names(&inside),
        ["tap0"],
        "qemu must use the lab's tap0, not make another"
    );

    drop(qemu);
    drop(lab);
    assert!(
        eventually(Duration::from_secs(2), || processes_mentioning(dir.path())
            .is_empty()),
        "left behind: {:?}",
        processes_mentioning(dir.path())
    );
}

/// Whether process `pid` has a tun file descriptor attached to `tap`: the
/// kernel lists the device as `iff:` in the descriptor's fdinfo.
fn holds_tap(pid: u32, tap: &str) -> bool {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return false;
    };
    let wanted = format!("iff:\t{tap}");
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| std::fs::read_to_string(entry.path()).ok())
        .any(|info| info.lines().any(|line| line == wanted))
}

#[rstest]
#[case::plain("sudo id -u", ShellExit::Exited(0), "0\n")]
#[case::keep_environment("X=kept sudo -E sh -c 'echo $X'", ShellExit::Exited(0), "kept\n")]
#[case::end_of_options("sudo -- echo -n", ShellExit::Exited(0), "")]
#[case::exit_status_passes_through("sudo sh -c 'exit 3'", ShellExit::Exited(3), "")]
#[case::unknown_option(
    "sudo -u nobody id",
    ShellExit::Exited(1),
    "labcheck's sudo: option -u is not supported\n"
)]
#[case::no_command("sudo", ShellExit::Exited(1), "labcheck's sudo: no command given\n")]
#[tokio::test]
async fn the_sudo_shim_runs_its_command_as_it_is(
    #[case] command: &str,
    #[case] exit: ShellExit,
    #[case] output: &str,
) {
    let (dir, lab) = lab(NamespaceKind::for_this_process()).await;
    let ran = run_shell(command, dir.path(), lab.enclosure(), Deadline::after(STEP))
        .await
        .expect("shell started");
    assert_eq!((ran.exit, ran.text().as_str()), (exit, output));
}

/// Where the kill test's helper makes its namespace, and which kind.
const KILL_TEST_DIR: &str = "LABCHECK_NET_KILL_TEST_DIR";
const KILL_TEST_KIND: &str = "LABCHECK_NET_KILL_TEST_KIND";

/// Stands for labcheck in `killing_labcheck_removes_the_namespace`: makes a
/// namespace, says the holder's pid, and waits to be killed.
#[tokio::test]
#[ignore = "run (and killed) by killing_labcheck_removes_the_namespace"]
#[allow(clippy::print_stdout)] // the pid goes to the parent test on stdout
async fn namespace_for_the_kill_test() {
    let dir = std::env::var_os(KILL_TEST_DIR).expect("run by the kill test");
    let kind = match std::env::var(KILL_TEST_KIND).as_deref() {
        Ok("user") => NamespaceKind::UserAndNet,
        _ => NamespaceKind::Net,
    };
    let dir = Path::new(&dir);
    let label = format!("labcheck-netns:{}", dir.display());
    let lab = LabNamespace::create(kind, &dir.join("bin"), &label, Deadline::after(STEP))
        .await
        .expect("namespace created");
    println!("holder {}", lab.holder_pid());
    tokio::time::sleep(STEP).await;
}

#[rstest]
#[case::as_root("net")]
#[case::unprivileged("user")]
fn killing_labcheck_removes_the_namespace(#[case] kind: &str) {
    use std::io::BufRead;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut labcheck = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "namespace_for_the_kill_test",
            "--ignored",
            "--nocapture",
        ])
        .env(KILL_TEST_DIR, dir.path())
        .env(KILL_TEST_KIND, kind)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("helper started");
    let stdout = labcheck.stdout.take().expect("piped stdout");
    let holder: u32 = std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|line| line.strip_prefix("holder ")?.parse().ok())
        .expect("the helper printed its holder's pid");
    let namespace = net_namespace_of(holder).expect("holder has a namespace");

    labcheck.kill().expect("SIGKILL sent");
    labcheck.wait().expect("helper reaped");

    assert_holder_gone_with_its_processes(holder, &namespace, "labcheck's death");
    assert_eq!(processes_mentioning(dir.path()), Vec::<String>::new());
}

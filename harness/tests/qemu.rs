//! The vm module against real QEMU and real processes. No guest needed: the
//! VMs here run SeaBIOS with nothing to boot.
//!
//! Every child is owned by a `ChildProcess` or `RunningVm`, which kill their
//! process group when dropped, also when an assertion fails.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use labcheck::process::{run_shell, ChildProcess, Enclosure, ShellExit};
use labcheck::time::Deadline;
use labcheck::vm::{
    free_loopback_ports, launch, probe, rewrite, Accel, CommandLine, Plan, QmpError, RunningVm,
    Sockets,
};
use tokio::io::AsyncReadExt;

/// Runs QEMU `line` (handout syntax) in `dir`, rewritten the way the runner
/// will: TCG, serial and QMP on sockets in `dir`.
async fn start(line: &str, dir: &Path) -> Result<RunningVm, labcheck::vm::LaunchError> {
    start_with_ports(line, dir, BTreeMap::new()).await
}

/// `start`, with `loopback_ports` standing in for the line's fixed ports.
async fn start_with_ports(
    line: &str,
    dir: &Path,
    loopback_ports: BTreeMap<u16, u16>,
) -> Result<RunningVm, labcheck::vm::LaunchError> {
    let plan = Plan {
        accel: Accel::Tcg,
        serial_socket: dir.join("s"),
        qmp_socket: dir.join("q"),
        control_socket: None,
        stand_ins: Vec::new(),
        loopback_ports,
        images_in: None,
    };
    let rewritten = rewrite(&CommandLine::parse(line).expect("test line parses"), &plan);
    launch(
        &rewritten.argv,
        dir,
        dir,
        &sockets(dir, &plan.serial_socket),
        &Enclosure::host(),
        Deadline::after(Duration::from_secs(20)),
    )
    .await
}

/// The sockets `start` wires: the serial console on `serial`, QMP on `q`.
fn sockets(dir: &Path, serial: &Path) -> Sockets {
    Sockets {
        serial: serial.to_owned(),
        qmp: dir.join("q"),
        control: None,
    }
}

/// Reads the serial console until `needle` appears; panics with what was
/// seen if it does not within `budget`.
async fn read_until(vm: &mut RunningVm, needle: &str, budget: Duration) -> String {
    let deadline = Deadline::after(budget);
    let mut seen = Vec::new();
    let mut chunk = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains(needle) {
        let read =
            tokio::time::timeout_at(deadline.tokio_instant(), vm.serial.read(&mut chunk)).await;
        match read {
            Ok(Ok(n)) if n > 0 => seen.extend_from_slice(&chunk[..n]),
            other => panic!(
                "expected {needle:?} on the serial console within {budget:?}; got {other:?} after {:?}, having seen {:?}",
                deadline.elapsed(),
                String::from_utf8_lossy(&seen)
            ),
        }
    }
    String::from_utf8_lossy(&seen).into_owned()
}

fn temp_dir() -> tempfile::TempDir {
    // Short: unix socket paths must stay under 108 bytes.
    tempfile::Builder::new()
        .prefix("lc")
        .tempdir_in("/tmp")
        .expect("temp dir")
}

fn secs(n: u64) -> Deadline {
    Deadline::after(Duration::from_secs(n))
}

#[tokio::test]
async fn seabios_reaches_the_serial_socket_and_qmp_answers() {
    let dir = temp_dir();
    let mut vm = start(
        "qemu-system-x86_64 -accel tcg -m 64 -net none -nographic",
        dir.path(),
    )
    .await
    .expect("QEMU starts");
    let console = read_until(&mut vm, "No bootable device", Duration::from_secs(30)).await;
    assert!(console.contains("SeaBIOS"), "console: {console:?}");

    assert_eq!(
        vm.qmp.query_status(secs(5)).await.expect("query-status"),
        "running"
    );
    match vm.qmp.execute("no-such-command", None, secs(5)).await {
        Err(QmpError::Command { class, .. }) => assert_eq!(class, "CommandNotFound"),
        other => panic!("expected CommandNotFound, got {other:?}"),
    }

    // Nothing in the guest handles the power button, but QEMU reports the press.
    let mut events = vm.qmp.subscribe();
    vm.qmp
        .system_powerdown(secs(5))
        .await
        .expect("system_powerdown");
    let event = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .expect("an event within 5 s")
        .expect("event channel open");
    assert_eq!(event.name, "POWERDOWN");

    vm.qmp.quit(secs(5)).await.expect("quit");
    let status = vm.wait_exit(secs(10)).await.expect("QEMU exits after quit");
    assert!(status.success(), "exit status {status}");
}

#[tokio::test]
async fn a_missing_disk_fails_with_qemus_own_message() {
    let dir = temp_dir();
    let error = start(
        "qemu-system-x86_64 -accel tcg -m 64 -hda missing.qcow2 -nographic",
        dir.path(),
    )
    .await
    .expect_err("QEMU cannot start without its disk");
    assert_eq!(error.exit_code(), Some(1), "{error}");
    assert!(
        error.to_string().contains("Could not open 'missing.qcow2'"),
        "{error}"
    );
}

#[tokio::test]
async fn launch_reports_a_program_that_does_not_exist() {
    let dir = temp_dir();
    let argv = ["/nonexistent/qemu-system-x86_64".to_owned()];
    let error = launch(
        &argv,
        dir.path(),
        dir.path(),
        &sockets(dir.path(), &dir.path().join("s")),
        &Enclosure::host(),
        secs(5),
    )
    .await
    .expect_err("no such program");
    assert!(error.to_string().contains("could not start"), "{error}");
}

/// Processes in process group `group`, read from /proc (zombies count as gone).
fn live_members(group: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            // Fields after the command name (which may contain spaces): state, ppid, pgrp.
            let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
            let fields: Vec<&str> = after_name.split_whitespace().collect();
            fields.first() != Some(&"Z") && fields.get(2) == Some(&group.to_string().as_str())
        })
        .collect()
}

/// Polls until `check` holds or `budget` passes; the last value either way.
async fn poll<T>(budget: Duration, mut sample: impl FnMut() -> T, check: impl Fn(&T) -> bool) -> T {
    let deadline = Deadline::after(budget);
    loop {
        let value = sample();
        if check(&value) || deadline.is_expired() {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn dropping_a_child_kills_its_whole_group() {
    let mut cmd = tokio::process::Command::new("sh");
    cmd.args(["-c", "sleep 1000 & sleep 1000"]);
    let child = ChildProcess::spawn(cmd, None, &Enclosure::host()).expect("spawn");
    let group = child.pid();
    let members = poll(
        Duration::from_secs(5),
        || live_members(group),
        |m| m.len() == 3,
    )
    .await;
    assert_eq!(
        members.len(),
        3,
        "sh and two sleeps in group {group}: {members:?}"
    );

    drop(child);
    assert_group_empties(group).await;
}

/// Fails unless process group `group` is empty within 2 s.
async fn assert_group_empties(group: u32) {
    let left = poll(
        Duration::from_secs(2),
        || live_members(group),
        Vec::is_empty,
    )
    .await;
    assert!(left.is_empty(), "still alive in group {group}: {left:?}");
}

#[tokio::test]
async fn a_child_logs_stdout_and_stderr_to_its_file() {
    let dir = temp_dir();
    let log = dir.path().join("child.log");
    let mut cmd = tokio::process::Command::new("sh");
    cmd.args([
        "-c",
        "echo to-out; echo to-err >&2; read line || echo stdin-is-empty",
    ]);
    let mut child = ChildProcess::spawn(cmd, Some(&log), &Enclosure::host()).expect("spawn");
    let status = child.wait_with_deadline(secs(5)).await.expect("exits");
    assert!(status.success());
    let logged = std::fs::read_to_string(&log).expect("log written");
    assert_eq!(logged, "to-out\nto-err\nstdin-is-empty\n");
}

#[tokio::test]
async fn wait_with_deadline_times_out_on_a_running_child() {
    let mut cmd = tokio::process::Command::new("sleep");
    cmd.arg("1000");
    let mut child = ChildProcess::spawn(cmd, None, &Enclosure::host()).expect("spawn");
    let waited = child
        .wait_with_deadline(Deadline::after(Duration::from_millis(200)))
        .await;
    assert!(
        matches!(waited, Err(labcheck::process::WaitError::Timeout { .. })),
        "{waited:?}"
    );
}

#[tokio::test]
async fn run_shell_captures_interleaved_output_and_exit_status() {
    let dir = temp_dir();
    let result = run_shell(
        "echo out; echo err >&2; echo out2; pwd; exit 3",
        dir.path(),
        &Enclosure::host(),
        secs(10),
    )
    .await
    .expect("runs");
    assert_eq!(result.exit, ShellExit::Exited(3));
    let cwd = dir.path().canonicalize().expect("canonical temp dir");
    assert_eq!(
        result.text(),
        format!("out\nerr\nout2\n{}\n", cwd.display())
    );
}

#[tokio::test]
async fn run_shell_kills_a_never_ending_command_at_its_deadline() {
    let dir = temp_dir();
    let started = Deadline::after(Duration::from_secs(60));
    let result = run_shell(
        "echo $$; sleep 1000 & sleep 1000",
        dir.path(),
        &Enclosure::host(),
        Deadline::after(Duration::from_secs(1)),
    )
    .await
    .expect("runs");
    assert!(
        matches!(result.exit, ShellExit::TimedOut { .. }),
        "{:?}",
        result.exit
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    let group: u32 = result
        .text()
        .trim()
        .parse()
        .expect("the shell printed its pid");
    assert_group_empties(group).await;
}

#[tokio::test]
async fn run_shell_does_not_wait_for_background_stragglers() {
    let dir = temp_dir();
    let started = Deadline::after(Duration::from_secs(60));
    let result = run_shell(
        "echo $$; sleep 1000 & echo done",
        dir.path(),
        &Enclosure::host(),
        secs(10),
    )
    .await
    .expect("runs");
    assert_eq!(result.exit, ShellExit::Exited(0));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    let group: u32 = result
        .text()
        .lines()
        .next()
        .and_then(|l| l.parse().ok())
        .expect("pid");
    let left = poll(
        Duration::from_secs(2),
        || live_members(group),
        Vec::is_empty,
    )
    .await;
    assert!(
        left.is_empty(),
        "background sleep outlived its step: {left:?}"
    );
}

/// Without a bootable kernel the probe can never pick KVM, and it must say why.
#[tokio::test]
async fn the_probe_explains_why_it_chose_tcg() {
    let missing = PathBuf::from("/nonexistent/vmlinux");
    let found = probe(&missing, &missing, "console=ttyS0", secs(30)).await;
    assert_eq!(found.accel, Accel::Tcg, "{}", found.detail);
    assert!(found.detail.starts_with("KVM: "), "{}", found.detail);
    if Path::new("/dev/kvm").exists() {
        assert!(found.detail.contains("QEMU exited"), "{}", found.detail);
    }
}

/// The real probe on the built guest. Run with
/// `LABCHECK_GUEST_DIR=~/.cache/labcheck/guest/<digest> cargo test --test qemu -- --ignored`.
#[tokio::test]
#[ignore = "needs the built guest in LABCHECK_GUEST_DIR"]
async fn the_probe_boots_the_built_guest() {
    let guest = PathBuf::from(std::env::var("LABCHECK_GUEST_DIR").expect("LABCHECK_GUEST_DIR set"));
    let found = probe(
        &guest.join("vmlinux"),
        &guest.join("initramfs"),
        "console=ttyS0",
        secs(30),
    )
    .await;
    // Whatever it decides, the detail names the finding.
    assert!(found.detail.starts_with("KVM: "), "{found:?}");
    if found.accel == Accel::Tcg {
        assert!(
            !found.detail.contains("missing"),
            "the guest was there: {found:?}"
        );
    }
}

#[tokio::test]
async fn launch_refuses_a_socket_path_too_long_for_unix_sockets() {
    let dir = temp_dir();
    let long = dir.path().join("s".repeat(120));
    let argv = ["qemu-system-x86_64".to_owned()];
    let error = launch(
        &argv,
        dir.path(),
        dir.path(),
        &sockets(dir.path(), &long),
        &Enclosure::host(),
        secs(5),
    )
    .await
    .expect_err("path too long");
    assert!(
        matches!(error, labcheck::vm::LaunchError::SocketPathTooLong { .. }),
        "{error}"
    );
}

// The handout's socket link (/work/shared/labs/day2-handout.md), verbatim.
const SOCKET_VM1: &str = "qemu-system-x86_64 -m 512 -enable-kvm \
    -cdrom alpine-standard-3.20.0-x86_64.iso -boot d \
    -netdev socket,id=net0,listen=:1234 -device virtio-net-pci,netdev=net0 -nographic";
const SOCKET_VM2: &str = "qemu-system-x86_64 -m 512 -enable-kvm \
    -cdrom alpine-standard-3.20.0-x86_64.iso -boot d \
    -netdev socket,id=net0,connect=127.0.0.1:1234 -device virtio-net-pci,netdev=net0 -nographic";

/// One TCP socket as `ss -tanpH` shows it.
#[derive(Debug)]
struct TcpSocket {
    state: String,
    local: String,
    peer: String,
    /// `users:((…,pid=N,…))`, empty when `ss` may not see the owner.
    owner: String,
}

/// The host's TCP sockets, from `ss` (the test runs in the host's namespace,
/// as the VMs do).
fn tcp_sockets() -> Vec<TcpSocket> {
    let output = std::process::Command::new("ss")
        .arg("-tanpH")
        .output()
        .expect("ss runs");
    assert!(output.status.success(), "ss failed: {output:?}");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            Some(TcpSocket {
                state: fields.first()?.to_string(),
                local: fields.get(3)?.to_string(),
                peer: fields.get(4)?.to_string(),
                owner: fields.get(5).map_or(String::new(), |o| o.to_string()),
            })
        })
        .collect()
}

/// The handout's two socket VMs with a free loopback port for 1234: VM2's
/// QEMU connects to VM1's on 127.0.0.1, and nothing listens beyond loopback.
#[tokio::test]
async fn a_substituted_loopback_port_links_the_handouts_socket_vms() {
    let port = free_loopback_ports(1).expect("a free loopback port")[0];
    let ports = BTreeMap::from([(1234, port)]);
    let substitute = format!("127.0.0.1:{port}");
    let (dir1, dir2) = (temp_dir(), temp_dir());
    for dir in [&dir1, &dir2] {
        // Nothing to boot: QEMU only needs the handout's file to open.
        std::fs::write(dir.path().join("alpine-standard-3.20.0-x86_64.iso"), b"")
            .expect("empty stand-in ISO");
    }

    let vm1 = start_with_ports(SOCKET_VM1, dir1.path(), ports.clone())
        .await
        .expect("VM1 starts");
    let vm1_pid = format!("pid={},", vm1.child.pid());
    let sockets = poll(Duration::from_secs(10), tcp_sockets, |sockets| {
        sockets
            .iter()
            .any(|s| s.state == "LISTEN" && s.local == substitute)
    })
    .await;
    let listeners: Vec<_> = sockets
        .iter()
        .filter(|s| s.state == "LISTEN" && s.local.ends_with(&format!(":{port}")))
        .collect();
    assert!(
        matches!(listeners[..], [only] if only.local == substitute && only.owner.contains(&vm1_pid)),
        "expected VM1's QEMU ({vm1_pid}) alone listening on {substitute} within 10 s; \
         listeners on port {port}: {listeners:?}"
    );

    let vm2 = start_with_ports(SOCKET_VM2, dir2.path(), ports)
        .await
        .expect("VM2 starts, connected to VM1");
    let vm2_pid = format!("pid={},", vm2.child.pid());
    let linked = |sockets: &Vec<TcpSocket>| {
        let established = |local: &str, peer: &str, pid: &str| {
            sockets.iter().any(|s| {
                s.state == "ESTAB"
                    && (local.is_empty() || s.local == local)
                    && (peer.is_empty() || s.peer == peer)
                    && s.owner.contains(pid)
            })
        };
        established("", &substitute, &vm2_pid) && established(&substitute, "", &vm1_pid)
    };
    let sockets = poll(Duration::from_secs(10), tcp_sockets, linked).await;
    let on_port: Vec<_> = sockets
        .iter()
        .filter(|s| s.local.ends_with(&format!(":{port}")) || s.peer == substitute)
        .collect();
    assert!(
        linked(&sockets),
        "expected VM2 ({vm2_pid}) connected to {substitute} and VM1 ({vm1_pid}) holding \
         the accepted end within 10 s; sockets on port {port}: {on_port:?}"
    );
    assert!(
        !on_port
            .iter()
            .any(|s| s.state == "LISTEN" && s.local != substitute),
        "something listens on port {port} beyond loopback: {on_port:?}"
    );
}

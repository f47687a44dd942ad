//! labcheck's control channel against the built-in guest: a root shell on
//! the guest's second serial port that answers while the handout's console
//! is busy and that nothing typed on that console can redefine.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use labcheck::guest::{self, Artifacts, BuildOptions};
use labcheck::process::Enclosure;
use labcheck::runner::{boot, BootRequest, Booted, LiveVm};
use labcheck::time::Deadline;
use labcheck::vm::{rewrite, Accel, CommandLine, Plan};
use support::processes_mentioning;

const BOOT_DEADLINE: Duration = Duration::from_secs(60);
const COMMAND_DEADLINE: Duration = Duration::from_secs(10);
const ROUND_TRIPS: usize = 20;

fn artifacts() -> Artifacts {
    let options = BuildOptions::from_env().expect("cache dir from the environment");
    guest::locate(&options).expect("the built-in guest (build it with `cargo xtask fixtures`)")
}

/// How the handout's lines show the guest: VM1's `-nographic` (the
/// console's serial wiring replaces it mid-line) or the cloned VM2's plain
/// line (the wiring is appended).
#[derive(Clone, Copy)]
enum Display {
    Nographic,
    Window,
}

/// Boots the ISO guest through the runner's own boot path, with a control
/// channel when `with_control`.
async fn boot_iso(dir: &Path, display: Display, with_control: bool) -> LiveVm {
    let iso = artifacts().iso;
    let display = match display {
        Display::Nographic => " -nographic",
        Display::Window => "",
    };
    let line = format!(
        "qemu-system-x86_64 -m 512 -cdrom {} -boot d -net none{display}",
        iso.display()
    );
    let plan = Plan {
        accel: Accel::Tcg,
        serial_socket: dir.join("serial.sock"),
        qmp_socket: dir.join("qmp.sock"),
        control_socket: with_control.then(|| dir.join("control.sock")),
        stand_ins: Vec::new(),
        loopback_ports: BTreeMap::new(),
        images_in: None,
    };
    let parsed = CommandLine::parse(&line).expect("test line parses");
    let request = BootRequest {
        vm: "vm1".to_owned(),
        argv: rewrite(&parsed, &plan).argv,
        cwd: dir.to_owned(),
        run_dir: dir.to_owned(),
        serial_socket: plan.serial_socket,
        qmp_socket: plan.qmp_socket,
        transcript: dir.join("vm1.log"),
        control_socket: plan.control_socket,
        control_transcript: dir.join("vm1.control.log"),
        enclosure: Enclosure::host(),
        deadline: Deadline::after(BOOT_DEADLINE),
        launched: None,
    };
    match boot(request).await {
        Booted::Ready { vm, .. } => *vm,
        Booted::Exited { status, log } => panic!("QEMU exited ({status:?}) before a shell: {log}"),
        Booted::Failed(failure) => panic!(
            "no shell: {}; last lines:\n{}",
            failure.message,
            failure.tail.join("\n")
        ),
    }
}

fn command_deadline() -> Deadline {
    Deadline::after(COMMAND_DEADLINE)
}

/// Runs `command` on the handout's console; returns its output, checking it
/// succeeded.
async fn on_console(vm: &mut LiveVm, command: &str) -> String {
    let answer = vm
        .console
        .run(command, command_deadline())
        .await
        .unwrap_or_else(|error| panic!("console {command:?}: {error}"));
    assert_eq!(answer.exit, 0, "console {command:?}: {answer:?}");
    answer.output
}

/// Runs `command` on the control shell; returns its output, checking it
/// succeeded.
async fn probe(vm: &mut LiveVm, command: &str) -> String {
    let answer = vm
        .probe(command, command_deadline())
        .await
        .unwrap_or_else(|failure| {
            panic!(
                "probe {command:?}: {}\n{}",
                failure.message,
                failure.tail.join("\n")
            )
        });
    assert_eq!(answer.exit, 0, "probe {command:?}: {answer:?}");
    answer.output
}

/// The handout's shell is on ttyS0 and the control shell on ttyS1.
async fn assert_ports(vm: &mut LiveVm) {
    assert_eq!(on_console(vm, "tty").await.trim(), "/dev/ttyS0");
    assert_eq!(probe(vm, "tty").await.trim(), "/dev/ttyS1");
}

/// Kills QEMU and checks that nothing mentioning `dir` outlives it.
fn shut_down(vm: LiveVm, dir: &Path) {
    drop(vm);
    let left = processes_mentioning(dir);
    assert!(left.is_empty(), "processes left: {left:?}");
}

fn temp_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().to_owned();
    (dir, path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(
    clippy::print_stdout,
    reason = "the probe's round trip is a figure to report"
)]
async fn the_control_shell_answers_while_the_console_is_busy_and_ignores_its_redefinitions() {
    let (_dir, dir) = temp_dir();
    let mut vm = boot_iso(&dir, Display::Nographic, true).await;
    assert_ports(&mut vm).await;

    // What a student's line can do to the handout's shell, shown to bite there.
    let redefine = "cat() { echo hijacked; }; alias grep=false";
    on_console(&mut vm, redefine).await;
    let hijacked = on_console(&mut vm, "cat /proc/version").await;
    assert_eq!(hijacked.trim(), "hijacked");

    // The handout's console busy in the foreground, as with `nc -l` on VM1.
    vm.console
        .send_line("sleep 30", command_deadline())
        .await
        .expect("the console takes the line");
    assert_eq!(probe(&mut vm, "echo ready").await.trim(), "ready");
    let processes = probe(&mut vm, "ps -o args").await;
    assert!(
        processes.lines().any(|line| line.trim() == "sleep 30"),
        "the console's command should still run: {processes}"
    );
    let version = probe(&mut vm, "cat /proc/version").await;
    assert!(version.starts_with("Linux version"), "{version}");
    assert_eq!(
        probe(&mut vm, "grep -c Linux /proc/version").await.trim(),
        "1"
    );

    let mut times = Vec::with_capacity(ROUND_TRIPS);
    for n in 0..ROUND_TRIPS {
        let started = Instant::now();
        let echoed = probe(&mut vm, &format!("echo {n}")).await;
        times.push(started.elapsed());
        assert_eq!(echoed.trim(), n.to_string());
    }
    times.sort();
    println!(
        "control probe round trip (`echo N`, {ROUND_TRIPS} calls, console busy): median {:?}, min {:?}, max {:?}",
        times[ROUND_TRIPS / 2],
        times[0],
        times[ROUND_TRIPS - 1]
    );

    // ttyS1 is the control shell's controlling terminal: Ctrl-C ends a
    // command that ran out of time, and the shell serves the next one.
    let short = Deadline::after(Duration::from_secs(1));
    let timed_out = vm.probe("sleep 20", short).await;
    assert!(timed_out.is_err(), "{timed_out:?}");
    assert_eq!(probe(&mut vm, "echo after").await.trim(), "after");

    // A reboot restarts the control shell; the next probe waits for it.
    // The console's `sleep 30` is interrupted first, so it reads `reboot`.
    vm.console
        .send(b"\x03", command_deadline())
        .await
        .expect("the console takes Ctrl-C");
    vm.reboot(Deadline::after(BOOT_DEADLINE))
        .await
        .unwrap_or_else(|failure| panic!("reboot: {}", failure.message));
    assert_eq!(probe(&mut vm, "echo rebooted").await.trim(), "rebooted");
    shut_down(vm, &dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::print_stdout, reason = "the pid count is a figure to report")]
async fn without_a_control_channel_the_guest_neither_spins_nor_offers_one() {
    let (_dir, dir) = temp_dir();
    let mut vm = boot_iso(&dir, Display::Window, false).await;

    let refused = vm
        .probe("echo ready", command_deadline())
        .await
        .expect_err("no control channel to probe");
    assert!(
        refused
            .message
            .contains("without labcheck's control channel"),
        "{}",
        refused.message
    );
    // The control script waits for good instead of exiting: one sleeping
    // process, still the same one two seconds later, and few new pids in
    // between (a respawn loop forks a shell and a grep each round).
    let sleeper = "ps -o pid,args | grep '^ *[0-9]* sleep 2147483647$'";
    let first = on_console(&mut vm, sleeper).await;
    assert_eq!(
        first.lines().count(),
        1,
        "one sleeping control script: {first:?}"
    );
    let new_pids = "read -r _ _ _ _ before < /proc/loadavg; sleep 2; \
                    read -r _ _ _ _ after < /proc/loadavg; echo $((after - before))";
    let spawned = on_console(&mut vm, new_pids).await;
    let spawned: u32 = spawned.trim().parse().expect("a pid count");
    println!("pids used in 2 s without a control channel: {spawned}");
    assert!(spawned < 40, "{spawned} processes started in two seconds");
    assert_eq!(
        on_console(&mut vm, sleeper).await,
        first,
        "the control script was restarted"
    );
    shut_down(vm, &dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_nographic_the_console_stays_on_ttys0_and_control_on_ttys1() {
    let (_dir, dir) = temp_dir();
    let mut vm = boot_iso(&dir, Display::Window, true).await;
    assert_ports(&mut vm).await;
    shut_down(vm, &dir);
}

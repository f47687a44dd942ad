//! Unit tests of the pieces, then real jails (bubblewrap, as root: each test
//! fails, never skips, when either is missing). Each real test has its own
//! job slot, so its own uid, and checks that nothing of it is left.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Instant;

use rstest::rstest;
use tempfile::TempDir;

use super::identity::threads_if_real_uid;
use super::*;

const STEP: Duration = Duration::from_secs(20);

#[rstest]
#[case::ours(
    "Name:\tsh\nUid:\t2100000001\t2100000001\t2100000001\t2100000001\nThreads:\t3\n",
    3
)]
#[case::effective_only("Uid:\t0\t2100000001\t0\t0\nThreads:\t1\n", 0)]
#[case::other_user("Uid:\t1000\t1000\t1000\t1000\nThreads:\t9\n", 0)]
#[case::no_threads_line("Uid:\t2100000001\t0\t0\t0\n", 1)]
fn counts_the_threads_of_the_real_uid(#[case] status: &str, #[case] expected: u64) {
    assert_eq!(threads_if_real_uid(status, 2_100_000_001), expected);
}

#[rstest]
#[case::owner_search(0o700, 5, 9, 0o1, true)]
#[case::owner_without_search(0o600, 5, 9, 0o1, false)]
#[case::group_search(0o710, 1, 7, 0o1, true)]
#[case::group_denied_though_other_allows(0o701, 1, 7, 0o1, false)]
#[case::other_search(0o711, 1, 1, 0o1, true)]
#[case::other_read_write(0o666, 1, 1, 0o6, true)]
#[case::other_read_only(0o644, 1, 1, 0o6, false)]
#[case::root_only(0o600, 0, 0, 0o6, false)]
fn permits_reads_the_right_bits(
    #[case] mode: u32,
    #[case] owner: u32,
    #[case] group: u32,
    #[case] bits: u32,
    #[case] expected: bool,
) {
    let dir = TempDir::new().expect("temp dir");
    let path = dir.path().join("f");
    fs::write(&path, "").expect("write");
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
    std::os::unix::fs::chown(&path, Some(owner), Some(group)).expect("chown (tests run as root)");
    let identity = Identity {
        uid: 5,
        gid: 7,
        dedicated: true,
    };
    let meta = fs::metadata(&path).expect("stat");
    assert_eq!(permits(&meta, identity, bits), expected);
}

#[rstest]
#[case::whole(&["N\nhello\n"], 100, Some("hello\n"))]
#[case::nonce_split(&["N", "\nhel", "lo"], 100, Some("hello"))]
#[case::cut_at_limit(&["N\n", "abcdef"], 4, Some("abcd"))]
#[case::bwrap_error(&["bwrap: Can't find source path /x\n"], 100, None)]
#[case::nothing(&[], 100, None)]
fn output_starts_after_the_nonce(
    #[case] chunks: &[&str],
    #[case] limit: usize,
    #[case] expected: Option<&str>,
) {
    let mut output = Output::new("N", limit);
    for chunk in chunks {
        output.push(chunk.as_bytes());
    }
    let finished = output.finish(ShellExit::Exited(0), None);
    assert_eq!(
        finished.ok().map(|out| out.output),
        expected.map(String::from)
    );
}

#[test]
fn default_limits_are_documented_values() {
    let limits = Limits::default();
    assert_eq!(limits.memory, 1 << 30);
    assert_eq!(limits.processes, 256);
    assert_eq!(limits.output, 65536);
    assert_eq!(limits.file_size, 512 << 20);
}

// ---- real jails ----

/// Fails (never skips) when a real jail cannot run here.
fn require_root_and_bwrap() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the jail tests need root: they run each jail as a dedicated user (run the tests as root)"
    );
    assert!(
        find_on_path("bwrap").is_some(),
        "the jail tests need bubblewrap: `apt-get install bubblewrap` (or `cargo xtask setup`)"
    );
}

/// A grading area: `alice` (the jail's work dir) and `bob` (another
/// submission, with a secret), under a dir of mode 0711 as grading needs.
struct Area {
    root: TempDir,
}

impl Area {
    fn new() -> Self {
        require_root_and_bwrap();
        let root = tempfile::Builder::new()
            .prefix("labcheck-jail-")
            .tempdir()
            .expect("temp dir");
        fs::set_permissions(root.path(), fs::Permissions::from_mode(0o711)).expect("chmod");
        for who in ["alice", "bob"] {
            fs::create_dir(root.path().join(who)).expect("mkdir");
        }
        fs::write(root.path().join("bob/secret"), "bob's answer").expect("write");
        Self { root }
    }

    fn alice(&self) -> PathBuf {
        self.root.path().join("alice")
    }

    fn jail(&self, slot: u16, network: JailNetwork, limits: Limits) -> Jail {
        Jail {
            work_dir: self.alice(),
            read_only: vec![],
            network,
            limits,
            identity: test_identity(slot),
        }
    }
}

async fn run(jail: &Jail, script: &str, budget: Duration) -> JailOutput {
    jail.run_script(script, Deadline::after(budget))
        .await
        .unwrap_or_else(|error| panic!("jail for {script:?} could not run: {error}"))
}

/// No task of `uid` is left, and no process mentions `path` (a namespace
/// holder is named after its work dir). `run_script` and the drops promise
/// that on return; the short grace only absorbs the kernel's bookkeeping.
fn assert_nothing_left(uid: u32, path: &Path) {
    let deadline = Deadline::after(Duration::from_millis(200));
    loop {
        let tasks = tasks_of_user(uid).expect("read /proc");
        let mentioning = processes_mentioning(path);
        if tasks == 0 && mentioning.is_empty() {
            return;
        }
        assert!(
            !deadline.is_expired(),
            "after {:?}: {tasks} tasks of uid {uid} and these processes mentioning {} are left: {mentioning:?}",
            deadline.elapsed(),
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Slots far above any `--jobs`, so that these tests never share a sandbox
/// user with a grading run going on beside them (nextest runs test
/// binaries in parallel) and count its processes as their own.
fn test_identity(slot: u16) -> Identity {
    Identity::for_slot(1000 + slot)
}

fn processes_mentioning(path: &Path) -> Vec<String> {
    let needle = path.display().to_string();
    fs::read_dir("/proc")
        .expect("read /proc")
        .filter_map(|entry| fs::read(entry.ok()?.path().join("cmdline")).ok())
        .map(|cmdline| String::from_utf8_lossy(&cmdline).replace('\0', " "))
        .filter(|cmdline| cmdline.contains(&needle))
        .collect()
}

#[rstest]
#[case::a_sibling_submission(1, "../bob/secret")]
#[case::roots_home(2, "/root")]
#[case::homes(3, "/home")]
#[case::the_graders_repository(4, env!("CARGO_MANIFEST_DIR"))]
#[case::the_hosts_passwords(5, "/etc/shadow")]
#[tokio::test]
async fn a_jail_sees_nothing_but_its_own(#[case] slot: u16, #[case] path: &str) {
    let area = Area::new();
    let jail = area.jail(slot, JailNetwork::Isolated, Limits::default());
    let ran = run(&jail, &format!("cat {path}"), STEP).await;
    assert_ne!(ran.exit, ShellExit::Exited(0), "{ran:?}");
    assert!(ran.output.contains("No such file or directory"), "{ran:?}");
    assert_nothing_left(jail.identity.uid(), area.root.path());
}

#[tokio::test]
async fn a_jails_accounts_are_its_own_not_the_hosts() {
    let area = Area::new();
    let jail = area.jail(19, JailNetwork::Isolated, Limits::default());
    let ran = run(&jail, "cat /etc/passwd; whoami", STEP).await;
    assert_eq!(ran.exit, ShellExit::Exited(0), "{ran:?}");
    assert!(ran.output.contains("student:x:"), "{ran:?}");
    assert!(
        !ran.output.contains("daemon:"),
        "the host's accounts: {ran:?}"
    );
    assert_nothing_left(jail.identity.uid(), area.root.path());
}

#[tokio::test]
async fn a_jail_writes_only_in_its_work_dir() {
    let area = Area::new();
    let jail = area.jail(6, JailNetwork::Isolated, Limits::default());
    let escaped = format!("escaped-{}", std::process::id());
    let script = format!(
        "for p in /x /usr/x /etc/x /proc/x; do echo x > $p && echo WROTE $p; done
         echo x > ../{escaped}; echo x > /tmp/{escaped}; echo mine > inside"
    );
    let ran = run(&jail, &script, STEP).await;
    assert!(!ran.output.contains("WROTE"), "{ran:?}");
    assert_eq!(
        ran.output.matches("Read-only file system").count(),
        3,
        "{ran:?}"
    );
    // The jail's /tmp and the dirs above its work dir are its own: nothing
    // written there reaches the host.
    assert!(!area.root.path().join(&escaped).exists());
    assert!(!Path::new("/tmp").join(&escaped).exists());
    let inside = area.alice().join("inside");
    assert_eq!(fs::read_to_string(&inside).expect("written"), "mine\n");
    assert_eq!(
        fs::metadata(&inside).expect("stat").uid(),
        jail.identity.uid()
    );
    assert_nothing_left(jail.identity.uid(), area.root.path());
}

#[tokio::test]
async fn an_isolated_jail_has_only_loopback_and_reaches_nothing() {
    let area = Area::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen on loopback");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("address").port();
    let jail = area.jail(7, JailNetwork::Isolated, Limits::default());
    let script = format!(
        "ip -o link | cut -d: -f2 | tr -d ' ' | tr '\\n' ,; echo
         bash -c 'echo hi > /dev/tcp/127.0.0.1/{port}' && echo CONNECTED"
    );
    let ran = run(&jail, &script, STEP).await;
    assert_eq!(ran.output.lines().next(), Some("lo,"), "{ran:?}");
    assert!(ran.output.contains("Connection refused"), "{ran:?}");
    assert!(!ran.output.contains("CONNECTED"), "{ran:?}");
    match listener.accept() {
        Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
        other => panic!("the host's listener saw {other:?}"),
    }
    assert_nothing_left(jail.identity.uid(), area.root.path());
}

#[tokio::test]
async fn a_fork_bomb_is_contained() {
    let area = Area::new();
    let limits = Limits {
        processes: 32,
        ..Limits::default()
    };
    let jail = area.jail(8, JailNetwork::Isolated, limits);
    let uid = jail.identity.uid();
    let bomb = run(
        &jail,
        "f(){ f|f& }; f; while :; do :; done",
        Duration::from_secs(3),
    );
    let watch = async {
        let (mut most, mut slowest_host_command) = (0, Duration::ZERO);
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(2500) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            most = most.max(tasks_of_user(uid).expect("read /proc"));
            let host_command = Instant::now();
            let status = std::process::Command::new("true").status();
            assert!(
                status.is_ok_and(|s| s.success()),
                "the host cannot run `true`"
            );
            slowest_host_command = slowest_host_command.max(host_command.elapsed());
        }
        (most, slowest_host_command)
    };
    let (ran, (most, slowest)) = tokio::join!(bomb, watch);
    assert_eq!(ran.cut_off, Some(Limit::WallTime), "{ran:?}");
    assert!(
        ran.output.contains("Cannot fork"),
        "the bomb never hit the limit: {ran:?}"
    );
    assert!(
        most <= 32,
        "the bomb reached {most} tasks, over the limit of 32"
    );
    assert!(
        slowest < Duration::from_secs(1),
        "the host took {slowest:?} to run `true`"
    );
    assert_nothing_left(uid, area.root.path());
}

#[tokio::test]
async fn an_endless_loop_is_killed_at_the_deadline() {
    let area = Area::new();
    let jail = area.jail(9, JailNetwork::Isolated, Limits::default());
    let started = Instant::now();
    let ran = run(
        &jail,
        "echo started; while :; do :; done",
        Duration::from_secs(1),
    )
    .await;
    let took = started.elapsed();
    assert_eq!(ran.cut_off, Some(Limit::WallTime), "{ran:?}");
    assert!(matches!(ran.exit, ShellExit::TimedOut { .. }), "{ran:?}");
    assert_eq!(ran.output, "started\n");
    assert!(
        took < Duration::from_secs(2),
        "took {took:?} for a 1 s deadline"
    );
    assert_nothing_left(jail.identity.uid(), area.root.path());
}

#[tokio::test]
async fn a_flood_of_output_is_cut_off_at_the_limit() {
    let area = Area::new();
    let jail = area.jail(10, JailNetwork::Isolated, Limits::default());
    let started = Instant::now();
    let ran = run(&jail, "yes", STEP).await;
    assert_eq!(ran.cut_off, Some(Limit::Output), "exit {:?}", ran.exit);
    assert_eq!(ran.output.len(), 64 << 10);
    assert!(ran.output.starts_with("y\ny\n"));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert_nothing_left(jail.identity.uid(), area.root.path());
}

#[tokio::test]
async fn a_huge_file_stops_at_the_file_size_limit() {
    let area = Area::new();
    let limits = Limits {
        file_size: 8 << 20,
        ..Limits::default()
    };
    let jail = area.jail(11, JailNetwork::Isolated, limits);
    let ran = run(&jail, "dd if=/dev/zero of=big bs=1M count=5000", STEP).await;
    assert_ne!(ran.exit, ShellExit::Exited(0), "{ran:?}");
    assert_eq!(ran.cut_off, None, "{ran:?}");
    let size = fs::metadata(area.alice().join("big")).expect("big").len();
    assert_eq!(size, 8 << 20, "{ran:?}");
    assert_nothing_left(jail.identity.uid(), area.root.path());
}

#[tokio::test]
async fn a_bwrap_failure_is_a_setup_error_not_the_scripts() {
    let area = Area::new();
    let mut jail = area.jail(12, JailNetwork::Isolated, Limits::default());
    jail.read_only = vec![area.root.path().join("no-such-input")];
    let ran = jail.run_script("echo never", Deadline::after(STEP)).await;
    match ran {
        Err(JailError::Setup { output, .. }) => {
            assert!(output.contains("no-such-input"), "{output}")
        }
        other => panic!("expected a setup error, got {other:?}"),
    }
}

#[tokio::test]
async fn an_unreachable_work_dir_is_named() {
    let area = Area::new();
    fs::set_permissions(area.root.path(), fs::Permissions::from_mode(0o700)).expect("chmod");
    let jail = area.jail(13, JailNetwork::Isolated, Limits::default());
    match jail.run_script("true", Deadline::after(STEP)).await {
        Err(JailError::Unreachable { blocked, .. }) => assert_eq!(blocked, area.root.path()),
        other => panic!("expected Unreachable, got {other:?}"),
    }
}

/// The tap lab's commands, as the handout prints them.
const TAP_LAB: &str =
    "sudo ip tuntap add tap0 mode tap && sudo ip link add br0 type bridge && sudo ip link set tap0 master br0";

#[tokio::test]
async fn a_lab_jail_makes_taps_that_qemu_opens() {
    let area = Area::new();
    let identity = test_identity(14);
    let tool_dir = area.root.path().join("tools");
    let label = format!("labcheck-netns:{}", area.root.path().display());
    let lab = identity
        .lab_namespace(&tool_dir, &label, Deadline::after(STEP))
        .await
        .expect("the lab's namespace, owned by the jail's user");
    let jail = area.jail(
        14,
        JailNetwork::lab(&lab).expect("a user namespace"),
        Limits::default(),
    );
    let ran = run(&jail, &format!("{TAP_LAB} && id -u"), STEP).await;
    assert_eq!(ran.exit, ShellExit::Exited(0), "{ran:?}");
    assert_eq!(ran.output, "0\n", "root in the lab's namespace");

    let links = lab
        .links(&["tun", "bridge"], Deadline::after(STEP))
        .await
        .expect("links");
    let seen: Vec<(&str, Option<&str>)> = links
        .iter()
        .map(|link| (link.name.as_str(), link.master.as_deref()))
        .collect();
    assert_eq!(seen, [("tap0", Some("br0")), ("br0", None)]);

    let log = area.root.path().join("qemu.log");
    let mut qemu = Command::new("qemu-system-x86_64");
    qemu.args(["-accel", "tcg", "-S", "-display", "none", "-nodefaults"])
        .args(["-netdev", "tap,id=n,ifname=tap0,script=no,downscript=no"])
        .args(["-device", "e1000,netdev=n"]);
    let mut qemu = ChildProcess::spawn(qemu, Some(&log), lab.enclosure()).expect("start QEMU");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let status = qemu.try_wait().expect("poll QEMU");
    let said = fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(status, None, "QEMU ended on the jail's tap: {said}");
    drop(qemu);
    drop(jail);
    drop(lab);
    assert_nothing_left(identity.uid(), area.root.path());
}

#[tokio::test]
async fn a_lab_of_another_user_is_refused() {
    let area = Area::new();
    let tool_dir = area.root.path().join("tools");
    let label = format!("labcheck-netns:{}", area.root.path().display());
    let lab = test_identity(15)
        .lab_namespace(&tool_dir, &label, Deadline::after(STEP))
        .await
        .expect("lab");
    let jail = area.jail(
        16,
        JailNetwork::lab(&lab).expect("a user namespace"),
        Limits::default(),
    );
    match jail.run_script(TAP_LAB, Deadline::after(STEP)).await {
        Err(JailError::LabNotOwned { owner, uid }) => {
            assert_eq!(
                (owner, uid),
                (test_identity(15).uid(), test_identity(16).uid())
            );
        }
        other => panic!("expected LabNotOwned, got {other:?}"),
    }
}

#[tokio::test]
async fn the_clone_lab_runs_as_the_handout_prints_it() {
    let area = Area::new();
    let vm1 = area.alice().join("vm1.qcow2");
    let made = std::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&vm1)
        .arg("64M")
        .status();
    assert!(
        made.is_ok_and(|s| s.success()),
        "qemu-img create on the host"
    );
    let inputs = area.root.path().join("inputs");
    fs::create_dir(&inputs).expect("mkdir");
    fs::write(inputs.join("notes"), "lab input\n").expect("write");
    let mut jail = area.jail(17, JailNetwork::Isolated, Limits::default());
    jail.read_only = vec![inputs.clone()];
    let script = format!(
        "qemu-img create -q -f qcow2 -b vm1.qcow2 -F qcow2 vm2.qcow2 && \
         qemu-img convert -O qcow2 vm1.qcow2 vm3.qcow2 && \
         cat {notes}; echo x > {notes} || echo INPUT_READ_ONLY",
        notes = inputs.join("notes").display()
    );
    let ran = run(&jail, &script, STEP).await;
    assert!(ran.output.starts_with("lab input\n"), "{ran:?}");
    assert!(ran.output.contains("INPUT_READ_ONLY"), "{ran:?}");
    let info = std::process::Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(area.alice().join("vm2.qcow2"))
        .output()
        .expect("qemu-img info");
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).expect("JSON");
    assert_eq!(info["backing-filename"], "vm1.qcow2", "{info}");
    assert!(area.alice().join("vm3.qcow2").is_file());
    assert_nothing_left(jail.identity.uid(), area.root.path());
}

#[tokio::test]
async fn memory_past_the_limit_is_refused() {
    let area = Area::new();
    let limits = Limits {
        memory: 64 << 20,
        ..Limits::default()
    };
    let jail = area.jail(18, JailNetwork::Isolated, limits);
    // tail -c keeps the last N bytes in memory: 128 MB cannot fit in 64 MiB.
    let ran = run(
        &jail,
        "head -c 200000000 /dev/zero | tail -c 128000000 | wc -c",
        STEP,
    )
    .await;
    assert!(ran.output.contains("memory exhausted"), "{ran:?}");
    assert_nothing_left(jail.identity.uid(), area.root.path());
}

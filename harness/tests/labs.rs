//! The shipped labs (scenarios/*.toml), end to end against real QEMU: one
//! test per lab file, named by its id, found when the binary starts (this
//! is a libtest-mimic harness, see harness/Cargo.toml). Each lab's canonical
//! report must match its committed snapshot in scenarios/snapshots/: a
//! change in QEMU, the guest or the handout's behaviour shows up as a
//! reviewable diff.

mod support;

use std::sync::Arc;

use labcheck::events::EventSink;
use labcheck::guest::{self, BuildOptions};
use labcheck::report::{CanonicalLab, LabOutcome, LabReport, ReportBuilder};
use labcheck::runner::{run_lab, RunContext};
use labcheck::vm::accel;
use libtest_mimic::{Arguments, Failed, Trial};
use support::{assert_no_host_link, assert_nothing_left, workspace_root};
use tokio::sync::OnceCell;

fn main() -> std::process::ExitCode {
    let arguments = Arguments::from_args();
    let mut trials: Vec<Trial> = shipped_labs().into_iter().map(lab_trial).collect();
    trials.push(Trial::test(
        "a_host_network_lab_run_in_parallel_gets_free_loopback_ports",
        || in_runtime(a_host_network_lab_run_in_parallel_gets_free_loopback_ports()),
    ));
    libtest_mimic::run(&arguments, trials).exit_code()
}

/// The ids of the lab files in scenarios/, sorted.
fn shipped_labs() -> Vec<String> {
    let dir = workspace_root().join("scenarios");
    let files = labcheck::scenario::find::lab_files_in(&dir).expect("scenarios/ is readable");
    files
        .iter()
        .map(|file| labcheck::scenario::find::id_of(file))
        .collect()
}

fn lab_trial(id: String) -> Trial {
    Trial::test(format!("lab::{id}"), move || in_runtime(check_lab(&id)))
}

/// Runs a test body on a fresh multi-threaded runtime, as `#[tokio::test]`
/// would. A panic (a failed assertion) is caught by libtest-mimic.
fn in_runtime(body: impl std::future::Future<Output = ()>) -> Result<(), Failed> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failed::from(format!("cannot start tokio: {e}")))?
        .block_on(body);
    Ok(())
}

async fn context(work_root: &std::path::Path, out_dir: &std::path::Path) -> RunContext {
    static PREPARED: OnceCell<Arc<(guest::Artifacts, accel::Probe)>> = OnceCell::const_new();
    let prepared = PREPARED
        .get_or_init(|| async {
            let options = BuildOptions::from_env().expect("guest cache location");
            let artifacts = guest::locate(&options)
                .expect("the built-in guest (build it with `cargo xtask fixtures`)");
            let probe = labcheck::cli::probe_accelerator(&artifacts).await;
            Arc::new((artifacts, probe))
        })
        .await;
    RunContext {
        guest: prepared.0.clone(),
        probe: prepared.1.clone(),
        out_dir: out_dir.to_path_buf(),
        work_root: work_root.to_path_buf(),
        keep: false,
        namespaces: labcheck::net::NamespaceKind::for_this_process(),
        parallel: false,
        jail_slot: 0,
    }
}

async fn run(id: &str) -> LabReport {
    let file = workspace_root()
        .join("scenarios")
        .join(format!("{id}.toml"));
    let lab = labcheck::scenario::load(&file).expect("the shipped lab file is valid");
    run_loaded(&lab, false).await
}

/// Runs `lab` as `labcheck run --jobs 2` would when `parallel`.
async fn run_loaded(lab: &labcheck::scenario::model::Lab, parallel: bool) -> LabReport {
    let dir = tempfile::tempdir().expect("temp dir");
    let work_root = dir.path().join("work");
    let ctx = RunContext {
        parallel,
        ..context(&work_root, &dir.path().join("out")).await
    };
    let (events, mut received) = EventSink::channel();
    run_lab(lab, &ctx, &events).await.expect("the lab starts");
    drop(events);
    let mut builder = ReportBuilder::new();
    while let Some(event) = received.recv().await {
        builder.apply(&event);
    }
    let mut report = builder.finish();
    assert_nothing_left(&work_root);
    // The network labs' devices lived in their namespaces, never here.
    for device in ["tap0", "tap1", "br0"] {
        assert_no_host_link(device);
    }
    report.labs.remove(0)
}

async fn check_lab(id: &str) {
    let report = run(id).await;
    let canonical = CanonicalLab::of(&report);
    insta::with_settings!({
        snapshot_path => workspace_root().join("scenarios/snapshots"),
        prepend_module_to_snapshot => false,
        omit_expression => true,
    }, {
        insta::assert_yaml_snapshot!(id, canonical);
    });
    assert_eq!(
        report.outcome,
        LabOutcome::Passed,
        "{}",
        serde_json::to_string_pretty(&report.steps).unwrap_or_default()
    );
}

/// The socket lab's VMs on the host's own network, run as if alongside other
/// labs: a free loopback port stands in for 1234, declared, and the link works.
const SOCKET_ON_THE_HOST: &str = r#"
[lab]
id = "socket-on-the-host"
title = "The socket link on the host's network, in parallel"
handout = "Lab - VM1 to VM2 communication via Socket"

[images]
"alpine-standard-3.20.0-x86_64.iso" = "guest:iso"

[vm.vm1]
qemu = "qemu-system-x86_64 -m 256 -cdrom alpine-standard-3.20.0-x86_64.iso -boot d -netdev socket,id=net0,listen=:1234 -device virtio-net-pci,netdev=net0 -nographic"

[vm.vm2]
qemu = "qemu-system-x86_64 -m 256 -cdrom alpine-standard-3.20.0-x86_64.iso -boot d -netdev socket,id=net0,connect=127.0.0.1:1234 -device virtio-net-pci,netdev=net0,mac=52:54:00:12:34:57 -nographic"

[[step]]
name = "Boot"
boot = ["vm1", "vm2"]

[[step]]
name = "Address VM1"
on = "vm1"
run = "ip addr add 10.0.0.1/24 dev eth0 && ip link set eth0 up"

[[step]]
name = "Address VM2"
on = "vm2"
run = "ip addr add 10.0.0.2/24 dev eth0 && ip link set eth0 up"

[[step]]
name = "VM2 reaches VM1 over the substituted port"
on = "vm2"
run = "ping -c 2 -W 5 10.0.0.1"
expect = { output = "2 packets received" }
"#;

async fn a_host_network_lab_run_in_parallel_gets_free_loopback_ports() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("socket-on-the-host.toml");
    std::fs::write(&file, SOCKET_ON_THE_HOST).expect("write the lab");
    let lab = labcheck::scenario::load(&file).expect("valid lab");
    let report = run_loaded(&lab, true).await;
    assert_eq!(
        report.outcome,
        LabOutcome::Passed,
        "{}",
        serde_json::to_string_pretty(&report.steps).unwrap_or_default()
    );
    let ports: Vec<_> = report
        .substitutions
        .iter()
        .filter(|s| s.kind == "loopback_port")
        .collect();
    assert_eq!(ports.len(), 2, "{:?}", report.substitutions);
    let vm1 = &ports[0].replacement;
    let vm2 = &ports[1].replacement;
    let port = vm1
        .strip_prefix("-netdev socket,id=net0,listen=127.0.0.1:")
        .unwrap_or_else(|| panic!("VM1 listens on loopback: {vm1}"));
    assert_ne!(port, "1234");
    assert_eq!(
        vm2,
        &format!("-netdev socket,id=net0,connect=127.0.0.1:{port}")
    );
}

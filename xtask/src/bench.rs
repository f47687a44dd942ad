//! `cargo xtask bench`: boot-to-shell of each guest form and the guest
//! command round trip, measured side by side in one run, medians quoted.
//! The figures go to BENCHMARKS.md by hand, with the machine they came from.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use labcheck::guest::Artifacts;
use labcheck::runner::{BootRequest, Booted, LiveVm};
use labcheck::time::Deadline;
use labcheck::vm::{rewrite, Accel, CommandLine, Plan};

use super::Failure;

const BOOT_DEADLINE: Duration = Duration::from_secs(120);

/// A guest form and the command line that boots it, as a student would type
/// it but with `-net none`: this measures the form, not the NIC's option ROM
/// or driver (and keeps the benchmark off any network).
struct Form {
    name: &'static str,
    command: String,
}

/// The direct form boots with the firmware labs give it (qboot where QEMU
/// has it, see `labcheck::vm::firmware`).
fn forms(guest: &Artifacts, firmware: Option<&str>) -> Vec<Form> {
    let bios = firmware.map_or(String::new(), |rom| format!("-bios {rom} "));
    vec![
        Form {
            name: "direct boot (vmlinux via PVH + initramfs)",
            command: format!(
                "qemu-system-x86_64 {bios}-m 512 -net none -kernel {} -initrd {} -append '{}' -nographic",
                guest.vmlinux.display(),
                guest.initramfs.display(),
                Artifacts::DIRECT_BOOT_APPEND
            ),
        },
        Form {
            name: "ISO (isolinux, -cdrom -boot d)",
            command: format!(
                "qemu-system-x86_64 -m 512 -net none -cdrom {} -boot d -nographic",
                guest.iso.display()
            ),
        },
        Form {
            name: "disk (syslinux, -hda qcow2)",
            command: "qemu-system-x86_64 -hda disk.qcow2 -m 1024 -net none -nographic".to_string(),
        },
    ]
}

pub fn run(guest: &Artifacts, boots: usize, round_trips: usize) -> Result<(), Failure> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start tokio: {e}"))?;
    runtime.block_on(measure(guest, boots, round_trips))
}

async fn measure(guest: &Artifacts, boots: usize, round_trips: usize) -> Result<(), Failure> {
    let probe = labcheck::cli::probe_accelerator(guest).await;
    println!("accelerator: {} ({})", probe.accel, probe.detail);
    let work = tempfile::Builder::new()
        .prefix("lcb-")
        .tempdir()
        .map_err(|e| format!("cannot make a temp dir: {e}"))?;
    std::fs::copy(&guest.disk_qcow2, work.path().join("disk.qcow2"))
        .map_err(|e| format!("cannot copy the guest disk: {e}"))?;

    let firmware = labcheck::vm::firmware::direct_boot_firmware().await;
    println!(
        "direct boot firmware: {}",
        firmware.unwrap_or("QEMU's default (no qboot.rom in its data dirs)")
    );
    let forms = forms(guest, firmware);
    // Round by round, one boot of each form, so that the host's drift
    // weighs on every form alike.
    let mut times = vec![Vec::with_capacity(boots); forms.len()];
    for _ in 0..boots {
        for (form, times) in forms.iter().zip(&mut times) {
            let (_vm, took) = boot(&form.command, probe.accel, work.path()).await?;
            times.push(took);
        }
    }
    println!("\n| guest form | boot to shell, median of {boots} | min | max |");
    println!("|---|---:|---:|---:|");
    for (form, times) in forms.iter().zip(&mut times) {
        let (median, min, max) = summary(times);
        println!(
            "| {} | {median:.2} s | {min:.2} s | {max:.2} s |",
            form.name
        );
    }

    let (mut vm, _) = boot(&forms[0].command, probe.accel, work.path()).await?;
    let mut times = Vec::with_capacity(round_trips);
    for n in 0..round_trips {
        let started = Instant::now();
        let reply = vm
            .console
            .run(
                &format!("echo {n}"),
                Deadline::after(Duration::from_secs(10)),
            )
            .await
            .map_err(|e| format!("round trip {n}: {e}"))?;
        times.push(started.elapsed());
        if reply.output.trim() != n.to_string() || reply.exit != 0 {
            return Err(Failure::Message(format!(
                "round trip {n} came back wrong: {reply:?}"
            )));
        }
    }
    let (median, min, max) = summary(&mut times);
    println!(
        "\nguest command round trip (`echo N` over the serial console, {round_trips} calls): median {:.3} ms, min {:.3} ms, max {:.3} ms",
        median * 1000.0,
        min * 1000.0,
        max * 1000.0
    );
    Ok(())
}

/// Boots `command` through the runner's own boot path and returns the VM
/// (QEMU dies when it is dropped) and the time from spawn to shell.
async fn boot(command: &str, accel: Accel, work_dir: &Path) -> Result<(LiveVm, Duration), Failure> {
    let line = CommandLine::parse(command).map_err(|e| format!("{command}: {e}"))?;
    let run_dir = tempfile::Builder::new()
        .prefix("vm-")
        .tempdir_in(work_dir)
        .map_err(|e| format!("cannot make a run dir: {e}"))?
        .keep();
    let plan = Plan {
        accel,
        serial_socket: run_dir.join("serial.sock"),
        qmp_socket: run_dir.join("qmp.sock"),
        // The benchmark measures the handout's boot and console alone.
        control_socket: None,
        stand_ins: Vec::new(),
        loopback_ports: BTreeMap::new(),
        images_in: None,
    };
    let request = BootRequest {
        vm: "bench".to_string(),
        argv: rewrite(&line, &plan).argv,
        cwd: work_dir.to_path_buf(),
        transcript: run_dir.join("transcript.log"),
        control_socket: None,
        control_transcript: run_dir.join("control.log"),
        run_dir,
        serial_socket: plan.serial_socket,
        qmp_socket: plan.qmp_socket,
        enclosure: labcheck::process::Enclosure::host(),
        deadline: Deadline::after(BOOT_DEADLINE),
        launched: None,
    };
    match labcheck::runner::boot(request).await {
        Booted::Ready { vm, after } => Ok((*vm, after)),
        Booted::Exited { status, log } => Err(Failure::Message(format!(
            "{command}: QEMU exited ({status:?}) before a shell: {log}"
        ))),
        Booted::Failed(failure) => Err(Failure::Message(format!(
            "{command}: {}; the console's last lines:\n{}",
            failure.message,
            failure.tail.join("\n")
        ))),
    }
}

/// Median, min and max in seconds.
pub fn summary(times: &mut [Duration]) -> (f64, f64, f64) {
    times.sort();
    let secs = |d: &Duration| d.as_secs_f64();
    let median = times.get(times.len() / 2).map_or(0.0, secs);
    let min = times.first().map_or(0.0, secs);
    let max = times.last().map_or(0.0, secs);
    (median, min, max)
}

//! What a student's QEMU command line may do on the grading machine.
//!
//! QEMU runs there as root, so a submission's command line is held to an
//! allow-list: only options known to stay inside the student's work dir and
//! the lab's private network pass, and inside their `key=value,…` values only
//! known types and keys. Everything else is refused with a reason a student
//! can act on.
//!
//! - [`check`] and [`image_paths`] are pure: they judge the text.
//! - [`confine_images`] judges the files the line names, just before QEMU
//!   starts: where symlinks lead, hard links, and every file of a qcow2
//!   backing chain (a student's script can point a backing file anywhere).
//!
//! Not covered here, and up to whoever starts QEMU: QEMU 7.2 looks its
//! firmware and option ROMs up in its working directory before its data dir
//! (a `bios-256k.bin` there is loaded; an `efi-e1000.rom` symlink would put
//! any host file in the guest's reach), so QEMU must not run with the
//! student's work dir as its working directory.
//!
//! Comments need nothing here: [`CommandLine::parse`] splits words as a shell
//! does, so a `#` starting a word (a comment line, or ` # …` after an option)
//! already runs to the end of its line.

use std::collections::HashSet;
use std::fmt;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use crate::time::Deadline;
use crate::vm::cmdline::{CommandLine, KeyValue, KeyValues, QemuOption};
use crate::vm::process::{run_shell, Enclosure, ShellExit};

/// The only emulator a submission may start, by this bare name (a path could
/// name a program of the student's own).
const PROGRAM: &str = super::QEMU;

/// Options whose value is the name of an image file.
const IMAGE_OPTIONS: &[&str] = &["-cdrom", "-hda", "-hdb", "-hdc", "-hdd"];

/// Image formats QEMU may open. Others can name further host files of their
/// own (a VMDK descriptor lists extent files anywhere on the host).
const IMAGE_FORMATS: &[&str] = &["qcow2", "raw"];

/// Longest backing chain followed; a longer one (or a loop) is refused.
const MAX_CHAIN: usize = 16;

/// Options refused with a reason of their own, the flag first in the sentence.
const REFUSED_OPTIONS: &[(&[&str], &str)] = &[
    (
        &["-monitor", "-mon"],
        "gives a QEMU monitor of your own: the grader wires the monitor itself",
    ),
    (
        &["-qmp", "-qmp-pretty"],
        "opens a QMP control channel of your own: the grader controls the VM through its own",
    ),
    (
        &["-chardev"],
        "connects the VM to host files, sockets or terminals: the grader wires the VM's character devices itself",
    ),
    (
        &["-serial"],
        "wires the guest's serial port yourself: the grader wires the serial console itself (-nographic is enough)",
    ),
    (
        &["-parallel"],
        "connects the guest's parallel port to a host device or file: not needed for these labs",
    ),
    (
        &["-plugin"],
        "loads a shared library into QEMU, which runs as root on the grading machine",
    ),
    (
        &["-incoming"],
        "loads a migration stream from a file, socket or command: start the VM from its disk instead",
    ),
    (
        &["-daemonize"],
        "detaches QEMU from the grader, which must keep watching the VM",
    ),
    (
        &["-readconfig"],
        "reads more options from a file the grader cannot check: write every option on the command line",
    ),
    (&["-writeconfig"], "writes a file on the grading machine"),
    (
        &["-pidfile"],
        "writes a file on the grading machine: the grader keeps track of QEMU itself",
    ),
    (
        &["-D"],
        "writes QEMU's log to a file on the grading machine: the grader keeps QEMU's output itself",
    ),
    (
        &["-trace"],
        "writes trace output to files on the grading machine: not needed for these labs",
    ),
    (
        &["-gdb"],
        "opens a debugger connection into the VM: not allowed while grading",
    ),
    (
        &["-s"],
        "(short for -gdb tcp::1234) opens a debugger connection into the VM: not allowed while grading",
    ),
    (
        &["-object"],
        "creates host-side objects (memory backed by host files, secrets, sockets): not needed for these labs",
    ),
    (
        &["-fsdev", "-virtfs"],
        "shares a directory of the grading machine with the guest: the guest may see only its own disks",
    ),
    (
        &["-add-fd"],
        "hands QEMU an open file of the grading machine: name your images instead",
    ),
    (
        &["-fw_cfg"],
        "copies a host file into the guest's firmware configuration: not needed for these labs",
    ),
    (
        &["-L"],
        "loads firmware from a directory of your choice: the grader uses the installed firmware",
    ),
    (
        &["-bios"],
        "loads a firmware file of your choice: the grader uses the installed firmware",
    ),
    (
        &["-kernel", "-initrd", "-append"],
        "boots a Linux kernel directly, which is outside this course's labs: boot from the disk or the CD-ROM",
    ),
    (
        &["-loadvm"],
        "restores a saved VM state: start the VM from its disk as the lab asks",
    ),
    (
        &["-run-with"],
        "changes the user or root directory QEMU runs with: the grader sets those itself",
    ),
    (
        &["-sandbox"],
        "changes QEMU's system-call filter: the grader sets the sandbox itself",
    ),
];

/// Keys refused with a reason of their own wherever they appear, the key
/// first in the sentence.
const REFUSED_KEYS: &[(&[&str], &str)] = &[
    (
        &["chardev"],
        "connects the device to a host character device: the grader wires those itself",
    ),
    (
        &["smb"],
        "shares a directory of the grading machine with the guest",
    ),
    (
        &["tftp"],
        "serves a directory of the grading machine to the guest",
    ),
    (
        &["bootfile"],
        "boots the guest from a file of the grading machine served over TFTP",
    ),
    (
        &["guestfwd"],
        "forwards the guest's connections to programs or services of the grading machine",
    ),
    (
        &["fd", "fds", "vhostfd", "vhostfds"],
        "hands QEMU an open file of the grading machine: let QEMU open the device itself",
    ),
    (
        &["helper"],
        "runs a helper program of the grading machine as root: use script=no,downscript=no with a tap you created",
    ),
    (
        &["script", "downscript"],
        "may only be `no`: any other value runs a program of the grading machine as root",
    ),
    (
        &["romfile"],
        "loads a file of the grading machine into the device's option ROM",
    ),
    (
        &["memory-backend"],
        "backs the guest's memory with a host object: not needed for these labs",
    ),
    (&["splash"], "shows a picture from a file of the grading machine"),
];

const MACHINE_KEYS: &[&str] = &[
    "type",
    "accel",
    "usb",
    "vmport",
    "graphics",
    "smm",
    "kernel-irqchip",
    "acpi",
];
const ACCELERATORS: &[&str] = &["kvm", "tcg"];
const MACHINE_ACCELERATORS: &[&str] = &["kvm", "tcg", "kvm:tcg", "tcg:kvm"];
const VGA_TYPES: &[&str] = &["std", "cirrus", "vmware", "qxl", "virtio", "none"];
const BOOT_KEYS: &[&str] = &[
    "order",
    "once",
    "menu",
    "strict",
    "reboot-timeout",
    "splash-time",
];
const SMP_KEYS: &[&str] = &[
    "cpus", "sockets", "dies", "clusters", "cores", "threads", "maxcpus",
];
const DRIVE_KEYS: &[&str] = &[
    "file", "format", "driver", "if", "media", "index", "cache", "snapshot", "id", "readonly",
];
const DRIVE_INTERFACES: &[&str] = &["ide", "scsi", "virtio", "none", "floppy"];
const DRIVE_MEDIA: &[&str] = &["disk", "cdrom"];
const DEVICES: &[&str] = &[
    "virtio-net-pci",
    "virtio-net",
    "e1000",
    "e1000e",
    "rtl8139",
    "virtio-blk-pci",
    "virtio-blk",
    "ide-hd",
    "ide-cd",
    "virtio-scsi-pci",
    "scsi-hd",
    "scsi-cd",
    "usb-tablet",
    "usb-kbd",
    "usb-mouse",
];
const DEVICE_KEYS: &[&str] = &[
    "driver",
    "id",
    "netdev",
    "mac",
    "drive",
    "bus",
    "addr",
    "bootindex",
    "unit",
];
const NETDEV_TYPES: &[&str] = &["user", "socket", "tap"];
/// `-net` also configures the card (`nic`), or nothing at all (`none`).
const NET_TYPES: &[&str] = &["user", "socket", "tap", "nic", "none"];
const NIC_TYPES: &[&str] = &["user", "socket", "tap", "none"];
/// Keys `-nic` adds to its network type's own: the card's model and address.
const NIC_CARD_KEYS: &[&str] = &["model", "mac"];
const USER_KEYS: &[&str] = &[
    "type",
    "id",
    "name",
    "net",
    "host",
    "restrict",
    "hostname",
    "dhcpstart",
    "dns",
    "domainname",
    "dnssearch",
    "hostfwd",
    "ipv4",
    "ipv6",
];
const SOCKET_KEYS: &[&str] = &[
    "type",
    "id",
    "name",
    "listen",
    "connect",
    "mcast",
    "udp",
    "localaddr",
];
const TAP_KEYS: &[&str] = &[
    "type",
    "id",
    "name",
    "ifname",
    "script",
    "downscript",
    "vhost",
    "queues",
];
const NET_NIC_KEYS: &[&str] = &[
    "type", "id", "name", "model", "macaddr", "netdev", "addr", "vectors",
];

/// Why one option of a submission's command line is not allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The option as written, value included (`-monitor stdio`).
    pub option: String,
    /// One sentence for the student.
    pub reason: String,
}

impl Refusal {
    fn new(option: &QemuOption, reason: String) -> Self {
        Self {
            option: option.to_argv().collect::<Vec<_>>().join(" "),
            reason,
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.option, self.reason)
    }
}

/// What an option's value does wrong, as a sentence for the student.
type Verdict = Result<(), String>;

/// Judges a submitted command line: empty when everything in it is allowed.
pub fn check(line: &CommandLine) -> Vec<Refusal> {
    let program = (line.program != PROGRAM).then(|| Refusal {
        option: line.program.clone(),
        reason: format!("only {PROGRAM} may be started, by that name alone"),
    });
    let options = line.options.iter().filter_map(|option| {
        check_option(option)
            .err()
            .map(|reason| Refusal::new(option, reason))
    });
    program.into_iter().chain(options).collect()
}

/// Every host file the line names as an image, in order (`-cdrom`,
/// `-hda`…`-hdd`, `-drive file=`), exactly as written.
pub fn image_paths(line: &CommandLine) -> Vec<String> {
    images(line).into_iter().map(|image| image.path).collect()
}

fn check_option(option: &QemuOption) -> Verdict {
    let value = option.value.as_deref().unwrap_or_default();
    match option.name() {
        // Flags, and values that only name or shape the guest.
        "-enable-kvm" | "-nographic" | "-snapshot" | "-no-reboot" | "-usb" | "-name" | "-uuid"
        | "-cpu" => Ok(()),
        name if IMAGE_OPTIONS.contains(&name) => host_path(value),
        "-m" => memory(value),
        "-smp" => processors(value),
        "-machine" | "-M" => machine(value),
        "-accel" => accel(value),
        "-display" => display(value),
        "-vga" => one_of("-vga", value, VGA_TYPES),
        "-boot" => only_keys(&items(value, Some("order")), BOOT_KEYS, "-boot"),
        "-rtc" => only_keys(&items(value, None), &["base", "clock", "driftfix"], "-rtc"),
        "-k" => keymap(value),
        "-drive" => drive(value),
        "-device" => device(value),
        "-netdev" => network("-netdev", value, NETDEV_TYPES, &[]),
        "-net" => network("-net", value, NET_TYPES, &[]),
        "-nic" => network("-nic", value, NIC_TYPES, NIC_CARD_KEYS),
        _ => Err(refused_option(option)),
    }
}

/// The most memory a submission's VM may have: the labs need 512 MiB to
/// 1 GiB, and several VMs of several submissions boot at once.
const MAX_MEMORY_MIB: u64 = 2048;

/// The most virtual CPUs a submission's VM may have.
const MAX_CPUS: u64 = 4;

fn memory(value: &str) -> Verdict {
    let items = items(value, Some("size"));
    only_keys(&items, &["size", "slots", "maxmem"], "-m")?;
    items
        .iter()
        .filter(|item| item.key == "size" || item.key == "maxmem")
        .try_for_each(|item| {
            let text = item.value.as_deref().unwrap_or_default();
            match mebibytes(text) {
                Some(size) if size <= MAX_MEMORY_MIB => Ok(()),
                Some(_) => Err(format!(
                    "-m {text} is more memory than a lab VM may have ({MAX_MEMORY_MIB} MiB)"
                )),
                None => Err(format!(
                    "`{text}` is not a memory size (say 512, 512M or 1G)"
                )),
            }
        })
}

/// A size as `-m` reads it: a whole number, in MiB unless a `K`, `M`, `G`
/// or `T` follows. `None` for anything else.
fn mebibytes(text: &str) -> Option<u64> {
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: u64 = number.parse().ok()?;
    match unit.to_ascii_uppercase().as_str() {
        "K" => Some(number / 1024),
        "" | "M" => Some(number),
        "G" => number.checked_mul(1024),
        "T" => number.checked_mul(1024 * 1024),
        _ => None,
    }
}

fn processors(value: &str) -> Verdict {
    let items = items(value, Some("cpus"));
    only_keys(&items, SMP_KEYS, "-smp")?;
    items
        .iter()
        .filter(|item| item.key == "cpus" || item.key == "maxcpus")
        .try_for_each(|item| {
            let text = item.value.as_deref().unwrap_or_default();
            match text.parse::<u64>() {
                Ok(count) if count <= MAX_CPUS => Ok(()),
                Ok(_) => Err(format!(
                    "-smp {text} is more CPUs than a lab VM may have ({MAX_CPUS})"
                )),
                Err(_) => Err(format!("`{text}` is not a number of CPUs")),
            }
        })
}

/// The reason an option outside the allow-list is refused.
fn refused_option(option: &QemuOption) -> String {
    let flag = &option.flag;
    REFUSED_OPTIONS
        .iter()
        .find(|(names, _)| names.contains(&option.name()))
        .map_or_else(
            || format!("not allowed in a submission: {flag}"),
            |(_, why)| format!("{flag} {why}"),
        )
}

/// The reason a key outside an option's allow-list is refused.
fn refused_key(key: &str, what: &str) -> String {
    REFUSED_KEYS
        .iter()
        .find(|(keys, _)| keys.contains(&key))
        .map_or_else(
            || format!("`{key}=` is not allowed in {what}"),
            |(_, why)| format!("`{key}=` {why}"),
        )
}

/// The items of a `key=value,…` value, a leading bare word taken as the value
/// of the option's `implied` key (`-m 512` is `-m size=512`, `-netdev user`
/// is `-netdev type=user`), so that both spellings are judged alike.
fn items(value: &str, implied: Option<&str>) -> Vec<KeyValue> {
    let mut items = KeyValues::parse(value).items;
    if let (Some(implied), Some(first)) = (implied, items.first_mut()) {
        if first.value.is_none() {
            first.value = Some(std::mem::replace(&mut first.key, implied.to_owned()));
        }
    }
    items
}

/// Refuses the first key not in `allowed`. Every item is judged, repeated
/// keys included: QEMU keeps the last of them.
fn only_keys(items: &[KeyValue], allowed: &[&str], what: &str) -> Verdict {
    match items
        .iter()
        .find(|item| !allowed.contains(&item.key.as_str()))
    {
        Some(item) => Err(refused_key(&item.key, what)),
        None => Ok(()),
    }
}

/// Refuses any value of `key` outside `allowed` (a bare key means `on`).
fn only_values(items: &[KeyValue], key: &str, allowed: &[&str], what: &str) -> Verdict {
    items
        .iter()
        .filter(|item| item.key == key)
        .try_for_each(|item| one_of(what, item.value.as_deref().unwrap_or("on"), allowed))
}

fn one_of(what: &str, value: &str, allowed: &[&str]) -> Verdict {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(format!(
            "`{value}` is not allowed in {what} (allowed: {})",
            allowed.join(", ")
        ))
    }
}

/// The one value of `key`, the type of a device or network (`user` in
/// `-netdev user,id=n0`). Two of them are refused, whichever QEMU would take.
fn single<'a>(items: &'a [KeyValue], key: &str, what: &str) -> Result<&'a str, String> {
    let mut values = items.iter().filter(|item| item.key == key);
    match (values.next(), values.next()) {
        (Some(item), None) => item
            .value
            .as_deref()
            .ok_or_else(|| format!("{what} needs a {key}")),
        (None, _) => Err(format!("{what} needs a {key}")),
        (Some(_), Some(_)) => Err(format!("{what} names its {key} more than once")),
    }
}

fn machine(value: &str) -> Verdict {
    let items = items(value, Some("type"));
    // The type may be left out (`-machine accel=tcg`): QEMU's default is pc.
    if items.iter().any(|item| item.key == "type") {
        let machine = single(&items, "type", "-machine")?;
        if !(machine == "pc" || machine == "q35" || machine.starts_with("pc-")) {
            return Err(format!(
                "machine `{machine}` is not allowed in a submission (allowed: pc, q35 and their versions)"
            ));
        }
    }
    only_keys(&items, MACHINE_KEYS, "-machine")?;
    only_values(&items, "accel", MACHINE_ACCELERATORS, "-machine accel=")
}

fn accel(value: &str) -> Verdict {
    let items = items(value, Some("accel"));
    one_of("-accel", single(&items, "accel", "-accel")?, ACCELERATORS)?;
    only_keys(&items, &["accel", "thread"], "-accel")
}

fn display(value: &str) -> Verdict {
    let items = items(value, Some("type"));
    match single(&items, "type", "-display") {
        Ok("none") => only_keys(&items, &["type"], "-display none"),
        _ => {
            Err("the grader runs VMs without a screen: use -display none or -nographic".to_owned())
        }
    }
}

/// QEMU looks a keymap up as a file name first, so only a plain layout name
/// (`en-us`, `de`) keeps `-k` from naming any file of the host. (It still
/// finds a file of that name in its working directory first; it reads
/// keymaps only for the VNC, curses and SDL displays, all refused here.)
fn keymap(value: &str) -> Verdict {
    let plain = !value.is_empty() && value.bytes().all(|b| b.is_ascii_lowercase() || b == b'-');
    if plain {
        Ok(())
    } else {
        Err("-k takes the name of one of QEMU's keymaps, such as en-us or de".to_owned())
    }
}

fn drive(value: &str) -> Verdict {
    let items = items(value, None);
    only_keys(&items, DRIVE_KEYS, "-drive")?;
    only_values(&items, "format", IMAGE_FORMATS, "-drive format=")?;
    only_values(&items, "driver", IMAGE_FORMATS, "-drive driver=")?;
    only_values(&items, "if", DRIVE_INTERFACES, "-drive if=")?;
    only_values(&items, "media", DRIVE_MEDIA, "-drive media=")?;
    items
        .iter()
        .filter(|item| item.key == "file")
        .try_for_each(|item| host_path(item.value.as_deref().unwrap_or_default()))
}

fn device(value: &str) -> Verdict {
    let items = items(value, Some("driver"));
    let driver = single(&items, "driver", "-device")?;
    if !DEVICES.contains(&driver) {
        return Err(format!(
            "device `{driver}` is not allowed in a submission (allowed: {})",
            DEVICES.join(", ")
        ));
    }
    only_keys(&items, DEVICE_KEYS, &format!("-device {driver}"))
}

/// `-netdev`, `-net` and `-nic`: a network type from `types`, then that
/// type's keys plus `extra_keys`.
fn network(option: &str, value: &str, types: &[&str], extra_keys: &[&str]) -> Verdict {
    let items = items(value, Some("type"));
    let kind = single(&items, "type", option)?;
    let keys = match kind {
        "user" => USER_KEYS,
        "socket" => SOCKET_KEYS,
        "tap" => TAP_KEYS,
        "nic" => NET_NIC_KEYS,
        "none" => &["type"],
        _ => &[],
    };
    if !types.contains(&kind) {
        return Err(format!(
            "network type `{kind}` is not allowed in {option} (allowed: {})",
            types.join(", ")
        ));
    }
    let what = format!("{option} {kind}");
    let allowed: Vec<&str> = keys.iter().chain(extra_keys).copied().collect();
    only_keys(&items, &allowed, &what)?;
    let script_off =
        |key| only_values(&items, key, &["no"], &what).map_err(|_| refused_key(key, &what));
    script_off("script")?;
    script_off("downscript")
}

/// A host path named on the command line: plain, relative, inside the work dir.
fn host_path(path: &str) -> Verdict {
    let problem = if path.is_empty() {
        "names no file"
    } else if path.starts_with('/') {
        "an absolute path can reach any file of the grading machine: name the image relative to your work dir"
    } else if path.starts_with('~') {
        "`~` is a home dir, not your work dir: name the image relative to your work dir"
    } else if path.contains(':') {
        "a `:` makes QEMU read the name as a protocol (nbd:, json:, http:, fat:…), not a file: rename the image"
    } else if Path::new(path)
        .components()
        .any(|part| part == Component::ParentDir)
    {
        "`..` leads out of your work dir: keep the image inside it"
    } else {
        return Ok(());
    };
    Err(problem.to_owned())
}

/// An image the line names.
#[derive(Debug)]
struct Image<'a> {
    option: &'a QemuOption,
    path: String,
    /// The format the line declares (`-drive format=`), if an allowed one;
    /// otherwise QEMU probes the file, and so do we.
    format: Option<String>,
}

fn images(line: &CommandLine) -> Vec<Image<'_>> {
    let mut images = Vec::new();
    for option in &line.options {
        let value = option.value.clone().unwrap_or_default();
        match option.name() {
            name if IMAGE_OPTIONS.contains(&name) => images.push(Image {
                option,
                path: value,
                format: None,
            }),
            "-drive" => {
                let items = items(&value, None);
                let format = items
                    .iter()
                    .rev()
                    .filter(|item| item.key == "format" || item.key == "driver")
                    .find_map(|item| item.value.clone())
                    .filter(|format| IMAGE_FORMATS.contains(&format.as_str()));
                for item in items.iter().filter(|item| item.key == "file") {
                    images.push(Image {
                        option,
                        path: item.value.clone().unwrap_or_default(),
                        format: format.clone(),
                    });
                }
            }
            _ => {}
        }
    }
    images
}

/// The harness itself could not judge the images: the submission is not
/// gradable, which is not the student's fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfineError {
    #[error("work dir {path}: {source}")]
    WorkDir { path: PathBuf, source: io::Error },
    #[error("could not run `{command}`: {source}")]
    Spawn { command: String, source: io::Error },
    #[error("`{command}` still running after {after:?}; output so far: {output}")]
    Timeout {
        command: String,
        after: Duration,
        output: String,
    },
    #[error("`{command}` was killed by signal {signal}; output: {output}")]
    Killed {
        command: String,
        signal: i32,
        output: String,
    },
    #[error("`{command}` printed no JSON image description ({source}); output: {output}")]
    BadInfo {
        command: String,
        source: serde_json::Error,
        output: String,
    },
}

/// Judges the files a line's images are, just before QEMU opens them, for a
/// line [`check`] accepted: each must resolve (through any symlinks) to a
/// regular file inside `work_dir`, with no other hard link, in an allowed
/// format, and so must every file of its qcow2 backing chain.
///
/// `provided` are canonical paths of files the grader itself put in the work
/// dir (such as a stand-in ISO linked from the guest cache): an image that
/// resolves to one of them is accepted as it is.
///
/// The chain is walked one file at a time (`qemu-img info` without
/// `--backing-chain`), each backing file judged before anything opens it:
/// `--backing-chain` would open them all first, an `nbd:` or `http:` one
/// included.
pub async fn confine_images(
    work_dir: &Path,
    provided: &[PathBuf],
    line: &CommandLine,
    deadline: Deadline,
) -> Result<Vec<Refusal>, ConfineError> {
    let root = tokio::fs::canonicalize(work_dir)
        .await
        .map_err(|source| ConfineError::WorkDir {
            path: work_dir.to_owned(),
            source,
        })?;
    let confinement = Confinement {
        work_dir,
        root,
        provided,
        deadline,
    };
    let mut refusals = Vec::new();
    for image in images(line) {
        match confinement.image(&image).await {
            Ok(()) => {}
            Err(Stop::Refused(reason)) => refusals.push(Refusal::new(image.option, reason)),
            Err(Stop::Failed(error)) => return Err(error),
        }
    }
    Ok(refusals)
}

/// File name endings QEMU's firmware and option ROMs have.
const FIRMWARE_ENDINGS: &[&str] = &[".bin", ".rom", ".fd", ".dtb"];

/// Where QEMU keeps the data files it looks up by bare name.
const QEMU_DATA_DIR: &str = "/usr/share/qemu";

/// Files in the work dir that QEMU would take for its own firmware: QEMU
/// looks a data file up in its working directory (the work dir) before its
/// data dir, so a student's `bios-256k.bin` or `efi-e1000.rom` symlink
/// would be loaded into the guest. Judged just before QEMU starts, with the
/// student's processes gone.
pub fn firmware_lookalikes(work_dir: &Path) -> io::Result<Vec<Refusal>> {
    let data_files: HashSet<std::ffi::OsString> = match std::fs::read_dir(QEMU_DATA_DIR) {
        Ok(entries) => entries.filter_map(|e| Some(e.ok()?.file_name())).collect(),
        Err(_) => HashSet::new(),
    };
    let mut found = Vec::new();
    for entry in std::fs::read_dir(work_dir)? {
        let name = entry?.file_name();
        let text = name.to_string_lossy();
        let firmware_like = FIRMWARE_ENDINGS.iter().any(|end| text.ends_with(end));
        if firmware_like || data_files.contains(&name) {
            found.push(Refusal {
                option: text.to_string(),
                reason: "is named like a firmware file QEMU loads from its working directory: \
                 leave only your disk images in the work dir"
                    .to_string(),
            });
        }
    }
    found.sort_by(|a, b| a.option.cmp(&b.option));
    Ok(found)
}

/// Why judging an image stopped: the student's file, or the harness.
#[derive(Debug)]
enum Stop {
    Refused(String),
    Failed(ConfineError),
}

impl From<ConfineError> for Stop {
    fn from(error: ConfineError) -> Self {
        Self::Failed(error)
    }
}

struct Confinement<'a> {
    /// Where QEMU runs: relative names are relative to it.
    work_dir: &'a Path,
    /// `work_dir`, canonical.
    root: PathBuf,
    provided: &'a [PathBuf],
    deadline: Deadline,
}

/// The part of `qemu-img info --output=json` that matters here.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
struct ImageInfo {
    format: String,
    /// The backing file's name as stored in the image.
    backing_filename: Option<String>,
    /// That name as QEMU opens it: relative to the image's own path.
    full_backing_filename: Option<String>,
    backing_filename_format: Option<String>,
    format_specific: Option<FormatSpecific>,
}

#[derive(Debug, serde::Deserialize)]
struct FormatSpecific {
    data: Option<serde_json::Value>,
}

impl ImageInfo {
    /// A qcow2 image can keep its data in a file of its own, named anywhere.
    fn data_file(&self) -> Option<&str> {
        self.format_specific
            .as_ref()?
            .data
            .as_ref()?
            .get("data-file")?
            .as_str()
    }
}

impl Confinement<'_> {
    /// Follows `image` and its backing chain, refusing at the first file
    /// that is not allowed.
    async fn image(&self, image: &Image<'_>) -> Result<(), Stop> {
        host_path(&image.path).map_err(Stop::Refused)?;
        let mut seen = HashSet::new();
        // The file as QEMU will open it (relative to the work dir), and its
        // declared format.
        let mut next = Some((image.path.clone(), image.format.clone()));
        while let Some((path, format)) = next.take() {
            let canonical = self.resolve(&path).await?;
            if self.provided.contains(&canonical) {
                return Ok(());
            }
            self.confined(&path, &canonical).await?;
            if !seen.insert(canonical) || seen.len() > MAX_CHAIN {
                return Err(Stop::Refused(format!(
                    "the backing chain of `{}` loops or is longer than {MAX_CHAIN} images",
                    image.path
                )));
            }
            let info = self.info(&path, format.as_deref()).await?;
            next = backing_file(&path, info)?;
        }
        Ok(())
    }

    async fn resolve(&self, path: &str) -> Result<PathBuf, Stop> {
        tokio::fs::canonicalize(self.work_dir.join(path))
            .await
            .map_err(|error| {
                Stop::Refused(match error.kind() {
                    io::ErrorKind::NotFound => {
                        format!(
                            "`{path}` does not exist in your work dir (or is a link to nothing)"
                        )
                    }
                    _ => format!("`{path}` cannot be read: {error}"),
                })
            })
    }

    /// `canonical` (what `path` resolves to) is a regular file inside the
    /// work dir, and no other name outside can reach its content.
    async fn confined(&self, path: &str, canonical: &Path) -> Result<(), Stop> {
        let refused = |why: String| Err(Stop::Refused(why));
        if !canonical.starts_with(&self.root) {
            return refused(format!(
                "`{path}` leads to {}, outside your work dir",
                canonical.display()
            ));
        }
        let metadata = tokio::fs::metadata(canonical)
            .await
            .map_err(|error| Stop::Refused(format!("`{path}` cannot be read: {error}")))?;
        if !metadata.is_file() {
            return refused(format!("`{path}` is not a regular file"));
        }
        // A hard link is the same file under another name, which could be
        // outside the work dir.
        if metadata.nlink() > 1 {
            return refused(format!(
                "`{path}` has other hard links, which may be files outside your work dir: copy the image instead of linking it"
            ));
        }
        Ok(())
    }

    /// `qemu-img info` of the one file `path` (its backing file unopened),
    /// judged: an allowed format, no external data file.
    async fn info(&self, path: &str, format: Option<&str>) -> Result<ImageInfo, Stop> {
        let command = info_command(path, format)?;
        let output = run_shell(&command, self.work_dir, &Enclosure::host(), self.deadline)
            .await
            .map_err(|source| ConfineError::Spawn {
                command: command.clone(),
                source,
            })?;
        match output.exit {
            ShellExit::Exited(0) => {}
            ShellExit::Exited(_) => {
                return Err(Stop::Refused(format!(
                    "qemu-img cannot read `{path}` as an image: {}",
                    output.text().trim()
                )))
            }
            ShellExit::TimedOut { after } => {
                let output = output.text();
                return Err(ConfineError::Timeout {
                    command,
                    after,
                    output,
                }
                .into());
            }
            ShellExit::Signaled(signal) => {
                let output = output.text();
                return Err(ConfineError::Killed {
                    command,
                    signal,
                    output,
                }
                .into());
            }
        }
        let info: ImageInfo =
            serde_json::from_slice(&output.output).map_err(|source| ConfineError::BadInfo {
                command,
                source,
                output: output.text(),
            })?;
        if !IMAGE_FORMATS.contains(&info.format.as_str()) {
            return Err(Stop::Refused(format!(
                "`{path}` is a {} image: only qcow2 and raw images are allowed",
                info.format
            )));
        }
        if let Some(data_file) = info.data_file() {
            return Err(Stop::Refused(format!(
                "`{path}` keeps its data in the external file `{data_file}`: keep the data inside the qcow2 image"
            )));
        }
        Ok(info)
    }
}

fn info_command(path: &str, format: Option<&str>) -> Result<String, Stop> {
    let quote = |text: &str| {
        shlex::try_quote(text)
            .map(|quoted| quoted.into_owned())
            .map_err(|_| Stop::Refused(format!("`{text}` is not a usable file name")))
    };
    let format = match format {
        Some(format) => format!(" -f {}", quote(format)?),
        None => String::new(),
    };
    Ok(format!(
        "qemu-img info -U --output=json{format} -- {}",
        quote(path)?
    ))
}

/// The next file of the chain after the image at `path`: its backing file as
/// QEMU will open it, with the format the image declares for it.
fn backing_file(path: &str, info: ImageInfo) -> Result<Option<(String, Option<String>)>, Stop> {
    let Some(name) = info.backing_filename else {
        return Ok(None);
    };
    if name.contains(':') {
        return Err(Stop::Refused(format!(
            "`{path}` has the backing file `{name}`, which names a protocol, not a file"
        )));
    }
    // Judged before qemu-img opens the file with it: a protocol driver
    // given as the format (`-f http`) would read a plain name as an address.
    if let Some(format) = &info.backing_filename_format {
        if !IMAGE_FORMATS.contains(&format.as_str()) {
            return Err(Stop::Refused(format!(
                "`{path}` declares its backing file `{name}` a {format} image: only qcow2 and raw images are allowed"
            )));
        }
    }
    let opened = info.full_backing_filename.unwrap_or(name);
    Ok(Some((opened, info.backing_filename_format)))
}

#[cfg(test)]
mod tests {
    #[rstest::rstest]
    #[case::plain("512", true)]
    #[case::suffixed("1G", true)]
    #[case::the_cap("2048M", true)]
    #[case::kibibytes("524288k", true)]
    #[case::over_the_cap("4G", false)]
    #[case::max_over_the_cap("size=512,maxmem=64G", false)]
    #[case::not_a_size("lots", false)]
    #[case::fraction("1.5G", false)]
    fn memory_is_bounded(#[case] value: &str, #[case] allowed: bool) {
        assert_eq!(memory(value).is_ok(), allowed, "{value}");
    }

    #[rstest::rstest]
    #[case::two("2", true)]
    #[case::keyed("cpus=4", true)]
    #[case::too_many("64", false)]
    #[case::max_too_many("cpus=1,maxcpus=128", false)]
    fn processors_are_bounded(#[case] value: &str, #[case] allowed: bool) {
        assert_eq!(processors(value).is_ok(), allowed, "{value}");
    }

    use super::*;
    use rstest::rstest;

    fn parse(text: &str) -> CommandLine {
        CommandLine::parse(text).expect("a command line the parser reads")
    }

    fn refusals(text: &str) -> Vec<String> {
        check(&parse(text))
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    /// Every QEMU command line of the handout, verbatim.
    #[rstest]
    #[case::clone_vm2("qemu-system-x86_64 -hda vm2.qcow2 \\\n-m 1024 \\\n-net user \\\n-net nic,macaddr=52:54:00:12:34:56 ")]
    #[case::socket_listen(
        "qemu-system-x86_64 \\\n  -m 512 \\\n  -enable-kvm \\\n  -cdrom alpine-standard-3.20.0-x86_64.iso \\\n  -boot d \\\n  -netdev socket,id=net0,listen=:1234 \\\n  -device virtio-net-pci,netdev=net0 \\\n  -nographic"
    )]
    #[case::socket_connect(
        "qemu-system-x86_64 \\\n  -m 512 \\\n  -enable-kvm \\\n  -cdrom alpine-standard-3.20.0-x86_64.iso \\\n  -boot d \\\n  -netdev socket,id=net0,connect=127.0.0.1:1234 \\\n  -device virtio-net-pci,netdev=net0 \\\n  -nographic"
    )]
    #[case::tap_vm1(
        "qemu-system-x86_64 \\\n  -m 512 \\\n  -enable-kvm \\\n  -cdrom alpine-standard-3.20.0-x86_64.iso \\\n  -boot d \\\n  -netdev tap,id=net0,ifname=tap0,script=no,downscript=no \\\n  -device e1000,netdev=net0,mac=52:54:00:00:00:01 \\\n  -nographic"
    )]
    #[case::tap_vm2(
        "qemu-system-x86_64 \\\n  -m 512 \\\n  -enable-kvm \\\n  -cdrom alpine-standard-3.20.0-x86_64.iso \\\n  -boot d \\\n  -netdev tap,id=net1,ifname=tap1,script=no,downscript=no \\\n  -device e1000,netdev=net1,mac=52:54:00:00:00:02 \\\n  -nographic"
    )]
    fn accepts_the_handouts_lines(#[case] text: &str) {
        assert_eq!(refusals(text), Vec::<String>::new());
    }

    /// What students typically change.
    #[rstest]
    #[case("qemu-system-x86_64 -accel tcg -m 512M -smp 2 -cpu max -display none -vga std -cdrom a.iso -boot order=d")]
    #[case("qemu-system-x86_64 -machine q35,accel=kvm:tcg -M pc -accel kvm,thread=single -m size=1G -smp cpus=2,cores=2")]
    #[case("qemu-system-x86_64 -drive file=vm2.qcow2,format=qcow2,if=virtio,cache=none,id=d0,index=0,snapshot=off")]
    #[case("qemu-system-x86_64 -drive file=images/disk.img,driver=raw,if=none,id=d1,media=disk,readonly -device virtio-blk-pci,drive=d1")]
    #[case("qemu-system-x86_64 -drive if=ide,media=cdrom,file=a.iso -device ide-hd,drive=d0,bus=ide.0 -hdb b.img -hdc c.img -hdd d.img")]
    #[case("qemu-system-x86_64 -netdev user,id=n0,hostfwd=tcp::2222-:22,hostfwd=tcp::8080-:80 -device rtl8139,netdev=n0,id=nic0")]
    #[case("qemu-system-x86_64 -netdev socket,id=n0,mcast=230.0.0.1:1234,localaddr=127.0.0.1 -device e1000e,netdev=n0")]
    #[case("qemu-system-x86_64 -netdev socket,id=n0,udp=127.0.0.1:1234,localaddr=127.0.0.1:1235 -net none")]
    #[case("qemu-system-x86_64 -nic user,model=virtio-net-pci,mac=52:54:00:00:00:09 -nic tap,ifname=tap3,script=no,downscript=no")]
    #[case("qemu-system-x86_64 -net nic,model=e1000,netdev=n0 -netdev type=tap,id=n0,ifname=tap0,script=no,downscript=no,vhost=on")]
    #[case("qemu-system-x86_64 -name vm1 -uuid 6e4c7c56-0ba4-4f8a-9fcb-2d6b0e5c7e6a -rtc base=utc,clock=host -no-reboot -usb -device usb-tablet -k en-us -snapshot")]
    #[case("qemu-system-x86_64 --m 512 --nographic --cdrom a.iso")]
    #[case("qemu-system-x86_64 -machine accel=tcg -netdev user,id=n0 -device virtio-net,netdev=n0")]
    fn accepts_common_variations(#[case] text: &str) {
        assert_eq!(refusals(text), Vec::<String>::new());
    }

    /// The parser drops comments, so a commented-out option is not there.
    #[test]
    fn comments_are_not_options() {
        let text = "# VM1, booted from the CD\nqemu-system-x86_64 \\\n  -m 512 \\\n  # -monitor stdio \\\n  -cdrom a.iso # -serial stdio\n";
        let line = parse(text);
        assert_eq!(
            line.to_argv(),
            ["qemu-system-x86_64", "-m", "512", "-cdrom", "a.iso"]
        );
        assert!(check(&line).is_empty());
    }

    /// One line per refused option: what the refusal shows, and its reason.
    #[rstest]
    #[case(
        "-monitor stdio",
        "-monitor gives a QEMU monitor of your own: the grader wires the monitor itself"
    )]
    #[case("-mon chardev=c0", "-mon gives a QEMU monitor of your own")]
    #[case(
        "-qmp unix:/tmp/q,server=on",
        "-qmp opens a QMP control channel of your own"
    )]
    #[case(
        "-qmp-pretty tcp::4444",
        "-qmp-pretty opens a QMP control channel of your own"
    )]
    #[case(
        "-chardev file,id=c0,path=/etc/shadow",
        "-chardev connects the VM to host files"
    )]
    #[case("-serial mon:stdio", "-serial wires the guest's serial port yourself")]
    #[case("-parallel /dev/lp0", "-parallel connects the guest's parallel port")]
    #[case("-plugin /tmp/evil.so", "-plugin loads a shared library into QEMU")]
    #[case("-incoming exec:cat", "-incoming loads a migration stream")]
    #[case("-daemonize", "-daemonize detaches QEMU from the grader")]
    #[case("-readconfig vm.cfg", "-readconfig reads more options from a file")]
    #[case(
        "-writeconfig /etc/x",
        "-writeconfig writes a file on the grading machine"
    )]
    #[case("-pidfile /run/x.pid", "-pidfile writes a file on the grading machine")]
    #[case("-D /etc/cron.d/x", "-D writes QEMU's log to a file")]
    #[case("-trace file=/tmp/t", "-trace writes trace output to files")]
    #[case("-gdb tcp::1234", "-gdb opens a debugger connection into the VM")]
    #[case("-s", "-s (short for -gdb tcp::1234) opens a debugger connection")]
    #[case(
        "-object memory-backend-file,id=m,mem-path=/dev/mem,size=1G",
        "-object creates host-side objects"
    )]
    #[case(
        "-fsdev local,id=f,path=/,security_model=none",
        "-fsdev shares a directory of the grading machine"
    )]
    #[case(
        "-virtfs local,path=/,mount_tag=h,security_model=none",
        "-virtfs shares a directory of the grading machine"
    )]
    #[case("-add-fd fd=3,set=1", "-add-fd hands QEMU an open file")]
    #[case("-fw_cfg name=opt/x,file=/etc/shadow", "-fw_cfg copies a host file")]
    #[case("-L /tmp", "-L loads firmware from a directory of your choice")]
    #[case("-bios evil.bin", "-bios loads a firmware file of your choice")]
    #[case("-kernel vmlinuz", "-kernel boots a Linux kernel directly")]
    #[case("-initrd initrd.img", "-initrd boots a Linux kernel directly")]
    #[case("-loadvm snap1", "-loadvm restores a saved VM state")]
    #[case("-run-with chroot=/", "-run-with changes the user or root directory")]
    #[case("-sandbox off", "-sandbox changes QEMU's system-call filter")]
    #[case("--monitor stdio", "--monitor gives a QEMU monitor of your own")]
    #[case("-S", "not allowed in a submission: -S")]
    #[case(
        "-blockdev driver=file,node-name=f,filename=/etc/shadow",
        "not allowed in a submission: -blockdev"
    )]
    fn refuses_options_with_their_reason(#[case] option: &str, #[case] reason: &str) {
        let text = format!("qemu-system-x86_64 -m 512 {option} -nographic");
        let refused = check(&parse(&text));
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert_eq!(refused[0].option, option);
        assert!(
            refused[0].reason.starts_with(reason),
            "reason {:?} should start with {reason:?}",
            refused[0].reason
        );
    }

    /// Allowed options with a value that is not: the reason names the problem.
    #[rstest]
    #[case::smb("-netdev user,id=n0,smb=/", "`smb=` shares a directory")]
    #[case::tftp("-net user,tftp=/srv", "`tftp=` serves a directory")]
    #[case::bootfile("-netdev user,id=n0,bootfile=pxe.0", "`bootfile=` boots the guest")]
    #[case::guestfwd(
        "-netdev user,id=n0,guestfwd=tcp:10.0.2.100:1-cmd:sh",
        "`guestfwd=` forwards"
    )]
    #[case::tap_script(
        "-netdev tap,id=n0,script=/etc/qemu-ifup",
        "`script=` may only be `no`"
    )]
    #[case::tap_downscript(
        "-netdev tap,id=n0,script=no,downscript=./down.sh",
        "`downscript=` may only be `no`"
    )]
    #[case::tap_fd("-netdev tap,id=n0,fd=3", "`fd=` hands QEMU an open file")]
    #[case::tap_fds("-netdev tap,id=n0,fds=3:4", "`fds=` hands QEMU an open file")]
    #[case::tap_helper(
        "-netdev tap,id=n0,helper=/usr/lib/qemu/qemu-bridge-helper",
        "`helper=` runs a helper program"
    )]
    #[case::tap_vhostfd(
        "-netdev tap,id=n0,vhost=on,vhostfd=5",
        "`vhostfd=` hands QEMU an open file"
    )]
    #[case::socket_fd("-netdev socket,id=n0,fd=3", "`fd=` hands QEMU an open file")]
    #[case::netdev_bridge(
        "-netdev bridge,id=n0,br=br0",
        "network type `bridge` is not allowed in -netdev (allowed: user, socket, tap)"
    )]
    #[case::netdev_stream(
        "-netdev stream,id=n0,addr.type=unix,addr.path=/x",
        "network type `stream` is not allowed"
    )]
    #[case::netdev_json(
        "-netdev '{\"type\":\"user\",\"id\":\"n0\"}'",
        "network type `{\"type\":\"user\"` is not allowed"
    )]
    #[case::netdev_nic("-netdev nic,id=n0", "network type `nic` is not allowed in -netdev")]
    #[case::netdev_two_types(
        "-netdev user,type=tap,id=n0",
        "-netdev names its type more than once"
    )]
    #[case::netdev_unknown_key(
        "-netdev user,id=n0,ipv6-dns=::1",
        "`ipv6-dns=` is not allowed in -netdev user"
    )]
    #[case::device_chardev("-device e1000,netdev=n0,chardev=c0", "`chardev=` connects the device")]
    #[case::device_romfile(
        "-device e1000,netdev=n0,romfile=/etc/shadow",
        "`romfile=` loads a file"
    )]
    #[case::device_driver(
        "-device virtio-serial-pci",
        "device `virtio-serial-pci` is not allowed"
    )]
    #[case::device_driver_twice(
        "-device e1000,driver=virtconsole",
        "-device names its driver more than once"
    )]
    #[case::drive_driver("-drive driver=nbd,host=127.0.0.1", "`host=` is not allowed in -drive")]
    #[case::drive_format(
        "-drive file=x.vmdk,format=vmdk",
        "`vmdk` is not allowed in -drive format= (allowed: qcow2, raw)"
    )]
    #[case::drive_driver_key(
        "-drive file=x.img,driver=file",
        "`file` is not allowed in -drive driver="
    )]
    #[case::drive_nbd(
        "-drive file=nbd:127.0.0.1:10809",
        "a `:` makes QEMU read the name as a protocol"
    )]
    #[case::drive_json("-drive 'file=json:{\"driver\":\"file\"}'", "a `:` makes QEMU")]
    #[case::drive_http("-drive file=http://example.org/x.iso,media=cdrom", "a `:` makes QEMU")]
    #[case::drive_ssh("-drive file=ssh://root@host/x", "a `:` makes QEMU")]
    #[case::drive_dev(
        "-drive file=/dev/sda,format=raw",
        "an absolute path can reach any file"
    )]
    #[case::drive_second_file(
        "-drive file=ok.img,file=/etc/shadow",
        "an absolute path can reach any file"
    )]
    #[case::drive_dotted_key(
        "-drive file=ok.img,file.filename=/etc/shadow",
        "`file.filename=` is not allowed in -drive"
    )]
    #[case::drive_if(
        "-drive file=fw.img,if=pflash",
        "`pflash` is not allowed in -drive if="
    )]
    #[case::machine_backend(
        "-machine pc,memory-backend=m0",
        "`memory-backend=` backs the guest's memory"
    )]
    #[case::machine_type("-machine xenfv", "machine `xenfv` is not allowed")]
    #[case::machine_two_types("-machine pc,type=xenfv", "-machine names its type more than once")]
    #[case::accel_xen("-accel xen", "`xen` is not allowed in -accel")]
    #[case::display_gtk("-display gtk", "the grader runs VMs without a screen")]
    #[case::display_vnc("-display vnc=:0", "the grader runs VMs without a screen")]
    #[case::vga("-vga qxl-vga", "`qxl-vga` is not allowed in -vga")]
    #[case::boot_splash("-boot menu=on,splash=/etc/shadow", "`splash=` shows a picture")]
    #[case::keymap_path("-k ../../etc/shadow", "-k takes the name of one of QEMU's keymaps")]
    fn refuses_values_with_their_reason(#[case] option: &str, #[case] reason: &str) {
        let text = format!("qemu-system-x86_64 -m 512 {option} -nographic");
        let refused = check(&parse(&text));
        assert_eq!(refused.len(), 1, "{refused:?}");
        // The option as QEMU receives it: the shell's quotes are gone.
        assert_eq!(refused[0].option, option.replace('\'', ""));
        assert!(
            refused[0].reason.starts_with(reason),
            "reason {:?} should start with {reason:?}",
            refused[0].reason
        );
    }

    #[rstest]
    #[case("qemu-system-i386 -m 512")]
    #[case("/tmp/qemu-system-x86_64 -m 512")]
    #[case("./qemu-system-x86_64 -m 512")]
    fn refuses_any_other_program(#[case] text: &str) {
        let refused = check(&parse(text));
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert_eq!(refused[0].option, parse(text).program);
        assert_eq!(
            refused[0].reason,
            "only qemu-system-x86_64 may be started, by that name alone"
        );
    }

    #[test]
    fn reports_every_refused_option_in_order() {
        assert_eq!(
            refusals("qemu-system-x86_64 -monitor stdio -m 512 -hda /etc/shadow -S"),
            [
                "-monitor stdio: -monitor gives a QEMU monitor of your own: the grader wires the monitor itself",
                "-hda /etc/shadow: an absolute path can reach any file of the grading machine: name the image relative to your work dir",
                "-S: not allowed in a submission: -S",
            ]
        );
    }

    #[rstest]
    #[case("vm2.qcow2", None)]
    #[case("images/vm 1.qcow2", None)]
    #[case("./a.iso", None)]
    #[case("a~b.img", None)]
    #[case("", Some("names no file"))]
    #[case("/etc/shadow", Some("an absolute path"))]
    #[case("/dev/sda", Some("an absolute path"))]
    #[case("~/qemu/a.iso", Some("`~` is a home dir"))]
    #[case("../other/vm1.qcow2", Some("`..` leads out"))]
    #[case("images/../../x.img", Some("`..` leads out"))]
    #[case("nbd:localhost:10809", Some("a `:` makes QEMU"))]
    #[case("json:{}", Some("a `:` makes QEMU"))]
    #[case("fat:rw:dir", Some("a `:` makes QEMU"))]
    #[case("file:x.img", Some("a `:` makes QEMU"))]
    fn judges_host_paths(#[case] path: &str, #[case] problem: Option<&str>) {
        match (host_path(path), problem) {
            (Ok(()), None) => {}
            (Err(reason), Some(problem)) => assert!(reason.starts_with(problem), "{reason}"),
            (verdict, _) => panic!("{path:?}: {verdict:?}, expected {problem:?}"),
        }
    }

    #[test]
    fn lists_image_paths_in_order() {
        let line = parse(
            "qemu-system-x86_64 -hda vm2.qcow2 -m 512 --cdrom a.iso -drive if=ide,media=cdrom \
             -drive file=b,,c.img,format=raw,file=d.img -hdd /etc/shadow",
        );
        assert_eq!(
            image_paths(&line),
            ["vm2.qcow2", "a.iso", "b,c.img", "d.img", "/etc/shadow"]
        );
    }

    #[test]
    fn a_refusal_displays_option_then_reason() {
        let refusal = Refusal {
            option: "-monitor stdio".into(),
            reason: "why".into(),
        };
        assert_eq!(refusal.to_string(), "-monitor stdio: why");
    }

    /// The runtime cases: real files in a temp dir, real qemu-img.
    mod files {
        use super::*;
        use tempfile::TempDir;

        fn deadline() -> Deadline {
            Deadline::after(Duration::from_secs(20))
        }

        /// Runs `qemu-img ARGS` in `dir`, as a student's cow.sh would.
        async fn qemu_img(dir: &Path, args: &str) {
            let output = run_shell(
                &format!("qemu-img {args}"),
                dir,
                &Enclosure::host(),
                deadline(),
            )
            .await
            .expect("qemu-img starts");
            assert_eq!(output.exit, ShellExit::Exited(0), "{}", output.text());
        }

        async fn confine(dir: &TempDir, provided: &[PathBuf], text: &str) -> Vec<String> {
            confine_images(dir.path(), provided, &parse(text), deadline())
                .await
                .expect("the images can be judged")
                .iter()
                .map(ToString::to_string)
                .collect()
        }

        fn temp_dir() -> TempDir {
            TempDir::new().expect("a temp dir")
        }

        /// A one-line refusal list whose only entry contains `part`.
        fn assert_refused(refusals: &[String], part: &str) {
            assert_eq!(refusals.len(), 1, "{refusals:?}");
            assert!(
                refusals[0].contains(part),
                "{:?} lacks {part:?}",
                refusals[0]
            );
        }

        #[tokio::test]
        async fn accepts_the_handouts_copy_on_write_clone() {
            let dir = temp_dir();
            qemu_img(dir.path(), "create -f qcow2 vm1.qcow2 1M").await;
            qemu_img(
                dir.path(),
                "create -f qcow2 -F qcow2 -b vm1.qcow2 vm2.qcow2",
            )
            .await;
            std::fs::write(dir.path().join("a.iso"), b"not really").expect("writes");
            let line =
                "qemu-system-x86_64 -hda vm2.qcow2 -cdrom a.iso -drive file=vm1.qcow2,format=qcow2";
            assert_eq!(confine(&dir, &[], line).await, Vec::<String>::new());
        }

        #[tokio::test]
        async fn follows_relative_backing_files_from_the_images_own_dir() {
            let dir = temp_dir();
            std::fs::create_dir(dir.path().join("clones")).expect("mkdir");
            qemu_img(dir.path(), "create -f qcow2 base.qcow2 1M").await;
            qemu_img(
                dir.path(),
                "create -f qcow2 -F qcow2 -b ../base.qcow2 clones/vm2.qcow2",
            )
            .await;
            let line = "qemu-system-x86_64 -hda clones/vm2.qcow2";
            assert_eq!(confine(&dir, &[], line).await, Vec::<String>::new());
            // The same chain with its base gone: the backing name was judged
            // relative to clones/, not to the work dir.
            std::fs::remove_file(dir.path().join("base.qcow2")).expect("rm");
            std::fs::write(dir.path().join("clones/base.qcow2"), b"decoy").expect("writes");
            assert_refused(
                &confine(&dir, &[], line).await,
                "`clones/../base.qcow2` does not exist",
            );
        }

        /// What a student's cow.sh can do: a backing file outside the work dir.
        #[tokio::test]
        async fn refuses_a_backing_file_outside_the_work_dir() {
            let dir = temp_dir();
            // qemu-img 7.2 needs a size with -u (no backing file to take it from).
            qemu_img(
                dir.path(),
                "create -f qcow2 -F raw -b /etc/passwd -u vm2.qcow2 1M",
            )
            .await;
            let refused = confine(&dir, &[], "qemu-system-x86_64 -hda vm2.qcow2").await;
            assert_eq!(
                refused,
                ["-hda vm2.qcow2: `/etc/passwd` leads to /etc/passwd, outside your work dir"]
            );
        }

        #[tokio::test]
        async fn refuses_a_symlink_out_of_the_work_dir() {
            let dir = temp_dir();
            std::os::unix::fs::symlink("/etc/shadow", dir.path().join("disk.img")).expect("ln -s");
            let refused = confine(
                &dir,
                &[],
                "qemu-system-x86_64 -drive file=disk.img,format=raw",
            )
            .await;
            assert_refused(
                &refused,
                "`disk.img` leads to /etc/shadow, outside your work dir",
            );
        }

        #[tokio::test]
        async fn refuses_a_symlinked_dir_out_of_the_work_dir() {
            let dir = temp_dir();
            let outside = temp_dir();
            qemu_img(outside.path(), "create -f qcow2 vm1.qcow2 1M").await;
            std::os::unix::fs::symlink(outside.path(), dir.path().join("images")).expect("ln -s");
            let refused = confine(&dir, &[], "qemu-system-x86_64 -hda images/vm1.qcow2").await;
            assert_refused(&refused, "outside your work dir");
        }

        #[tokio::test]
        async fn refuses_a_hard_link() {
            let dir = temp_dir();
            let outside = temp_dir();
            std::fs::write(outside.path().join("secret"), b"secret").expect("writes");
            std::fs::hard_link(outside.path().join("secret"), dir.path().join("disk.img"))
                .expect("ln");
            let refused = confine(&dir, &[], "qemu-system-x86_64 -hda disk.img").await;
            assert_refused(&refused, "`disk.img` has other hard links");
        }

        #[tokio::test]
        async fn refuses_a_missing_image_and_a_directory() {
            let dir = temp_dir();
            std::fs::create_dir(dir.path().join("d")).expect("mkdir");
            let refused = confine(&dir, &[], "qemu-system-x86_64 -hda vm2.qcow2 -cdrom d").await;
            assert_eq!(
                refused,
                [
                    "-hda vm2.qcow2: `vm2.qcow2` does not exist in your work dir (or is a link to nothing)",
                    "-cdrom d: `d` is not a regular file",
                ]
            );
        }

        /// Judged by name, never opened: qemu-img would connect to it.
        #[tokio::test]
        async fn refuses_a_protocol_backing_file_without_opening_it() {
            let dir = temp_dir();
            qemu_img(
                dir.path(),
                "create -f qcow2 -F raw -b nbd:127.0.0.1:9 -u vm2.qcow2 1M",
            )
            .await;
            let refused = confine(&dir, &[], "qemu-system-x86_64 -hda vm2.qcow2").await;
            assert_refused(
                &refused,
                "backing file `nbd:127.0.0.1:9`, which names a protocol",
            );
        }

        #[tokio::test]
        async fn refuses_a_backing_format_other_than_qcow2_or_raw() {
            let dir = temp_dir();
            std::fs::write(dir.path().join("example.org"), b"").expect("writes");
            qemu_img(
                dir.path(),
                "create -f qcow2 -F http -b example.org -u vm2.qcow2 1M",
            )
            .await;
            let refused = confine(&dir, &[], "qemu-system-x86_64 -hda vm2.qcow2").await;
            assert_refused(
                &refused,
                "declares its backing file `example.org` a http image",
            );
        }

        #[tokio::test]
        async fn refuses_a_backing_loop() {
            let dir = temp_dir();
            qemu_img(
                dir.path(),
                "create -f qcow2 -F qcow2 -b b.qcow2 -u a.qcow2 1M",
            )
            .await;
            qemu_img(
                dir.path(),
                "create -f qcow2 -F qcow2 -b a.qcow2 -u b.qcow2 1M",
            )
            .await;
            let refused = confine(&dir, &[], "qemu-system-x86_64 -hda a.qcow2").await;
            assert_refused(&refused, "the backing chain of `a.qcow2` loops");
        }

        #[tokio::test]
        async fn refuses_other_formats_and_external_data_files() {
            let dir = temp_dir();
            qemu_img(dir.path(), "create -f vmdk x.vmdk 1M").await;
            qemu_img(
                dir.path(),
                "create -f qcow2 -o data_file=data.raw d.qcow2 1M",
            )
            .await;
            let refused = confine(&dir, &[], "qemu-system-x86_64 -hda x.vmdk -hdb d.qcow2").await;
            assert_eq!(
                refused,
                [
                    "-hda x.vmdk: `x.vmdk` is a vmdk image: only qcow2 and raw images are allowed",
                    "-hdb d.qcow2: `d.qcow2` keeps its data in the external file `data.raw`: keep the data inside the qcow2 image",
                ]
            );
        }

        /// With the format declared raw, QEMU never reads the qcow2 header,
        /// so the backing file it names does not matter.
        #[tokio::test]
        async fn a_declared_raw_format_opens_no_backing_file() {
            let dir = temp_dir();
            qemu_img(
                dir.path(),
                "create -f qcow2 -F raw -b /etc/passwd -u vm2.qcow2 1M",
            )
            .await;
            let raw = "qemu-system-x86_64 -drive file=vm2.qcow2,format=raw";
            assert_eq!(confine(&dir, &[], raw).await, Vec::<String>::new());
            let probed = "qemu-system-x86_64 -drive file=vm2.qcow2";
            assert_refused(&confine(&dir, &[], probed).await, "outside your work dir");
        }

        #[tokio::test]
        async fn accepts_a_file_the_grader_provided() {
            let dir = temp_dir();
            let cache = temp_dir();
            let iso = cache.path().join("guest.iso");
            std::fs::write(&iso, b"iso").expect("writes");
            let name = "alpine-standard-3.20.0-x86_64.iso";
            std::os::unix::fs::symlink(&iso, dir.path().join(name)).expect("ln -s");
            let line = format!("qemu-system-x86_64 -cdrom {name}");
            assert_refused(&confine(&dir, &[], &line).await, "outside your work dir");
            let provided = [iso.canonicalize().expect("canonical")];
            assert_eq!(confine(&dir, &provided, &line).await, Vec::<String>::new());
        }

        /// Running out of time is the harness's failure, not the student's.
        #[tokio::test]
        async fn fails_at_the_deadline() {
            let dir = temp_dir();
            qemu_img(dir.path(), "create -f qcow2 vm1.qcow2 1M").await;
            let line = parse("qemu-system-x86_64 -hda vm1.qcow2");
            let expired = Deadline::after(Duration::ZERO);
            let error = confine_images(dir.path(), &[], &line, expired)
                .await
                .expect_err("no time to run qemu-img");
            assert!(matches!(error, ConfineError::Timeout { .. }), "{error}");
        }

        #[tokio::test]
        async fn refuses_unreadable_images_and_fails_on_a_missing_work_dir() {
            let dir = temp_dir();
            std::fs::write(dir.path().join("bad.qcow2"), b"QFI\xfb garbage").expect("writes");
            let refused = confine(
                &dir,
                &[],
                "qemu-system-x86_64 -drive file=bad.qcow2,format=qcow2",
            )
            .await;
            assert_refused(&refused, "qemu-img cannot read `bad.qcow2` as an image");
            let gone = dir.path().join("gone");
            let error = confine_images(&gone, &[], &parse("qemu-system-x86_64"), deadline())
                .await
                .expect_err("no work dir");
            assert!(matches!(error, ConfineError::WorkDir { .. }), "{error}");
        }
    }
}

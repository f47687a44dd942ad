//! Judging a submission's QEMU command line as text: the program, each
//! option, and inside `key=value,…` values each type and key, against the
//! lists in [`super::table`]. Pure: reads no file, runs nothing.

use std::fmt;
use std::path::{Component, Path};

use super::table::*;
use crate::vm::cmdline::{CommandLine, KeyValue, KeyValues, QemuOption};

#[cfg(test)]
mod tests;

/// Why one option of a submission's command line is not allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The option as written, value included (`-monitor stdio`).
    pub option: String,
    /// One sentence for the student.
    pub reason: String,
}

impl Refusal {
    pub(super) fn new(option: &QemuOption, reason: String) -> Self {
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
pub(super) fn host_path(path: &str) -> Verdict {
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
pub(super) struct Image<'a> {
    pub option: &'a QemuOption,
    pub path: String,
    /// The format the line declares (`-drive format=`), if an allowed one;
    /// otherwise QEMU probes the file, and so do we.
    pub format: Option<String>,
}

pub(super) fn images(line: &CommandLine) -> Vec<Image<'_>> {
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

//! The guest's own configuration: busybox init's inittab and scripts, and the boot loader files.

use super::modules::LIBRARY_PATH;

/// Label of the guest's FAT volume: the disk form carries it, so the guest finds its state disk.
pub const DISK_LABEL: &str = "LABCHECK";
/// Where the state disk is mounted in the guest.
pub const DISK_MOUNT: &str = "/media/disk";
/// Kernel command line of the ISO and direct-boot forms. Each option cuts TCG boot time for a
/// throwaway lab guest, as measured with `printk.time=1` and `initcall_debug` on Debian's
/// generic kernel, before the guest had its own; the guest's configuration
/// (`fixtures/guest/kernel.config`) leaves out the crypto self-tests, the SMP code patching and
/// the allocation zeroing that three more options used to switch off:
/// - `rodata=off`: no read-only kernel data, so no walk of the page tables checking for
///   writable+executable pages (about 0.16 s);
/// - `rcupdate.rcu_expedited=1`: initcalls that wait for an RCU grace period get it at once,
///   which costs nothing with one CPU (about 0.2 s of init);
/// - `noapictimer`: no calibration of the local APIC timer against the PIT, a wait of about
///   0.13 s before the first CPU comes up; the HPET ticks instead;
/// - `mitigations=off`: no retpolines, return thunks or buffer clearing on the way in and out
///   of the kernel; TCG does not speculate, and the guest runs nothing but the lab's own
///   commands as root (about 0.15 s of boot, side by side with the rest of this line);
/// - `no_timer_check`: no check that the IO-APIC timer ticked during a short busy wait. On a
///   loaded host the vCPU is not scheduled for that wait, the check fails and the kernel
///   panics ("IO-APIC + timer doesn't work!"): seen once in `verify-labs` at a load of 11 on
///   2 cores under KVM. Cloud images' kernels boot with it for the same reason.
pub const KERNEL_APPEND: &str = "console=ttyS0,115200 quiet loglevel=3 rodata=off \
                                 rcupdate.rcu_expedited=1 noapictimer mitigations=off \
                                 no_timer_check";
/// On the disk form's command line: this boot has a state disk, whose hostname the shell needs.
pub const STATE_DISK_PARAM: &str = "labcheck.statedisk";

/// The guest's `modprobe` (see [`modprobe`]), in users' PATH.
pub const MODPROBE_PATH: &str = "bin/modprobe";
/// Where the kernel looks for modprobe until `rcS` points it at [`MODPROBE_PATH`]. Nothing lives
/// there, so the kernel's own requests during its init (the KDF self-test alone asks for several
/// crypto modules the guest does not have) fail at once instead of each starting a shell, which
/// costs about a tenth of a second under TCG.
pub const KERNEL_DEFAULT_MODPROBE: &str = "sbin/modprobe";

/// Kernel command line of the disk form.
pub fn disk_append() -> String {
    format!("{KERNEL_APPEND} {STATE_DISK_PARAM}")
}

/// The script that starts labcheck's control shell on the second serial port (see [`control`]).
pub const CONTROL_PATH: &str = "etc/init.d/control";

/// busybox init: the boot script, a login shell on the serial port (busybox init makes ttyS0 its
/// controlling terminal, so Ctrl-C and job control work), labcheck's control shell, and a clean
/// shutdown of the disk. The control script runs on `/dev/null`, not on init's console: init
/// resets the terminal settings of the tty it gives a child, and a respawned control script
/// must not turn echo back on under the handout's shell on ttyS0.
pub const INITTAB: &str = "\
::sysinit:/etc/init.d/rcS
ttyS0::respawn:-/bin/sh
null::respawn:/etc/init.d/control
::ctrlaltdel:/sbin/reboot
::shutdown:/etc/init.d/rcK
";

/// The boot script. It loads the drivers of the hardware present (`coldplug`, see `modules`),
/// network first. Each forked command costs some 20 to 40 ms this early under TCG (its code is
/// translated for the first time), so what the shell can do itself it does: the hostname is
/// written to `/proc` (`read` takes a last line without its newline too, as `hostname -F`
/// did), and the background job is a subshell of this one, with the module
/// library already read. Disk controllers cost about half a second under TCG (IDE probing), and only the disk
/// form needs a disk before its shell: the hostname lives on its state disk, so a clone of the
/// disk keeps its own name across reboots. The other forms are `localhost` and find their disks
/// in the background while the shell starts.
pub fn rcs() -> String {
    format!(
        r#"#!/bin/sh
mount -a
echo /{MODPROBE_PATH} > /proc/sys/kernel/modprobe
mkdir -p /dev/pts /dev/shm /dev/net
mount -t devpts devpts /dev/pts
echo 1 > /proc/sys/kernel/printk
# Opening it makes the kernel ask modprobe for tun (char-major-10-200).
mknod /dev/net/tun c 10 200
. /{LIBRARY_PATH}
coldplug other pci virtio
ip link set lo up
read -r cmdline < /proc/cmdline
case " $cmdline " in
*" {STATE_DISK_PARAM} "*)
    coldplug storage pci virtio scsi
    disk=$(findfs LABEL={DISK_LABEL} 2>/dev/null)
    if [ -n "$disk" ] && load vfat && load nls_cp437 && load nls_utf8 &&
        mount -t vfat "$disk" {DISK_MOUNT}; then
        mkdir -p {DISK_MOUNT}/etc
        [ -f {DISK_MOUNT}/etc/hostname ] || echo localhost > {DISK_MOUNT}/etc/hostname
        ln -sf {DISK_MOUNT}/etc/hostname /etc/hostname
    fi
    ;;
*)
    coldplug storage pci virtio scsi &
    # Niced, so that the shell starts first on the single CPU.
    renice -n 19 -p $! > /dev/null
    ;;
esac
read -r name < /etc/hostname; [ -n "$name" ] && echo "$name" > /proc/sys/kernel/hostname
"#
    )
}

/// labcheck's control shell: a root login shell on ttyS1, apart from the handout's shell on
/// ttyS0, for observations a student's aliases, functions or busy console must not touch.
/// Only a VM that labcheck gave a second serial port has one; without it the script sleeps,
/// since a script that exits would have busybox init respawn it in a tight loop. init started
/// it in a new session without a terminal, so opening ttyS1 makes that the shell's controlling
/// terminal (Ctrl-C reaches its commands). The kernel's console is ttyS0 only, so no kernel
/// message lands on ttyS1. The port is looked up with the shell's own `read`: this runs while
/// the handout's shell starts, and a `grep` would fork beside it.
pub fn control() -> String {
    format!(
        r#"#!/bin/sh
while read -r line; do
    case "$line" in
    "{CONTROL_UART}"*) exec /bin/sh -l <>/dev/ttyS1 >&0 2>&0 ;;
    esac
done < /proc/tty/driver/serial
exec sleep 2147483647
"#
    )
}

/// How `/proc/tty/driver/serial` lists a second serial port that QEMU emulates; a port with
/// no device behind it reads `1: uart:unknown`.
const CONTROL_UART: &str = "1: uart:16550A";

/// `modprobe`: the kernel runs `modprobe -q -- NAME` for a module it needs (a filesystem,
/// a link type, a device node); users may run it too. Options are accepted and ignored.
pub fn modprobe() -> String {
    format!(
        r#"#!/bin/sh
. /{LIBRARY_PATH}
status=0
for name; do
    case "$name" in
    -*) ;;
    *) load "$name" || {{ echo "modprobe: no module for $name" >&2; status=1; }} ;;
    esac
done
exit $status
"#
    )
}

/// Where [`rck`] lives; `poweroff`, `reboot` and `halt` run it too (see [`profile`]).
pub const SHUTDOWN_PATH: &str = "etc/init.d/rcK";

/// Runs at shutdown, before busybox init kills everything and powers off or reboots.
pub fn rck() -> String {
    format!("#!/bin/sh\nsync\numount {DISK_MOUNT} 2>/dev/null\nsync\n")
}

/// Login shell setup, with an Alpine-like prompt (`localhost:~# `). busybox sh runs its own
/// applets before searching PATH, and its modprobe applet needs a modules.dep the guest does
/// not have: `modprobe` is made to mean the guest's. `poweroff`, `reboot` and `halt` do what
/// busybox init would do at shutdown (`rcK`: sync and unmount the disk) and then call the
/// kernel at once (`-f`), without the two seconds init sleeps in every shutdown while it
/// waits for processes a lab VM does not have.
pub fn profile() -> String {
    format!(
        r#"export PATH=/bin:/sbin:/usr/bin:/usr/sbin
export HOME=/root
export PS1='\h:\w\$ '
modprobe() {{ /{MODPROBE_PATH} "$@"; }}
poweroff() {{ /{SHUTDOWN_PATH}; command poweroff -f "$@"; }}
reboot() {{ /{SHUTDOWN_PATH}; command reboot -f "$@"; }}
halt() {{ /{SHUTDOWN_PATH}; command halt -f "$@"; }}
cd "$HOME"
"#
    )
}

/// The file systems `rcS` mounts with one `mount -a` (each command costs a process under TCG);
/// `/dev/pts` is mounted on its own, as it exists only once devtmpfs is on `/dev`.
pub const FSTAB: &str = "\
proc /proc proc defaults 0 0
sysfs /sys sysfs defaults 0 0
devtmpfs /dev devtmpfs defaults 0 0
tmpfs /tmp tmpfs defaults 0 0
";

/// isolinux and syslinux read the same configuration: serial console, no prompt, boot at once.
pub fn boot_loader_config(kernel: &str, initrd: &str, append: &str) -> String {
    format!(
        "SERIAL 0 115200\nPROMPT 0\nTIMEOUT 1\nDEFAULT linux\nLABEL linux\n  KERNEL {kernel}\n  INITRD {initrd}\n  APPEND {append}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inittab_gives_a_serial_shell_and_a_shutdown_hook() {
        assert!(INITTAB.contains("ttyS0::respawn:-/bin/sh"));
        assert!(INITTAB.contains(&format!("null::respawn:/{CONTROL_PATH}\n")));
        assert!(INITTAB.contains("::shutdown:/etc/init.d/rcK"));
    }

    #[test]
    fn rcs_mounts_the_labelled_disk_and_takes_its_hostname() {
        let script = rcs();
        assert!(script.contains("findfs LABEL=LABCHECK"), "{script}");
        assert!(
            script.contains("ln -sf /media/disk/etc/hostname /etc/hostname"),
            "{script}"
        );
        assert!(
            script.contains(
                "read -r name < /etc/hostname; [ -n \"$name\" ] && echo \"$name\" > /proc/sys/kernel/hostname"
            ),
            "{script}"
        );
        assert!(script.contains(". /lib/modules/modprobe.sh"), "{script}");
        assert!(
            script.contains("echo /bin/modprobe > /proc/sys/kernel/modprobe"),
            "{script}"
        );
    }

    #[test]
    fn only_the_disk_form_waits_for_its_disk() {
        let script = rcs();
        let waits = script
            .find(&format!("*\" {STATE_DISK_PARAM} \"*)"))
            .expect("a branch for the state disk");
        let mounts = script.find("mount -t vfat").expect("mounts the disk");
        let shell_soon = script
            .find("coldplug storage pci virtio scsi &\n    # Niced")
            .expect("background disk drivers");
        assert!(waits < mounts && mounts < shell_soon, "{script}");
        assert!(disk_append().ends_with(STATE_DISK_PARAM));
        assert!(!KERNEL_APPEND.contains(STATE_DISK_PARAM));
    }

    #[test]
    fn control_shell_starts_only_on_a_present_second_uart_and_never_exits_otherwise() {
        let script = control();
        let check = script
            .find("\"1: uart:16550A\"*) exec /bin/sh -l <>/dev/ttyS1 >&0 2>&0 ;;")
            .expect("checks the UART");
        let reads = script
            .find("done < /proc/tty/driver/serial")
            .expect("reads the UARTs");
        let sleep = script.find("exec sleep ").expect("sleeps otherwise");
        assert!(check < reads && reads < sleep, "{script}");
    }

    #[test]
    fn shutdown_commands_unmount_the_disk_then_skip_inits_sleeps() {
        let profile = profile();
        for command in ["poweroff", "reboot", "halt"] {
            let function =
                format!("{command}() {{ /etc/init.d/rcK; command {command} -f \"$@\"; }}");
            assert!(profile.contains(&function), "{profile}");
        }
        assert!(rck().contains("umount /media/disk"), "{}", rck());
    }

    #[test]
    fn boot_loader_config_boots_without_waiting_on_the_serial_console() {
        let config = boot_loader_config("/vmlinuz", "/initrd.img", KERNEL_APPEND);
        assert!(
            config.contains("TIMEOUT 1\n") && config.contains("PROMPT 0\n"),
            "{config}"
        );
        assert!(
            config.contains(&format!("APPEND {KERNEL_APPEND}\n")),
            "{config}"
        );
    }
}

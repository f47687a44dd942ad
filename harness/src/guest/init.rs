//! The guest's own configuration: busybox init's inittab and scripts, and the boot loader files.

/// Label of the guest's FAT volume: the disk form carries it, so the guest finds its state disk.
pub const DISK_LABEL: &str = "LABCHECK";
/// Where the state disk is mounted in the guest.
pub const DISK_MOUNT: &str = "/media/disk";
/// Kernel command line shared by the three forms. `cryptomgr.notests` skips the crypto
/// self-tests, which take about a second of a TCG boot and prove nothing about the labs.
pub const KERNEL_APPEND: &str = "console=ttyS0,115200 quiet loglevel=3 cryptomgr.notests";
/// The kernel modules to load, one name per line, in dependency order (written at build time).
pub const MODULE_ORDER_FILE: &str = "etc/modules.order";

/// busybox init: the boot script, a login shell on the serial port (busybox init makes ttyS0 its
/// controlling terminal, so Ctrl-C and job control work), and a clean shutdown of the disk.
pub const INITTAB: &str = "\
::sysinit:/etc/init.d/rcS
ttyS0::respawn:-/bin/sh
::ctrlaltdel:/sbin/reboot
::shutdown:/etc/init.d/rcK
";

/// The boot script. The hostname lives on the state disk when there is one, so a clone of the
/// disk keeps its own name across reboots; without a disk the guest is `localhost`.
pub fn rcs() -> String {
    format!(
        r#"#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
echo 1 > /proc/sys/kernel/printk
while read -r module; do
    insmod "/lib/modules/$module.ko"
done < /{MODULE_ORDER_FILE}
ip link set lo up
disk=$(findfs LABEL={DISK_LABEL} 2>/dev/null)
if [ -n "$disk" ] && mount -t vfat "$disk" {DISK_MOUNT}; then
    mkdir -p {DISK_MOUNT}/etc
    [ -f {DISK_MOUNT}/etc/hostname ] || echo localhost > {DISK_MOUNT}/etc/hostname
    ln -sf {DISK_MOUNT}/etc/hostname /etc/hostname
fi
hostname -F /etc/hostname
"#
    )
}

/// Runs at shutdown, before busybox init kills everything and powers off or reboots.
pub fn rck() -> String {
    format!("#!/bin/sh\nsync\numount {DISK_MOUNT} 2>/dev/null\nsync\n")
}

/// Login shell setup, with an Alpine-like prompt (`localhost:~# `).
pub const PROFILE: &str = r#"export PATH=/bin:/sbin:/usr/bin:/usr/sbin
export HOME=/root
export PS1='\h:\w\$ '
cd "$HOME"
"#;

/// The kernel runs `/init` from an initramfs; hand over to busybox init as PID 1.
pub const INIT: &str = "#!/bin/sh\nexec /sbin/init\n";

/// isolinux and syslinux read the same configuration: serial console, no prompt, boot at once.
pub fn boot_loader_config(kernel: &str, initrd: &str) -> String {
    format!(
        "SERIAL 0 115200\nPROMPT 0\nTIMEOUT 1\nDEFAULT linux\nLABEL linux\n  KERNEL {kernel}\n  INITRD {initrd}\n  APPEND {KERNEL_APPEND}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inittab_gives_a_serial_shell_and_a_shutdown_hook() {
        assert!(INITTAB.contains("ttyS0::respawn:-/bin/sh"));
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
        assert!(script.contains("hostname -F /etc/hostname"), "{script}");
        assert!(script.contains("done < /etc/modules.order"), "{script}");
    }

    #[test]
    fn boot_loader_config_boots_without_waiting_on_the_serial_console() {
        let config = boot_loader_config("/vmlinuz", "/initrd.img");
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

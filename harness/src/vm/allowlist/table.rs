//! The allow-list itself, as data: the only program, the options and keys a
//! submission may use, the types and values they may take, the limits on
//! its VMs, and the reason each refused option or key is given. What a
//! submission may do changes here; how a line is read against it is
//! `options`'s.

/// The only emulator a submission may start, by this bare name (a path could
/// name a program of the student's own).
pub(super) const PROGRAM: &str = crate::vm::QEMU;

/// Options whose value is the name of an image file.
pub(super) const IMAGE_OPTIONS: &[&str] = &["-cdrom", "-hda", "-hdb", "-hdc", "-hdd"];

/// Image formats QEMU may open. Others can name further host files of their
/// own (a VMDK descriptor lists extent files anywhere on the host).
pub(super) const IMAGE_FORMATS: &[&str] = &["qcow2", "raw"];

/// Options refused with a reason of their own, the flag first in the sentence.
pub(super) const REFUSED_OPTIONS: &[(&[&str], &str)] = &[
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
pub(super) const REFUSED_KEYS: &[(&[&str], &str)] = &[
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

pub(super) const MACHINE_KEYS: &[&str] = &[
    "type",
    "accel",
    "usb",
    "vmport",
    "graphics",
    "smm",
    "kernel-irqchip",
    "acpi",
];
pub(super) const ACCELERATORS: &[&str] = &["kvm", "tcg"];
pub(super) const MACHINE_ACCELERATORS: &[&str] = &["kvm", "tcg", "kvm:tcg", "tcg:kvm"];
pub(super) const VGA_TYPES: &[&str] = &["std", "cirrus", "vmware", "qxl", "virtio", "none"];
pub(super) const BOOT_KEYS: &[&str] = &[
    "order",
    "once",
    "menu",
    "strict",
    "reboot-timeout",
    "splash-time",
];
pub(super) const SMP_KEYS: &[&str] = &[
    "cpus", "sockets", "dies", "clusters", "cores", "threads", "maxcpus",
];
pub(super) const DRIVE_KEYS: &[&str] = &[
    "file", "format", "driver", "if", "media", "index", "cache", "snapshot", "id", "readonly",
];
pub(super) const DRIVE_INTERFACES: &[&str] = &["ide", "scsi", "virtio", "none", "floppy"];
pub(super) const DRIVE_MEDIA: &[&str] = &["disk", "cdrom"];
pub(super) const DEVICES: &[&str] = &[
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
pub(super) const DEVICE_KEYS: &[&str] = &[
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
pub(super) const NETDEV_TYPES: &[&str] = &["user", "socket", "tap"];
/// `-net` also configures the card (`nic`), or nothing at all (`none`).
pub(super) const NET_TYPES: &[&str] = &["user", "socket", "tap", "nic", "none"];
pub(super) const NIC_TYPES: &[&str] = &["user", "socket", "tap", "none"];
/// Keys `-nic` adds to its network type's own: the card's model and address.
pub(super) const NIC_CARD_KEYS: &[&str] = &["model", "mac"];
pub(super) const USER_KEYS: &[&str] = &[
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
pub(super) const SOCKET_KEYS: &[&str] = &[
    "type",
    "id",
    "name",
    "listen",
    "connect",
    "mcast",
    "udp",
    "localaddr",
];
pub(super) const TAP_KEYS: &[&str] = &[
    "type",
    "id",
    "name",
    "ifname",
    "script",
    "downscript",
    "vhost",
    "queues",
];
pub(super) const NET_NIC_KEYS: &[&str] = &[
    "type", "id", "name", "model", "macaddr", "netdev", "addr", "vectors",
];

/// The most memory a submission's VM may have: the labs need 512 MiB to
/// 1 GiB, and several VMs of several submissions boot at once.
pub(super) const MAX_MEMORY_MIB: u64 = 2048;

/// The most virtual CPUs a submission's VM may have.
pub(super) const MAX_CPUS: u64 = 4;

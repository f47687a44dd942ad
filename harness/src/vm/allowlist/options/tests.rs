use rstest::rstest;

use super::*;

#[rstest]
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

#[rstest]
#[case::two("2", true)]
#[case::keyed("cpus=4", true)]
#[case::too_many("64", false)]
#[case::max_too_many("cpus=1,maxcpus=128", false)]
fn processors_are_bounded(#[case] value: &str, #[case] allowed: bool) {
    assert_eq!(processors(value).is_ok(), allowed, "{value}");
}

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
#[case(
    "qemu-system-x86_64 -netdev socket,id=n0,udp=127.0.0.1:1234,localaddr=127.0.0.1:1235 -net none"
)]
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
#[case::netdev_two_types("-netdev user,type=tap,id=n0", "-netdev names its type more than once")]
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

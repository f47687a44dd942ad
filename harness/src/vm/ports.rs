//! The host ports a handout's command line binds or connects to, and free
//! loopback ports standing in for them.
//!
//! A lab on the host's own network, run beside other labs, must not use the
//! handout's fixed ports: another lab, or anything else on the host, may hold
//! them. The runner picks free loopback ports ([`free_loopback_ports`]) for the
//! ports [`fixed_ports`] finds in all of a lab's VMs, and [`remap_ports`] puts
//! the same substitute into every VM's line, so VM2 still finds VM1.
//!
//! Read here, in `-netdev`, `-nic` and `-net` options:
//! - `socket`: `listen=`, `connect=`, `udp=` and `localaddr=` (`host:port`;
//!   the port-less `localaddr=` of multicast mode is not a port);
//! - `user`: the host side of every `hostfwd=[tcp|udp]:[haddr]:P-[gaddr]:G`.
//!
//! Only ports on loopback or on all addresses are the host's to substitute; an
//! address elsewhere (a multicast group, another host) is left as written (the
//! course's labs have none). A substituted all-addresses bind becomes a
//! loopback one, so nothing listens beyond the host.
//!
//! Everything but [`free_loopback_ports`] is pure.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::{Ipv4Addr, TcpListener};

use super::args::{Substitution, SubstitutionKind};
use super::cmdline::{CommandLine, KeyValues, QemuOption};

/// The options that define network backends.
const NETWORK_OPTIONS: &[&str] = &["-netdev", "-nic", "-net"];

/// What an all-addresses bind becomes.
const LOOPBACK: &str = "127.0.0.1";

const REASON_LOOPBACK_PORT: &str = "labs run in parallel on the host's network: a free loopback \
     port stands in for the handout's fixed one";

/// The host's TCP and UDP ports `line` binds or connects to on loopback or
/// all addresses: sorted, each once.
pub fn fixed_ports(line: &CommandLine) -> Vec<u16> {
    let mut ports = BTreeSet::new();
    for (backend, values) in line.options.iter().filter_map(network_backend) {
        for item in &values.items {
            let value = item.value.as_deref();
            if let Some(found) = value.and_then(|value| host_port(&backend, &item.key, value)) {
                ports.insert(found.port);
            }
        }
    }
    ports.into_iter().collect()
}

/// `line` with every port in `ports` (handout port → substitute) replaced,
/// and the substitutions that declare it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemappedPorts {
    pub line: CommandLine,
    /// One per changed option, in the order of the line.
    pub substitutions: Vec<Substitution>,
}

/// Replaces the ports of `line` that `ports` maps (handout port →
/// substitute); an all-addresses host becomes 127.0.0.1. Options keep their
/// spans in the handout's text.
pub fn remap_ports(line: &CommandLine, ports: &BTreeMap<u16, u16>) -> RemappedPorts {
    let mut substitutions = Vec::new();
    let options = line
        .options
        .iter()
        .map(|option| match remap_option(option, ports) {
            Some(remapped) => {
                substitutions.push(Substitution {
                    kind: SubstitutionKind::LoopbackPort,
                    original: argv_text(option),
                    replacement: argv_text(&remapped),
                    reason: REASON_LOOPBACK_PORT.to_owned(),
                });
                remapped
            }
            None => option.clone(),
        })
        .collect();
    RemappedPorts {
        line: CommandLine {
            program: line.program.clone(),
            options,
        },
        substitutions,
    }
}

/// `n` distinct TCP ports free on 127.0.0.1 at the time of the call: all `n`
/// listeners are held at once, so the kernel cannot hand out one twice.
pub fn free_loopback_ports(n: usize) -> io::Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<io::Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|listener| Ok(listener.local_addr()?.port()))
        .collect()
}

/// The backend type and key=value items of a network option:
/// `-netdev socket,…`, `-nic user,…`, `-net user` (also `type=socket,…`).
fn network_backend(option: &QemuOption) -> Option<(String, KeyValues)> {
    if !NETWORK_OPTIONS.contains(&option.name()) {
        return None;
    }
    let values = KeyValues::parse(option.value.as_deref()?);
    let backend = values.kind().or_else(|| values.get("type"))?.to_owned();
    Some((backend, values))
}

/// The option with its mapped ports replaced; `None` when nothing changes.
fn remap_option(option: &QemuOption, ports: &BTreeMap<u16, u16>) -> Option<QemuOption> {
    let (backend, mut values) = network_backend(option)?;
    let mut changed = false;
    for item in &mut values.items {
        let Some(value) = item.value.as_deref() else {
            continue;
        };
        let Some(field) = host_port(&backend, &item.key, value) else {
            continue;
        };
        if let Some(&substitute) = ports.get(&field.port) {
            item.value = Some(field.with_port(substitute));
            changed = true;
        }
    }
    changed.then(|| QemuOption {
        flag: option.flag.clone(),
        value: Some(values.to_string()),
        span: option.span.clone(),
    })
}

/// A host address and port inside one item's value, with the text around
/// them: `tcp:` ‹host›`:`‹port› `-:22` for a hostfwd.
#[derive(Debug, PartialEq, Eq)]
struct HostPort<'a> {
    before: &'a str,
    host: &'a str,
    port: u16,
    after: &'a str,
}

impl HostPort<'_> {
    /// The value with `port` instead, bound to loopback if it was all addresses.
    fn with_port(&self, port: u16) -> String {
        let host = if is_all_addresses(self.host) {
            LOOPBACK
        } else {
            self.host
        };
        format!("{}{host}:{port}{}", self.before, self.after)
    }
}

/// The host port in item `key=value` of a `backend` network option, if it
/// names one on loopback or all addresses.
fn host_port<'a>(backend: &str, key: &str, value: &'a str) -> Option<HostPort<'a>> {
    let found = match (backend, key) {
        ("socket", "listen" | "connect" | "udp" | "localaddr") => split_host_port(value, "", ""),
        ("user", "hostfwd") => hostfwd_host_side(value),
        _ => None,
    }?;
    (is_all_addresses(found.host) || is_loopback(found.host)).then_some(found)
}

/// `host:port`, split where QEMU splits it: at the first colon.
fn split_host_port<'a>(text: &'a str, before: &'a str, after: &'a str) -> Option<HostPort<'a>> {
    let (host, port) = text.split_once(':')?;
    Some(HostPort {
        before,
        host,
        port: port.parse().ok()?,
        after,
    })
}

/// The host side of `proto:[haddr]:hport-[gaddr]:gport` (`proto` may be
/// empty, meaning tcp); the guest side is the guest's, not the host's.
fn hostfwd_host_side(value: &str) -> Option<HostPort<'_>> {
    let (protocol, rest) = value.split_once(':')?;
    let (host_side, _guest_side) = rest.split_once('-')?;
    let before = &value[..=protocol.len()];
    let after = &rest[host_side.len()..];
    split_host_port(host_side, before, after)
}

/// An empty host or 0.0.0.0: QEMU binds every address.
fn is_all_addresses(host: &str) -> bool {
    host.is_empty() || host == "0.0.0.0"
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

fn argv_text(option: &QemuOption) -> String {
    option.to_argv().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn line(options: &str) -> CommandLine {
        CommandLine::parse(&format!("qemu-system-x86_64 {options}")).expect("test line parses")
    }

    #[rstest]
    #[case::netdev_listen_all("-netdev socket,id=n,listen=:1234", &[1234])]
    #[case::netdev_listen_loopback("-netdev socket,id=n,listen=127.0.0.1:1234", &[1234])]
    #[case::netdev_listen_zeros("-netdev socket,id=n,listen=0.0.0.0:1234", &[1234])]
    #[case::netdev_connect("-netdev socket,id=n,connect=127.0.0.1:1234", &[1234])]
    #[case::netdev_connect_localhost("-netdev socket,id=n,connect=localhost:1234", &[1234])]
    #[case::netdev_type_key("-netdev type=socket,id=n,listen=:1234", &[1234])]
    #[case::udp_unicast(
        "-netdev socket,id=n,udp=127.0.0.1:5000,localaddr=127.0.0.1:5001",
        &[5000, 5001]
    )]
    #[case::nic_socket("-nic socket,listen=:1234", &[1234])]
    #[case::net_socket("-net socket,connect=127.0.0.1:1234", &[1234])]
    #[case::netdev_hostfwd("-netdev user,id=n,hostfwd=tcp::2222-:22", &[2222])]
    #[case::nic_hostfwd_with_addresses(
        "-nic user,hostfwd=tcp:127.0.0.1:2222-10.0.2.15:22",
        &[2222]
    )]
    #[case::net_hostfwd_udp_and_empty_protocol(
        "-net user,hostfwd=udp::5353-:53,hostfwd=::8080-:80",
        &[5353, 8080]
    )]
    #[case::sorted_and_once(
        "-netdev socket,id=a,listen=:2000 -netdev socket,id=b,connect=127.0.0.1:1000 \
         -netdev socket,id=c,connect=127.0.0.1:2000",
        &[1000, 2000]
    )]
    #[case::not_the_guest_port("-nic user,hostfwd=tcp::2222-:2223", &[2222])]
    #[case::another_host("-netdev socket,id=n,connect=192.0.2.1:1234", &[])]
    #[case::multicast("-netdev socket,id=n,mcast=230.0.0.1:1234,localaddr=127.0.0.1", &[])]
    #[case::not_a_port("-netdev socket,id=n,listen=:http", &[])]
    #[case::user_without_hostfwd("-net user -net nic,macaddr=52:54:00:12:34:56", &[])]
    #[case::tap("-netdev tap,id=n,ifname=tap0,script=no,downscript=no", &[])]
    #[case::not_a_network_option("-chardev socket,id=c,host=127.0.0.1,port=4444", &[])]
    fn finds_fixed_host_ports(#[case] options: &str, #[case] expected: &[u16]) {
        assert_eq!(fixed_ports(&line(options)), expected);
    }

    /// Each VM's line alone; the runner takes the union over a lab's VMs.
    #[test]
    fn finds_the_same_port_on_both_ends_of_a_socket_link() {
        let vm1 = line("-netdev socket,id=net0,listen=:1234 -device virtio-net-pci,netdev=net0");
        let vm2 =
            line("-netdev socket,id=net0,connect=127.0.0.1:1234 -nic user,hostfwd=tcp::2222-:22");
        assert_eq!(fixed_ports(&vm1), [1234]);
        assert_eq!(fixed_ports(&vm2), [1234, 2222]);
    }

    fn map(pairs: &[(u16, u16)]) -> BTreeMap<u16, u16> {
        pairs.iter().copied().collect()
    }

    #[rstest]
    #[case::listen_all(
        "-netdev socket,id=net0,listen=:1234",
        "-netdev socket,id=net0,listen=127.0.0.1:40001"
    )]
    #[case::listen_zeros(
        "-netdev socket,id=net0,listen=0.0.0.0:1234",
        "-netdev socket,id=net0,listen=127.0.0.1:40001"
    )]
    #[case::connect(
        "-netdev socket,id=net0,connect=127.0.0.1:1234",
        "-netdev socket,id=net0,connect=127.0.0.1:40001"
    )]
    #[case::connect_localhost_keeps_its_name(
        "-net socket,connect=localhost:1234",
        "-net socket,connect=localhost:40001"
    )]
    #[case::hostfwd_all(
        "-netdev user,id=n,hostfwd=tcp::2222-:22",
        "-netdev user,id=n,hostfwd=tcp:127.0.0.1:40002-:22"
    )]
    #[case::hostfwd_with_addresses(
        "-nic user,hostfwd=tcp:127.0.0.1:2222-10.0.2.15:22,model=e1000",
        "-nic user,hostfwd=tcp:127.0.0.1:40002-10.0.2.15:22,model=e1000"
    )]
    #[case::two_hostfwds_one_mapped(
        "-nic user,hostfwd=tcp::2222-:22,hostfwd=udp::5353-:53",
        "-nic user,hostfwd=tcp:127.0.0.1:40002-:22,hostfwd=udp::5353-:53"
    )]
    #[case::udp_unicast(
        "-netdev socket,id=n,udp=127.0.0.1:1234,localaddr=:2222",
        "-netdev socket,id=n,udp=127.0.0.1:40001,localaddr=127.0.0.1:40002"
    )]
    #[case::escaped_comma_survives(
        "-netdev socket,id=a,,b,listen=:1234",
        "-netdev socket,id=a,,b,listen=127.0.0.1:40001"
    )]
    fn remaps_mapped_ports(#[case] options: &str, #[case] expected: &str) {
        let handout = line(options);
        let remapped = remap_ports(&handout, &map(&[(1234, 40001), (2222, 40002)]));
        assert_eq!(remapped.line.to_argv()[1..].join(" "), expected);
        let declared: Vec<_> = remapped
            .substitutions
            .iter()
            .map(|s| (s.kind, s.original.as_str(), s.replacement.as_str()))
            .collect();
        assert_eq!(
            declared,
            [(SubstitutionKind::LoopbackPort, options, expected)]
        );
        assert_eq!(remapped.line.options[0].span, handout.options[0].span);
    }

    #[rstest]
    #[case::port_not_in_map("-netdev socket,id=n,listen=:5555")]
    #[case::another_host("-netdev socket,id=n,connect=192.0.2.1:1234")]
    #[case::guest_port_only("-nic user,hostfwd=tcp::5555-:1234")]
    #[case::not_a_network_option("-chardev socket,id=c,host=127.0.0.1,port=1234")]
    #[case::no_network("-m 512 -nographic")]
    fn leaves_other_lines_alone(#[case] options: &str) {
        let handout = line(options);
        let remapped = remap_ports(&handout, &map(&[(1234, 40001)]));
        assert_eq!(remapped.line, handout);
        assert!(
            remapped.substitutions.is_empty(),
            "{:?}",
            remapped.substitutions
        );
    }

    #[test]
    fn declares_one_substitution_per_changed_option() {
        let handout =
            line("-netdev socket,id=a,listen=:1234 -m 64 -netdev user,id=b,hostfwd=tcp::2222-:22");
        let remapped = remap_ports(&handout, &map(&[(1234, 40001), (2222, 40002)]));
        let originals: Vec<_> = remapped
            .substitutions
            .iter()
            .map(|s| s.original.as_str())
            .collect();
        assert_eq!(
            originals,
            [
                "-netdev socket,id=a,listen=:1234",
                "-netdev user,id=b,hostfwd=tcp::2222-:22"
            ]
        );
        assert_eq!(remapped.line.options[1], handout.options[1]);
    }

    #[test]
    fn free_loopback_ports_are_distinct_and_bindable() {
        let ports = free_loopback_ports(5).expect("five free ports");
        assert_eq!(ports.len(), 5);
        assert_eq!(ports.iter().collect::<BTreeSet<_>>().len(), 5, "{ports:?}");
        assert!(ports.iter().all(|&port| port != 0), "{ports:?}");
        // Closed again: each can be bound (racing only the rest of the host).
        for port in ports {
            TcpListener::bind((Ipv4Addr::LOCALHOST, port))
                .unwrap_or_else(|e| panic!("port {port} not free after the call: {e}"));
        }
    }
}

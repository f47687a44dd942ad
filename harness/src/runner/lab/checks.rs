//! Every rubric and lab check: facts labcheck gathers itself, never what
//! the lab's own commands printed, so a student's lines cannot forge them.
//! On the host: `qemu-img info` of an image, a file's presence, its digest.
//! In the lab's namespace: devices left behind, taps on a bridge. On the
//! VMs' control channels: a VM up, a shared subnet, a nonce crossing the
//! network. From the command lines labcheck launched: a socket link. Each
//! check ends in [`observed`]: what it saw, and what it found wrong.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;

use rand::Rng;

use super::actions::{shell_observation, Performed};
use super::LabRun;
use crate::net::Link;
use crate::process;
use crate::runner::verdict::Observation;
use crate::runner::StepFailure;
use crate::scenario::model::{Check, DigestMode, FieldExpect};
use crate::time::Deadline;
use crate::vm::{CommandLine, KeyValues};

/// How many times a traffic check sends its nonce before it gives up.
const TRAFFIC_ATTEMPTS: usize = 3;

/// Where the receiving end of a traffic check writes what it got.
const NONCE_FILE: &str = "/tmp/.labcheck-nonce";

/// An IPv4 address with its prefix length, as `ip -o -4 addr` prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Interface {
    address: Ipv4Addr,
    prefix: u8,
}

impl Interface {
    fn network(self) -> (u32, u8) {
        let mask = u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0);
        (u32::from(self.address) & mask, self.prefix)
    }
}

impl std::fmt::Display for Interface {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

impl LabRun<'_> {
    /// Makes the observation `check` asks for.
    pub(super) async fn check(
        &mut self,
        check: &Check,
        deadline: Deadline,
    ) -> Result<Performed, StepFailure> {
        match check {
            Check::QemuImgInfo {
                image,
                field,
                expect,
            } => self.qemu_img_info(image, field, expect, deadline).await,
            Check::File { path, exists } => Ok(self.file(path, *exists)),
            Check::NoLinks { kinds } => self.no_links(kinds, deadline).await,
            Check::Digest { path, mode } => self.digest(path, mode).await,
            Check::Running { vms } => self.running(vms, deadline).await,
            Check::Traffic { from, to } => self.traffic(from, to, deadline).await,
            Check::Subnet { vms } => self.subnet(vms, deadline).await,
            Check::SocketLink { listen, connect } => Ok(self.socket_link(listen, connect)),
            Check::BridgedTaps { count } => self.bridged_taps(*count, deadline).await,
        }
    }

    /// `qemu-img-info`: a field of the image's `qemu-img info` is as
    /// expected (or absent).
    async fn qemu_img_info(
        &mut self,
        image: &str,
        field: &str,
        expect: &FieldExpect,
        deadline: Deadline,
    ) -> Result<Performed, StepFailure> {
        let (qemu_img, command) = qemu_img_info(image, &self.work_dir);
        let out = process::run(qemu_img, &self.enclosure, deadline)
            .await
            .map_err(|e| StepFailure::error(format!("cannot run qemu-img: {e}")))?;
        let seen = shell_observation(&command, &out)?.observation;
        if seen.exit != Some(0) {
            return Ok(observed(
                seen.exit,
                vec![seen.output],
                vec![format!("`{command}` failed")],
            ));
        }
        let info: serde_json::Value = serde_json::from_str(&seen.output)
            .map_err(|e| StepFailure::error(format!("qemu-img printed no JSON: {e}")))?;
        let value = info.get(field);
        let shown = match value {
            Some(v) => format!("{field} = {v}"),
            None => format!("{field} is absent"),
        };
        let own = match (expect, value) {
            (FieldExpect::Equals(want), Some(v)) if v == want => vec![],
            (FieldExpect::Equals(want), _) => vec![format!("{field} should be {want}")],
            (FieldExpect::Absent, None) => vec![],
            (FieldExpect::Absent, Some(_)) => vec![format!("{field} should be absent")],
        };
        Ok(observed(seen.exit, vec![shown], own))
    }

    /// `file`: `path`, in the work dir, exists (or does not).
    fn file(&self, path: &str, exists: bool) -> Performed {
        let present = self.work_dir.join(path).exists();
        let shown = format!(
            "{path} {}",
            if present { "exists" } else { "does not exist" }
        );
        let own = if present == exists {
            vec![]
        } else {
            vec![format!(
                "{path} should {}exist",
                if exists { "" } else { "not " }
            )]
        };
        observed(None, vec![shown], own)
    }

    /// `no-links`: no device of these kinds is left in the namespace.
    async fn no_links(
        &mut self,
        kinds: &[String],
        deadline: Deadline,
    ) -> Result<Performed, StepFailure> {
        let wanted: Vec<&str> = kinds.iter().map(String::as_str).collect();
        let links = self.links("`no-links`", &wanted, deadline).await?;
        let shown = links
            .iter()
            .map(|link| format!("{} ({})", link.name, link.kind))
            .collect::<Vec<_>>();
        let own = if links.is_empty() {
            vec![]
        } else {
            vec![format!("left in the namespace: {}", shown.join(", "))]
        };
        let lines = if shown.is_empty() {
            vec![format!("no {} device", kinds.join(" or "))]
        } else {
            shown
        };
        Ok(observed(None, lines, own))
    }

    /// `digest`: the file's sha256, saved under a key, or the same as the
    /// one saved under a key by an earlier step.
    async fn digest(&mut self, path: &str, mode: &DigestMode) -> Result<Performed, StepFailure> {
        let file = self.work_dir.join(path);
        let digest = tokio::task::spawn_blocking(move || sha256_file(&file))
            .await
            .map_err(|e| StepFailure::error(format!("digest task failed: {e}")))?
            .map_err(|e| StepFailure::error(format!("cannot read {path}: {e}")))?;
        let own = match mode {
            DigestMode::Save(key) => {
                self.digests.insert(key.clone(), digest.clone());
                vec![]
            }
            DigestMode::SameAs(key) => match self.digests.get(key) {
                Some(saved) if *saved == digest => vec![],
                Some(_) => vec![format!("{path} changed since `{key}`")],
                None => vec![format!("no digest saved as `{key}` (its step did not run)")],
            },
        };
        Ok(observed(None, vec![format!("sha256 {digest}")], own))
    }

    /// `running`: each VM is up and its control channel answers.
    pub(super) async fn running(
        &mut self,
        vms: &[String],
        deadline: Deadline,
    ) -> Result<Performed, StepFailure> {
        let mut lines = Vec::new();
        let mut own = Vec::new();
        for vm in vms {
            let answered = match self.vms.get_mut(vm) {
                None => Err("not running".to_string()),
                Some(live) => match live.probe("echo up", deadline).await {
                    Ok(out) if out.output.trim() == "up" => Ok(()),
                    Ok(out) => Err(format!("its control channel said {:?}", out.output)),
                    Err(failure) => Err(failure.message),
                },
            };
            match answered {
                Ok(()) => lines.push(format!("{vm}: running, control channel answers")),
                Err(why) => {
                    lines.push(format!("{vm}: {why}"));
                    own.push(format!("{vm} is not up"));
                }
            }
        }
        Ok(observed(None, lines, own))
    }

    /// `subnet`: one IPv4 network that every VM has an address in.
    pub(super) async fn subnet(
        &mut self,
        vms: &[String],
        deadline: Deadline,
    ) -> Result<Performed, StepFailure> {
        let mut found = BTreeMap::new();
        for vm in vms {
            found.insert(vm.clone(), self.addresses(vm, deadline).await?);
        }
        let mut lines: Vec<String> = found
            .iter()
            .map(|(vm, addresses)| format!("{vm}: {}", listed(addresses)))
            .collect();
        let shared = found.values().next().and_then(|first| {
            first.iter().map(|i| i.network()).find(|network| {
                found
                    .values()
                    .all(|addresses| addresses.iter().any(|i| i.network() == *network))
            })
        });
        let own = match shared {
            Some((network, prefix)) => {
                lines.push(format!("shared: {}/{prefix}", Ipv4Addr::from(network)));
                Vec::new()
            }
            None => vec!["no IPv4 subnet is shared by all of them".to_string()],
        };
        Ok(observed(None, lines, own))
    }

    /// `traffic`: a nonce made now crosses from `from` to `to` over the
    /// lab's network, sent and read back on the control channels.
    pub(super) async fn traffic(
        &mut self,
        from: &str,
        to: &str,
        deadline: Deadline,
    ) -> Result<Performed, StepFailure> {
        let targets = self.addresses(to, deadline).await?;
        if targets.is_empty() {
            return Ok(observed(
                None,
                vec![format!("{to} has no IPv4 address besides loopback")],
                vec![format!("nothing to send to on {to}")],
            ));
        }
        let (nonce, port) = {
            let mut rng = rand::thread_rng();
            (
                format!("{:032x}", rng.gen::<u128>()),
                rng.gen_range(20000..60000u16),
            )
        };
        let listen = format!(
            "rm -f {NONCE_FILE}; (timeout 60 busybox nc -l -p {port} > {NONCE_FILE} 2>/dev/null &)"
        );
        self.control(to, &listen, deadline).await?;
        self.await_listener(to, port, deadline).await?;
        // A link that just came up (an e1000 negotiating, a bridge port
        // learning) can lose the first tries: a few, a second apart.
        for _ in 0..TRAFFIC_ATTEMPTS {
            for target in &targets {
                let send = format!(
                    "echo {nonce} | timeout 5 busybox nc -w 2 {} {port}",
                    target.address
                );
                self.control(from, &send, deadline).await?;
                if self.nonce_arrived(to, &nonce, deadline).await? {
                    return Ok(observed(
                        None,
                        vec![format!(
                            "a nonce sent from {from} to {to} at {} arrived",
                            target.address
                        )],
                        Vec::new(),
                    ));
                }
            }
        }
        Ok(observed(
            None,
            vec![format!(
                "a nonce sent from {from} to {to} at {} did not arrive",
                targets
                    .iter()
                    .map(|t| t.address.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )],
            vec![format!("no traffic from {from} reached {to}")],
        ))
    }

    /// `socket-link`: as launched, `listen`'s NIC is on a socket netdev
    /// listening on a port that `connect`'s socket netdev connects to.
    pub(super) fn socket_link(&self, listen: &str, connect: &str) -> Performed {
        let server = self
            .launched
            .get(listen)
            .map(|line| socket_ends(line, "listen"));
        let client = self
            .launched
            .get(connect)
            .map(|line| socket_ends(line, "connect"));
        let describe = |vm: &str, ends: &Option<Vec<(String, u16)>>, role: &str| match ends {
            None => format!("{vm}: not launched"),
            Some(ends) if ends.is_empty() => format!("{vm}: no socket netdev that {role}s"),
            Some(ends) => format!(
                "{vm}: {}",
                ends.iter()
                    .map(|(text, _)| text.clone())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        };
        let lines = vec![
            describe(listen, &server, "listen"),
            describe(connect, &client, "connect"),
        ];
        let joined = match (&server, &client) {
            (Some(server), Some(client)) => server
                .iter()
                .any(|(_, port)| client.iter().any(|(_, p)| p == port)),
            _ => false,
        };
        let own = if joined {
            Vec::new()
        } else {
            vec![format!(
                "no socket link from {connect} to a port {listen} listens on"
            )]
        };
        observed(None, lines, own)
    }

    /// `bridged-taps`: some bridge in the namespace has `count` taps or more.
    pub(super) async fn bridged_taps(
        &mut self,
        count: u32,
        deadline: Deadline,
    ) -> Result<Performed, StepFailure> {
        let links = self
            .links("`bridged-taps`", &["tun", "bridge"], deadline)
            .await?;
        let mut lines = Vec::new();
        let mut best = 0;
        for bridge in links.iter().filter(|link| link.kind == "bridge") {
            let ports: Vec<&str> = links
                .iter()
                .filter(|link| link.kind == "tun" && link.master.as_ref() == Some(&bridge.name))
                .map(|link| link.name.as_str())
                .collect();
            best = best.max(ports.len());
            lines.push(format!("bridge {}: taps {}", bridge.name, ports.join(", ")));
        }
        let loose: Vec<&str> = links
            .iter()
            .filter(|link| link.kind == "tun" && link.master.is_none())
            .map(|link| link.name.as_str())
            .collect();
        if !loose.is_empty() {
            lines.push(format!("taps on no bridge: {}", loose.join(", ")));
        }
        if lines.is_empty() {
            lines.push("no tap device and no bridge".to_string());
        }
        let own = if best >= count as usize {
            Vec::new()
        } else {
            vec![format!("no bridge has {count} taps")]
        };
        Ok(observed(None, lines, own))
    }

    /// The devices of `kinds` in the lab's namespace, for the check `what`.
    async fn links(
        &mut self,
        what: &str,
        kinds: &[&str],
        deadline: Deadline,
    ) -> Result<Vec<Link>, StepFailure> {
        self.namespace_for(what)?
            .links(kinds, deadline)
            .await
            .map_err(|e| StepFailure::error(e.to_string()))
    }

    /// The VM's IPv4 addresses besides loopback, as its kernel reports them.
    async fn addresses(
        &mut self,
        vm: &str,
        deadline: Deadline,
    ) -> Result<Vec<Interface>, StepFailure> {
        let text = self.control(vm, "ip -o -4 addr show", deadline).await?;
        Ok(parse_addresses(&text))
    }

    /// Whether the listener on `to` wrote the nonce, looking for a moment:
    /// the sender's `nc` may end before the listener's has written it.
    async fn nonce_arrived(
        &mut self,
        to: &str,
        nonce: &str,
        deadline: Deadline,
    ) -> Result<bool, StepFailure> {
        for _ in 0..5 {
            let got = self
                .control(to, &format!("cat {NONCE_FILE}"), deadline)
                .await?;
            if got.contains(nonce) {
                return Ok(true);
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        Ok(false)
    }

    async fn await_listener(
        &mut self,
        vm: &str,
        port: u16,
        deadline: Deadline,
    ) -> Result<(), StepFailure> {
        let command = format!("netstat -ltn | grep -c ':{port} '");
        loop {
            let count = self.control(vm, &command, deadline).await?;
            if count.trim() != "0" {
                return Ok(());
            }
            if deadline.remaining().is_zero() {
                return Err(StepFailure::error(format!(
                    "labcheck's own listener on {vm} did not start"
                )));
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }

    /// Runs `command` on `vm`'s control channel; its output.
    async fn control(
        &mut self,
        vm: &str,
        command: &str,
        deadline: Deadline,
    ) -> Result<String, StepFailure> {
        let live = self.live(vm)?;
        Ok(live.probe(command, deadline).await?.output)
    }
}

/// What a check saw, a line per fact, and what it found wrong, as the
/// step's result. `exit` is that of the tool the check ran, if it ran one.
fn observed(exit: Option<i32>, lines: Vec<String>, own_mismatches: Vec<String>) -> Performed {
    Performed {
        observation: Observation {
            exit,
            output: lines.join("\n"),
        },
        own_mismatches,
    }
}

/// `qemu-img info --output=json IMAGE` in `work_dir`, as an argv (the
/// image's name is one argument, never a shell word), and as messages show
/// it (quoted as a shell would need it).
fn qemu_img_info(image: &str, work_dir: &Path) -> (tokio::process::Command, String) {
    let mut qemu_img = tokio::process::Command::new("qemu-img");
    qemu_img
        .args(["info", "--output=json", image])
        .current_dir(work_dir);
    let shown = format!(
        "qemu-img info --output=json {}",
        shlex::try_quote(image).unwrap_or_default()
    );
    (qemu_img, shown)
}

fn sha256_file(path: &Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}

fn listed(addresses: &[Interface]) -> String {
    if addresses.is_empty() {
        return "no IPv4 address".to_string();
    }
    addresses
        .iter()
        .map(Interface::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `inet A/N` of each line of `ip -o -4 addr show`, loopback left out.
fn parse_addresses(text: &str) -> Vec<Interface> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            words.find(|word| *word == "inet")?;
            let (address, prefix) = words.next()?.split_once('/')?;
            let interface = Interface {
                address: address.parse().ok()?,
                prefix: prefix.parse().ok().filter(|p| *p <= 32)?,
            };
            (!interface.address.is_loopback()).then_some(interface)
        })
        .collect()
}

/// The socket netdevs of `line` with `key` (`listen` or `connect`), as
/// written, with their port; `-netdev socket,…` and `-net socket,…` alike.
fn socket_ends(line: &CommandLine, key: &str) -> Vec<(String, u16)> {
    ["-netdev", "-net"]
        .into_iter()
        .flat_map(|flag| line.all(flag).map(move |option| (flag, option)))
        .filter_map(|(flag, option)| {
            let value = option.value.as_deref()?;
            let pairs = KeyValues::parse(value);
            if pairs.kind() != Some("socket") {
                return None;
            }
            let port = pairs.get(key)?.rsplit_once(':')?.1.parse().ok()?;
            Some((format!("{flag} {value}"), port))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const IP_ADDR: &str = "\
1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever
2: eth0    inet 10.0.0.1/24 scope global eth0\\       valid_lft forever preferred_lft forever
";

    #[test]
    fn addresses_leave_loopback_out() {
        assert_eq!(
            parse_addresses(IP_ADDR),
            vec![Interface {
                address: Ipv4Addr::new(10, 0, 0, 1),
                prefix: 24
            }]
        );
    }

    #[rstest]
    #[case("10.0.0.1/24", "10.0.0.2/24", true)]
    #[case("10.0.0.1/24", "10.0.1.2/24", false)]
    #[case("10.0.0.1/16", "10.0.1.2/16", true)]
    #[case("10.0.0.1/24", "10.0.0.2/25", false)]
    #[case("10.0.0.1/0", "192.168.0.1/0", true)]
    fn networks(#[case] a: &str, #[case] b: &str, #[case] shared: bool) {
        let parse = |text: &str| parse_addresses(&format!("2: eth0 inet {text} scope global"))[0];
        assert_eq!(parse(a).network() == parse(b).network(), shared);
    }

    #[rstest]
    #[case("vm2.qcow2", "qemu-img info --output=json vm2.qcow2")]
    #[case("my disk.qcow2", "qemu-img info --output=json 'my disk.qcow2'")]
    #[case("a;rm -rf x", "qemu-img info --output=json 'a;rm -rf x'")]
    fn qemu_img_gets_the_image_as_one_argument(#[case] image: &str, #[case] shown: &str) {
        let (qemu_img, command) = qemu_img_info(image, Path::new("/labs/work"));
        let argv = qemu_img.as_std();
        assert_eq!(argv.get_program(), "qemu-img");
        assert_eq!(
            argv.get_args().collect::<Vec<_>>(),
            ["info", "--output=json", image]
        );
        assert_eq!(argv.get_current_dir(), Some(Path::new("/labs/work")));
        assert_eq!(command, shown);
    }

    #[rstest]
    #[case("-netdev socket,id=n,listen=:1234", "listen", vec![1234])]
    #[case("-netdev socket,id=n,connect=127.0.0.1:1234", "connect", vec![1234])]
    #[case("-netdev socket,id=n,connect=127.0.0.1:1234", "listen", vec![])]
    #[case("-net socket,listen=:5555", "listen", vec![5555])]
    #[case("-netdev user,id=n", "listen", vec![])]
    fn socket_netdevs(#[case] options: &str, #[case] key: &str, #[case] ports: Vec<u16>) {
        let line = CommandLine::parse(&format!("qemu-system-x86_64 {options}")).unwrap();
        let found: Vec<u16> = socket_ends(&line, key)
            .into_iter()
            .map(|(_, p)| p)
            .collect();
        assert_eq!(found, ports);
    }
}

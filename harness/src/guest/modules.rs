//! Which kernel modules the guest carries, and how it loads them.
//!
//! The guest has no `modules.dep` and no modprobe data, so everything is computed at build
//! time from each module's own `.modinfo` section: `depends=a,b` gives the load order
//! (dependencies first), `alias=…` the devices and requests a module answers to. A wanted
//! module with no `.ko` is built into the kernel and needs no loading.
//!
//! The guest loads modules the way udev and the kernel would, from a shell library written here
//! ([`modprobe_library`]): at boot, for each device's `modalias`, the driver that claims it;
//! later, whatever the kernel asks for by name or alias (`fs-vfat`, `rtnl-link-bridge`,
//! `char-major-10-200`) through `/bin/modprobe`. So a VM loads only what its hardware and
//! its labs use, not every module at every boot.

use std::collections::{BTreeMap, BTreeSet};

use super::GuestError;

/// The modules the labs need (network cards, disks, CD, FAT, bridge, tap), by module name.
pub const WANTED: &[&str] = &[
    "virtio_net",
    "virtio_pci",
    "virtio_blk",
    "e1000",
    "ata_piix",
    "sd_mod",
    "sr_mod",
    "vfat",
    "nls_cp437",
    "nls_utf8",
    "nls_ascii",
    "bridge",
    "tun",
    "af_packet",
];

/// A module's name from its file name: `nls_cp437.ko` or `virtio-net.ko` gives `nls_cp437` /
/// `virtio_net` (the kernel treats `-` and `_` alike in module names).
pub fn name_from_file(file_name: &str) -> Option<String> {
    file_name
        .strip_suffix(".ko")
        .map(|stem| stem.replace('-', "_"))
}

/// The values of `key` in a module's `.modinfo` text (NUL-separated `key=value` strings).
fn values_in_modinfo<'a>(modinfo: &'a [u8], key: &'a str) -> impl Iterator<Item = String> + 'a {
    modinfo.split(|&b| b == 0).filter_map(move |field| {
        let value = field.strip_prefix(key.as_bytes())?.strip_prefix(b"=")?;
        Some(String::from_utf8_lossy(value).into_owned())
    })
}

/// The `depends=` list of a module's `.modinfo` text.
pub fn depends_in_modinfo(modinfo: &[u8]) -> Vec<String> {
    values_in_modinfo(modinfo, "depends")
        .flat_map(|list| {
            list.split(',')
                .filter(|name| !name.is_empty())
                .map(|name| name.replace('-', "_"))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The `alias=` patterns of a module's `.modinfo` text (`pci:v00008086d0000100Esv*…`, `fs-vfat`).
pub fn aliases_in_modinfo(modinfo: &[u8]) -> Vec<String> {
    values_in_modinfo(modinfo, "alias").collect()
}

/// Where the guest finds [`modprobe_library`].
pub const LIBRARY_PATH: &str = "lib/modules/modprobe.sh";

/// The guest's module loader, a shell library for `rcS` and `/bin/modprobe` to source:
/// `load NAME_OR_ALIAS` loads the module that answers to it, after its dependencies, skipping
/// what is already loaded; `coldplug KIND BUS...` loads the drivers of the devices present. One `case` holds every module's name and aliases, so matching a
/// device costs no process. `modules` are the modules to carry, in load order; `depends` and
/// `aliases` give each one's `.modinfo` lists. Aliases the shell could misread as syntax are
/// left out (none of the wanted modules has one).
pub fn modprobe_library(
    modules: &[String],
    depends: &BTreeMap<String, Vec<String>>,
    aliases: &BTreeMap<String, Vec<String>>,
) -> Result<String, GuestError> {
    let mut cases = String::new();
    for module in modules {
        let chain = load_order(&[module.as_str()], depends)?.join(" ");
        let patterns: Vec<&str> = std::iter::once(module.as_str())
            .chain(
                aliases
                    .get(module)
                    .into_iter()
                    .flatten()
                    .map(String::as_str),
            )
            .filter(|pattern| is_plain_glob(pattern))
            .collect();
        cases.push_str(&format!(
            "    {}) chain=\"{chain}\" ;;\n",
            patterns.join("|")
        ));
    }
    Ok(format!(
        r#"# Written by labcheck from the modules' .modinfo: which module answers to a name or alias.
# Sets $chain to the modules to load for "$1", dependencies first; empty when none does.
chain_for() {{
    case "$1" in
{cases}    *) chain="" ;;
    esac
}}

# Loads the module that answers to "$1", and what it depends on; fails if none does.
load() {{
    chain_for "$1"
    [ -n "$chain" ] || return 1
    for module in $chain; do
        [ -d "/sys/module/$module" ] || insmod "/lib/modules/$module.ko"
    done
}}

# coldplug KIND BUS...: loads the drivers of the BUS devices of KIND, storage (disk controllers
# and disks) or other, one bus after the other: virtio devices appear once virtio_pci drives
# their PCI side, SCSI ones once their controller's driver runs.
coldplug() {{
    kind=$1
    shift
    for bus; do
        for file in /sys/bus/$bus/devices/*/modalias; do
            [ -r "$file" ] && read -r alias < "$file" || continue
            case "$alias" in
            pci:*bc01*|virtio:d00000002v*|scsi:*) [ "$kind" = storage ] ;;
            *) [ "$kind" = other ] ;;
            esac && load "$alias"
        done
    done
}}
"#
    ))
}

/// Whether a module alias can stand unquoted in a shell `case` pattern with its glob meaning.
fn is_plain_glob(pattern: &str) -> bool {
    !pattern.is_empty()
        && pattern
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-:*?.,/+[]!^@%=".contains(c))
}

/// The `.modinfo` section of an ELF64 little-endian module.
pub fn modinfo_section(ko: &[u8]) -> Result<&[u8], GuestError> {
    let bad = |reason: &str| GuestError::Module(reason.to_string());
    if !ko.starts_with(b"\x7fELF\x02\x01") {
        return Err(bad("not an ELF64 little-endian object"));
    }
    let u16_at = |at: usize| {
        ko.get(at..at + 2)
            .map(|b| usize::from(u16::from_le_bytes([b[0], b[1]])))
    };
    let u32_at = |at: usize| {
        ko.get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let u64_at = |at: usize| {
        ko.get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .map(|b| u64::from_le_bytes(b) as usize)
    };
    let truncated = || bad("truncated ELF headers");
    let section_headers = u64_at(0x28).ok_or_else(truncated)?;
    let entry_size = u16_at(0x3a).ok_or_else(truncated)?;
    let count = u16_at(0x3c).ok_or_else(truncated)?;
    let names_index = u16_at(0x3e).ok_or_else(truncated)?;
    let section = |index: usize| -> Option<(usize, usize, usize)> {
        let at = section_headers + index * entry_size;
        Some((u32_at(at)?, u64_at(at + 0x18)?, u64_at(at + 0x20)?))
    };
    let (_, names_offset, _) = section(names_index).ok_or_else(truncated)?;
    for index in 0..count {
        let (name, offset, size) = section(index).ok_or_else(truncated)?;
        let name_bytes = ko.get(names_offset + name..).ok_or_else(truncated)?;
        if name_bytes.starts_with(b".modinfo\0") {
            return ko.get(offset..offset + size).ok_or_else(truncated);
        }
    }
    Err(bad("no .modinfo section"))
}

/// The load order for `wanted`: every module after its dependencies, each once. `available`
/// maps module names to their dependencies; wanted modules absent from it are built in.
pub fn load_order(
    wanted: &[&str],
    available: &BTreeMap<String, Vec<String>>,
) -> Result<Vec<String>, GuestError> {
    let mut order = Vec::new();
    let mut done = BTreeSet::new();
    for name in wanted.iter().filter(|n| available.contains_key(**n)) {
        visit(name, available, &mut done, &mut Vec::new(), &mut order)?;
    }
    Ok(order)
}

fn visit(
    name: &str,
    available: &BTreeMap<String, Vec<String>>,
    done: &mut BTreeSet<String>,
    path: &mut Vec<String>,
    order: &mut Vec<String>,
) -> Result<(), GuestError> {
    if done.contains(name) {
        return Ok(());
    }
    if path.iter().any(|p| p == name) {
        return Err(GuestError::Module(format!(
            "dependency cycle: {} -> {name}",
            path.join(" -> ")
        )));
    }
    let depends = available.get(name).ok_or_else(|| {
        GuestError::Module(format!(
            "{} depends on {name}, which the kernel build did not make",
            path.last().map(String::as_str).unwrap_or("?")
        ))
    })?;
    path.push(name.to_string());
    for dependency in depends {
        visit(dependency, available, done, path, order)?;
    }
    path.pop();
    done.insert(name.to_string());
    order.push(name.to_string());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(&str, &str)]) -> BTreeMap<String, Vec<String>> {
        edges
            .iter()
            .map(|(name, deps)| {
                let deps = deps
                    .split(',')
                    .filter(|d| !d.is_empty())
                    .map(str::to_string)
                    .collect();
                (name.to_string(), deps)
            })
            .collect()
    }

    #[test]
    fn parses_depends_from_modinfo_text() {
        let modinfo =
            b"license=GPL\0depends=net_failover,virtio\0retpoline=Y\0intree=Y\0name=virtio_net\0";
        assert_eq!(depends_in_modinfo(modinfo), vec!["net_failover", "virtio"]);
        assert!(depends_in_modinfo(b"license=GPL\0depends=\0name=e1000\0").is_empty());
    }

    #[test]
    fn dependencies_come_first_and_once() {
        let available = graph(&[
            ("virtio_net", "net_failover,virtio,virtio_ring"),
            ("net_failover", "failover"),
            ("failover", ""),
            ("virtio", ""),
            ("virtio_ring", "virtio"),
            ("virtio_blk", "virtio,virtio_ring"),
            ("bridge", "stp,llc"),
            ("stp", "llc"),
            ("llc", ""),
        ]);
        let order = load_order(
            &["virtio_net", "virtio_blk", "bridge", "af_packet"],
            &available,
        )
        .expect("ordered");
        assert_eq!(
            order,
            [
                "failover",
                "net_failover",
                "virtio",
                "virtio_ring",
                "virtio_net",
                "virtio_blk",
                "llc",
                "stp",
                "bridge"
            ]
        );
    }

    #[test]
    fn parses_aliases_from_modinfo_text() {
        let modinfo = b"alias=fs-vfat\0aliasing=no\0depends=fat\0alias=fs-msdos\0";
        assert_eq!(aliases_in_modinfo(modinfo), vec!["fs-vfat", "fs-msdos"]);
    }

    #[test]
    fn the_modprobe_library_maps_names_and_aliases_to_chains() {
        let depends = graph(&[("virtio_net", "virtio"), ("virtio", ""), ("e1000", "")]);
        let aliases: BTreeMap<String, Vec<String>> = [
            ("virtio_net", vec!["virtio:d00000001v*"]),
            (
                "e1000",
                vec!["pci:v00008086d0000100Esv*sd*bc*sc*i*", "bad alias|x"],
            ),
        ]
        .iter()
        .map(|(name, list)| {
            (
                name.to_string(),
                list.iter().map(|a| a.to_string()).collect(),
            )
        })
        .collect();
        let modules = ["virtio", "virtio_net", "e1000"].map(String::from);
        let library = modprobe_library(&modules, &depends, &aliases).expect("library");
        insta::assert_snapshot!(library);
    }

    #[test]
    fn a_missing_dependency_is_named() {
        let err = load_order(&["vfat"], &graph(&[("vfat", "fat")])).expect_err("fat missing");
        assert!(err.to_string().contains("vfat depends on fat"), "{err}");
    }

    #[test]
    fn a_cycle_is_an_error_not_a_hang() {
        let err = load_order(&["a"], &graph(&[("a", "b"), ("b", "a")])).expect_err("cycle");
        assert!(err.to_string().contains("a -> b -> a"), "{err}");
    }

    #[rstest::rstest]
    #[case("nls_cp437.ko", Some("nls_cp437"))]
    #[case("virtio-net.ko", Some("virtio_net"))]
    #[case("modules.order", None)]
    fn names_from_files(#[case] file: &str, #[case] expected: Option<&str>) {
        assert_eq!(name_from_file(file).as_deref(), expected);
    }

    #[test]
    fn reads_modinfo_from_an_elf_section() {
        // A minimal ELF64 with three sections: null, .modinfo and the section-name table.
        let names = b"\0.modinfo\0.shstrtab\0";
        let modinfo = b"depends=fat\0name=vfat\0";
        let mut elf = vec![0u8; 64];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        let modinfo_at = elf.len();
        elf.extend_from_slice(modinfo);
        let names_at = elf.len();
        elf.extend_from_slice(names);
        let headers_at = elf.len();
        elf[0x28..0x30].copy_from_slice(&(headers_at as u64).to_le_bytes());
        elf[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        elf[0x3c..0x3e].copy_from_slice(&3u16.to_le_bytes());
        elf[0x3e..0x40].copy_from_slice(&2u16.to_le_bytes());
        for (name, offset, size) in [
            (0u32, 0usize, 0usize),
            (1, modinfo_at, modinfo.len()),
            (10, names_at, names.len()),
        ] {
            let mut header = vec![0u8; 64];
            header[..4].copy_from_slice(&name.to_le_bytes());
            header[0x18..0x20].copy_from_slice(&(offset as u64).to_le_bytes());
            header[0x20..0x28].copy_from_slice(&(size as u64).to_le_bytes());
            elf.extend_from_slice(&header);
        }
        let section = modinfo_section(&elf).expect("found");
        assert_eq!(depends_in_modinfo(section), vec!["fat"]);
        assert!(
            modinfo_section(&elf[..100]).is_err(),
            "truncated input is an error"
        );
    }
}

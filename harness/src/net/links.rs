//! Reading `ip -j -d link`: which virtual devices a namespace holds.

use serde::Deserialize;

/// A network device, as `ip -j -d link` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub name: String,
    /// `linkinfo.info_kind`: `tun` (tun and tap devices), `bridge`, `veth`…
    pub kind: String,
    /// The bridge (or other master) the device is enslaved to.
    pub master: Option<String>,
}

/// The part of one `ip -j -d link` entry we read.
#[derive(Debug, Deserialize)]
struct RawLink {
    ifname: String,
    master: Option<String>,
    linkinfo: Option<RawLinkInfo>,
}

#[derive(Debug, Deserialize)]
struct RawLinkInfo {
    info_kind: Option<String>,
}

/// The devices in `json` (the output of `ip -j -d link`) whose kind is one of
/// `kinds`. Devices without a kind (`lo`, physical NICs) never match.
pub(super) fn parse_links(json: &str, kinds: &[&str]) -> Result<Vec<Link>, serde_json::Error> {
    let raw: Vec<RawLink> = serde_json::from_str(json)?;
    Ok(raw
        .into_iter()
        .filter_map(|link| {
            let kind = link.linkinfo?.info_kind?;
            kinds.contains(&kind.as_str()).then_some(Link {
                name: link.ifname,
                kind,
                master: link.master,
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    /// `ip -j -d link` (iproute2 6.1) after the tap lab's three commands in a
    /// fresh namespace, trimmed to the fields that matter plus a few that do
    /// not (to show unknown fields are ignored).
    const AFTER_TAP_LAB: &str = r#"[
        {"ifindex":1,"ifname":"lo","flags":["LOOPBACK"],"mtu":65536,"operstate":"DOWN"},
        {"ifindex":2,"ifname":"tap0","flags":["BROADCAST","MULTICAST"],"master":"br0",
         "linkinfo":{"info_kind":"tun","info_data":{"type":"tap","persist":true,"user":"root"},
                     "info_slave_kind":"bridge","info_slave_data":{"state":"disabled"}}},
        {"ifindex":3,"ifname":"br0","flags":["BROADCAST","MULTICAST"],
         "linkinfo":{"info_kind":"bridge","info_data":{"stp_state":0}}},
        {"ifindex":4,"ifname":"v0","linkinfo":{"info_kind":"veth"}},
        {"ifindex":5,"ifname":"slaveonly","linkinfo":{"info_slave_kind":"bridge"}}
    ]"#;

    fn link(name: &str, kind: &str, master: Option<&str>) -> Link {
        Link {
            name: name.into(),
            kind: kind.into(),
            master: master.map(Into::into),
        }
    }

    #[rstest]
    #[case(&["tun", "bridge"], vec![link("tap0", "tun", Some("br0")), link("br0", "bridge", None)])]
    #[case(&["bridge"], vec![link("br0", "bridge", None)])]
    #[case(&["veth"], vec![link("v0", "veth", None)])]
    #[case(&["vxlan"], vec![])]
    #[case(&[], vec![])]
    fn keeps_only_the_kinds_asked_for(#[case] kinds: &[&str], #[case] expected: Vec<Link>) {
        assert_eq!(
            parse_links(AFTER_TAP_LAB, kinds).expect("valid JSON"),
            expected
        );
    }

    #[test]
    fn an_empty_namespace_has_no_links() {
        assert_eq!(parse_links("[]", &["tun"]).expect("valid JSON"), vec![]);
    }

    #[rstest]
    #[case::not_json("Device \"tap0\" does not exist.")]
    #[case::not_a_list(r#"{"ifname":"lo"}"#)]
    #[case::no_name(r#"[{"ifindex":1}]"#)]
    #[case::truncated(r#"[{"ifname":"lo""#)]
    fn bad_output_is_an_error(#[case] json: &str) {
        assert!(parse_links(json, &["tun"]).is_err());
    }
}

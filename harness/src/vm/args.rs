//! QEMU argument vocabulary shared by the pure rewriter and the launchers.
//!
//! The accelerator a VM runs on, the declared substitutions a rewritten line
//! carries, and the small builders that wire QEMU's serial ports and QMP to
//! unix sockets. `rewrite` puts them into a handout's line, `accel` into the
//! probe's own line, `ports` declares its substitutions with them. A leaf: it
//! depends on nothing in `vm` but `cmdline`'s escaping, so none of those
//! modules depends on another for these words.

use crate::events::records::Accelerator;
use std::fmt;
use std::path::Path;

use super::cmdline::escape_commas;

/// The chardev id labcheck gives the serial console it drives.
const SERIAL_CHARDEV_ID: &str = "labcheck-serial";
/// The chardev id of labcheck's control channel (the guest's ttyS1).
pub(super) const CONTROL_CHARDEV_ID: &str = "labcheck-control";

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    Kvm,
    Tcg,
}

impl fmt::Display for Accel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Accelerator::from(*self).fmt(f)
    }
}

/// The report's word for the accelerator a run used.
impl From<Accel> for Accelerator {
    fn from(accel: Accel) -> Self {
        match accel {
            Accel::Kvm => Accelerator::Kvm,
            Accel::Tcg => Accelerator::Tcg,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SubstitutionKind {
    Accelerator,
    StandIn,
    SerialWiring,
    Display,
    Monitor,
    ControlChannel,
    LoopbackPort,
    ImagePath,
}

impl SubstitutionKind {
    /// As report.json spells it (serde's snake_case of the variant).
    pub fn as_str(self) -> &'static str {
        match self {
            SubstitutionKind::Accelerator => "accelerator",
            SubstitutionKind::StandIn => "stand_in",
            SubstitutionKind::SerialWiring => "serial_wiring",
            SubstitutionKind::Display => "display",
            SubstitutionKind::Monitor => "monitor",
            SubstitutionKind::ControlChannel => "control_channel",
            SubstitutionKind::LoopbackPort => "loopback_port",
            SubstitutionKind::ImagePath => "image_path",
        }
    }
}

/// One declared difference between the handout and what runs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Substitution {
    pub kind: SubstitutionKind,
    /// What the handout wrote; empty when labcheck adds something.
    pub original: String,
    pub replacement: String,
    pub reason: String,
}

/// The serial port on a unix socket that QEMU creates and waits on, so that
/// nothing the guest prints is lost before labcheck connects.
pub fn serial_wiring(socket: &Path) -> Vec<String> {
    vec![
        "-chardev".to_owned(),
        format!(
            "socket,id={SERIAL_CHARDEV_ID},path={},server=on,wait=on",
            escape_commas(&path_text(socket))
        ),
        "-serial".to_owned(),
        format!("chardev:{SERIAL_CHARDEV_ID}"),
    ]
}

/// The control channel's serial port on a unix socket. QEMU does not wait
/// for it: the guest prints nothing there that labcheck needs before its
/// first command (see `launch`).
pub fn control_wiring(socket: &Path) -> Vec<String> {
    vec![
        "-chardev".to_owned(),
        format!(
            "socket,id={CONTROL_CHARDEV_ID},path={},server=on,wait=off",
            escape_commas(&path_text(socket))
        ),
        "-serial".to_owned(),
        format!("chardev:{CONTROL_CHARDEV_ID}"),
    ]
}

/// QMP on a unix socket; QEMU does not wait for it.
pub fn qmp_wiring(socket: &Path) -> Vec<String> {
    vec![
        "-qmp".to_owned(),
        format!(
            "unix:{},server=on,wait=off",
            escape_commas(&path_text(socket))
        ),
    ]
}

/// A path as one argument word. Paths labcheck passes must be valid UTF-8
/// (the runner makes them); anything else is rendered lossily.
pub(super) fn path_text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `as_str` and serde's renames spell one table twice: they must agree.
    #[test]
    fn substitution_kinds_are_spelled_as_serde_spells_them() {
        for kind in [
            SubstitutionKind::Accelerator,
            SubstitutionKind::StandIn,
            SubstitutionKind::SerialWiring,
            SubstitutionKind::Display,
            SubstitutionKind::Monitor,
            SubstitutionKind::ControlChannel,
            SubstitutionKind::LoopbackPort,
            SubstitutionKind::ImagePath,
        ] {
            let json = serde_json::to_string(&kind).expect("serializes");
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
    }

    #[test]
    fn escapes_commas_in_socket_paths() {
        let wiring = serial_wiring(Path::new("/run/a,b/serial.sock"));
        assert_eq!(
            wiring[1],
            "socket,id=labcheck-serial,path=/run/a,,b/serial.sock,server=on,wait=on"
        );
    }
}

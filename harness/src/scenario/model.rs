//! The validated lab model: what the runner executes.
//!
//! Produced only by [`super::parse`]; every value here has been checked, so the
//! runner never meets a VM name that does not exist, a regex that does not
//! compile or a step with two actions.

use std::path::PathBuf;
use std::time::Duration;

/// A place in a lab file, for messages that point back into it: 1-based
/// line and column (in characters). For a VM or a step, the start of its
/// table (its `[vm.NAME]` or `[[step]]` header).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

#[derive(Debug, Clone)]
pub struct Lab {
    pub id: String,
    pub title: String,
    /// The handout section this lab verifies, by its heading.
    pub handout: String,
    pub source: PathBuf,
    /// Where the lab's host commands and VMs run.
    pub network: Network,
    pub images: Vec<ImageStandIn>,
    pub vms: Vec<VmSpec>,
    pub steps: Vec<Step>,
    /// Steps that run after `steps`, whatever happened to them.
    pub cleanup: Vec<Step>,
}

/// `network = "host"` (the default) or `network = "namespace"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Network {
    /// Host commands and QEMU run in the host's own network namespace.
    Host,
    /// A private network namespace made for the lab (a user namespace too
    /// when labcheck is not root): its host commands and QEMU run inside,
    /// `sudo` means the namespace's root, and nothing of it outlives the lab.
    Namespace,
}

/// A file the handout expects to exist, provided by the built-in guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageStandIn {
    /// File name in the lab's work dir, as the handout names it.
    pub name: String,
    pub form: GuestForm,
}

/// The forms of the built-in guest (see DESIGN.md, "The guest").
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum GuestForm {
    /// Bootable ISO (isolinux), linked read-only into the work dir. `guest:iso`
    Iso,
    /// Bootable disk as a qcow2 file, copied into the work dir. `guest:disk`
    Disk,
}

#[derive(Debug, Clone)]
pub struct VmSpec {
    pub name: String,
    /// The handout's command line, verbatim (continuations and all).
    pub qemu: String,
    pub location: Location,
}

#[derive(Debug, Clone)]
pub struct Step {
    pub name: String,
    pub location: Location,
    pub action: Action,
    pub expect: Expectation,
    pub erratum: Option<Erratum>,
    /// As written (KVM time); the runner scales it for the accelerator.
    pub timeout: Option<Duration>,
    /// `background = "label"` on a `host` or `run` step: started and left
    /// running; a later `wait = "label"` step waits for it and judges it.
    pub background: Option<String>,
}

#[derive(Debug, Clone)]
pub enum Action {
    /// `host = "…"`: a shell command on the host, run by `sh -c` in the work dir.
    Host { command: String },
    /// `on = "vm"`, `run = "…"`: a command typed into a VM's shell.
    Guest { vm: String, command: String },
    /// `on = "vm"`, `interact = [{ send = "…" }, { expect = "…" }]`.
    Interact {
        vm: String,
        script: Vec<Interaction>,
    },
    /// `boot = "vm"` or `boot = ["vm1", "vm2"]`: start VMs and wait for their shells.
    /// With an `exit` expectation, QEMU is expected to exit instead.
    Boot { vms: Vec<String> },
    /// `reboot = "vm"`: `reboot` typed into the VM; waits for its shell again.
    Reboot { vm: String },
    /// `poweroff = "vm"`: `poweroff` typed into the VM; waits for QEMU to exit.
    Poweroff { vm: String },
    /// `check = { … }`: a host-side fact.
    Check(Check),
    /// `wait = "label"`: waits for the background step `label` to end.
    Wait { label: String },
    /// `probe = "…"`: labcheck's own observation, repeated until the
    /// expectation holds or the deadline passes. With `on`, it runs on the
    /// VM's control channel (its second serial port, never the handout's
    /// shell); without, on the host (in the lab's namespace, if any).
    Probe { vm: Option<String>, command: String },
    /// `not-checked = "reason"`: a claim of the handout that cannot be shown
    /// here. Reported as not checked, never as passed.
    NotChecked { reason: String },
}

#[derive(Debug, Clone)]
pub enum Interaction {
    Send(String),
    Expect(regex::Regex),
}

#[derive(Debug, Clone)]
pub enum Check {
    /// `check = { qemu-img-info = "vm2.qcow2", field = "backing-filename", equals = "vm1.qcow2" }`
    /// `field` is a key of `qemu-img info --output=json`; `equals` takes any
    /// TOML value, compared as JSON; `absent = true` instead checks the key is missing.
    QemuImgInfo {
        image: String,
        field: String,
        expect: FieldExpect,
    },
    /// `check = { file = "vm2.qcow2", exists = true }`
    File { path: String, exists: bool },
    /// `check = { no-links = ["tun", "bridge"] }`: the lab's namespace has
    /// no network device of these kinds (`ip -d link`'s `info_kind`).
    NoLinks { kinds: Vec<String> },
    /// `check = { digest = "vm1.qcow2", save = "before" }` records the sha256;
    /// `check = { digest = "vm1.qcow2", same-as = "before" }` compares with it.
    Digest { path: String, mode: DigestMode },
}

#[derive(Debug, Clone, PartialEq)]
pub enum FieldExpect {
    Equals(serde_json::Value),
    Absent,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DigestMode {
    Save(String),
    SameAs(String),
}

/// What a step must show to pass. All given parts must hold.
#[derive(Debug, Clone, Default)]
pub struct Expectation {
    /// Exit status. Default for commands: 0. For `boot`: none (a shell must come up).
    pub exit: Option<i32>,
    /// Substrings the output must contain.
    pub output: Vec<String>,
    /// A regex the output must match.
    pub matches: Option<regex::Regex>,
    /// Substrings the output must not contain.
    pub absent: Vec<String>,
}

/// A handout command known not to work as printed.
#[derive(Debug, Clone)]
pub struct Erratum {
    pub reason: String,
    /// The command that does work; it runs in place of the handout's for the
    /// rest of the step (same `on`, same expectation). None for claims.
    pub fix: Option<String>,
    /// How the erratum shows itself. A failure that does not match this is a
    /// plain failure, not the known erratum.
    pub observed: Expectation,
}

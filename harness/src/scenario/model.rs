//! The validated lab model: what the runner executes, and (in `grading.rs`)
//! the grading program that a submission turns into a runnable lab.
//!
//! Produced only by [`super::parse`]; every value here has been checked, so the
//! runner never meets a VM name that does not exist, a regex that does not
//! compile or a step with two actions.

mod grading;

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

pub use grading::{GradeAction, GradeStep, Grading, Role, RubricCheck, Slot, SlotKind, Visibility};

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
    /// `[slot]` and `[[grade]]`: how a student's submission is graded on
    /// this lab. `None` for labs that only verify the handout.
    pub grading: Option<Grading>,
    /// What the runner does after a step fails.
    pub after_failure: AfterFailure,
}

/// What the runner does with the steps after one that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AfterFailure {
    /// Verifying a handout: the rest depends on what failed; skip it.
    #[default]
    SkipRest,
    /// Grading: every step runs, except those whose `depends-on` did not
    /// pass, because each rubric check earns its points on its own.
    GoOn,
}

/// `FromStr`, `Serialize` and `Deserialize` for a keyword enum with `ALL`
/// and `as_str`: parsing, the lab file and report.json all spell it from
/// that one table.
macro_rules! keyword_impls {
    ($keyword:ty) => {
        impl FromStr for $keyword {
            type Err = UnknownKeyword;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                from_keyword(&Self::ALL, Self::as_str, text)
            }
        }

        impl serde::Serialize for $keyword {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $keyword {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use keyword_impls;

/// `network = "host"` (the default) or `network = "namespace"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Network {
    /// Host commands and QEMU run in the host's own network namespace.
    #[default]
    Host,
    /// A private network namespace made for the lab (a user namespace too
    /// when labcheck is not root): its host commands and QEMU run inside,
    /// `sudo` means the namespace's root, and nothing of it outlives the lab.
    Namespace,
}

impl Network {
    /// Every network, in the order help lists them.
    pub const ALL: [Network; 2] = [Network::Host, Network::Namespace];

    /// How a lab file and the report write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Network::Host => "host",
            Network::Namespace => "namespace",
        }
    }
}

keyword_impls!(Network);

/// A file the handout expects to exist, provided by the built-in guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageStandIn {
    /// File name in the lab's work dir, as the handout names it.
    pub name: String,
    pub form: GuestForm,
}

/// The forms of the built-in guest (see DESIGN.md, "The guest").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestForm {
    /// Bootable ISO (isolinux), linked read-only into the work dir. `guest:iso`
    Iso,
    /// Bootable disk as a qcow2 file, copied into the work dir. `guest:disk`
    Disk,
    /// The ISO's guest booted directly: `-cdrom NAME` becomes `-kernel`, `-initrd` and
    /// `-append` (a declared substitution), which skips the BIOS boot loader and the kernel's
    /// own decompression, about 5 s of each boot under TCG. For VMs whose boot is not what
    /// the lab shows. The ISO is linked into the work dir all the same. `guest:direct`
    Direct,
}

impl GuestForm {
    /// Every form, in the order help lists them.
    pub const ALL: [GuestForm; 3] = [GuestForm::Iso, GuestForm::Disk, GuestForm::Direct];

    /// How a lab file's `[images]` and the report write it.
    pub fn as_str(self) -> &'static str {
        match self {
            GuestForm::Iso => "guest:iso",
            GuestForm::Disk => "guest:disk",
            GuestForm::Direct => "guest:direct",
        }
    }
}

keyword_impls!(GuestForm);

/// A word that is none of an enum's keywords.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{word}` is not one of {}", .expected.join(", "))]
pub struct UnknownKeyword {
    pub word: String,
    /// The keywords it could have been, quoted.
    pub expected: Vec<String>,
}

/// The value of `values` that `keyword` writes as `text`: the one reading
/// of each keyword enum's table (its `as_str`).
fn from_keyword<T: Copy>(
    values: &[T],
    keyword: fn(T) -> &'static str,
    text: &str,
) -> Result<T, UnknownKeyword> {
    values
        .iter()
        .copied()
        .find(|value| keyword(*value) == text)
        .ok_or_else(|| UnknownKeyword {
            word: text.to_owned(),
            expected: values
                .iter()
                .map(|value| format!("`{}`", keyword(*value)))
                .collect(),
        })
}

#[derive(Debug, Clone)]
pub struct VmSpec {
    pub name: String,
    /// The handout's command line, verbatim (continuations and all).
    pub qemu: String,
    pub location: Location,
    /// Where the command line came from, and so how far it is trusted.
    pub origin: Origin,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Origin {
    /// The lab file: validated with it before anything runs.
    #[default]
    LabFile,
    /// A student's `.qemu` file that passed the allow-list: its images are
    /// confined to the work dir when the VM boots.
    Submission,
    /// A student's `.qemu` file that is missing or was refused: booting the
    /// VM fails with this reason.
    Refused(String),
}

/// A step of a lab file. `A` is what it does: an [`Action`] in a runnable
/// lab, a [`GradeAction`] in a grading program (which may name a slot).
#[derive(Debug, Clone)]
pub struct Step<A = Action> {
    pub name: String,
    pub location: Location,
    pub action: A,
    pub expect: Expectation,
    pub erratum: Option<Erratum>,
    /// As written (KVM time); the runner scales it for the accelerator.
    pub timeout: Option<Duration>,
    /// `background = "label"` on a `host` or `run` step: started and left
    /// running; a later `wait = "label"` step waits for it and judges it.
    pub background: Option<String>,
    /// Names this step for `depends_on` (rubric checks have one).
    pub id: Option<String>,
    /// Steps (by `id`) that must have passed for this one to run.
    pub depends_on: Vec<String>,
}

impl<A> Step<A> {
    /// This step doing `action` instead: its name, expectation, erratum and
    /// the rest stay.
    pub fn with_action<B>(&self, action: B) -> Step<B> {
        Step {
            name: self.name.clone(),
            location: self.location.clone(),
            action,
            expect: self.expect.clone(),
            erratum: self.erratum.clone(),
            timeout: self.timeout,
            background: self.background.clone(),
            id: self.id.clone(),
            depends_on: self.depends_on.clone(),
        }
    }
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
    /// `stop = "vm"`: labcheck stops QEMU itself (its process group is
    /// killed), whatever the guest's shell has become.
    Stop { vm: String },
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
    /// A student's `.guest` file: each line typed into the VM's shell in
    /// turn, whatever the one before did. What a filled `.guest`
    /// [`GradeAction::Slot`] becomes; no lab file writes it.
    Lines { vm: String, lines: Vec<String> },
    /// A student's `.sh` file, run by `sh` in the submission's sandbox.
    /// What a filled `.sh` [`GradeAction::Slot`] becomes; no lab file writes it.
    Sandboxed { script: String },
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
    /// `check = { running = ["vm1", "vm2"] }`: each VM runs and its control
    /// channel answers.
    Running { vms: Vec<String> },
    /// `check = { traffic = ["vm2", "vm1"] }`: a random nonce, made now,
    /// sent with `nc` from the first VM to an address of the second, is read
    /// back on the second; both ends on labcheck's control channels.
    Traffic { from: String, to: String },
    /// `check = { subnet = ["vm1", "vm2"] }`: the VMs have IPv4 addresses
    /// (besides loopback) in one shared subnet, as their kernels report.
    Subnet { vms: Vec<String> },
    /// `check = { socket-link = ["vm1", "vm2"] }`: as launched, the first
    /// VM's NIC is on a `-netdev socket` that listens on a port and the
    /// second's on one that connects to it.
    SocketLink { listen: String, connect: String },
    /// `check = { bridged-taps = 2 }`: the lab's namespace has a bridge with
    /// at least this many tap devices attached.
    BridgedTaps { count: u32 },
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Each keyword enum's one table reads back what it writes.
    #[test]
    fn keywords_parse_back_to_their_values() {
        for network in Network::ALL {
            assert_eq!(network.as_str().parse(), Ok(network));
        }
        for form in GuestForm::ALL {
            assert_eq!(form.as_str().parse(), Ok(form));
        }
        for visibility in Visibility::ALL {
            assert_eq!(visibility.as_str().parse(), Ok(visibility));
        }
    }

    #[test]
    fn an_unknown_keyword_lists_the_known_ones() {
        let error = "guest:cd".parse::<GuestForm>().expect_err("not a form");
        assert_eq!(
            error.to_string(),
            "`guest:cd` is not one of `guest:iso`, `guest:disk`, `guest:direct`"
        );
    }

    #[test]
    fn a_visibility_is_serialized_as_its_keyword_and_read_back() {
        for visibility in Visibility::ALL {
            let json = serde_json::to_string(&visibility).expect("serializes");
            assert_eq!(json, format!("\"{}\"", visibility.as_str()));
            let read: Visibility = serde_json::from_str(&json).expect("deserializes");
            assert_eq!(read, visibility);
        }
        assert!(serde_json::from_str::<Visibility>("\"public\"").is_err());
    }
}

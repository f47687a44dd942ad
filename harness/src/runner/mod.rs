//! Executes labs: steps in order, VMs concurrently, a deadline on every wait,
//! cleanup always. Emits [`Event`]s and never prints.
//!
//! A failed step is a result (in a [`StepReport`]), not an `Err`: the runner
//! only returns `Err` when it cannot start a lab at all.

mod lab;
mod verdict;
mod vms;

use std::path::PathBuf;

pub use lab::run_lab;
pub use verdict::{describe, mismatches, Observation};
pub use vms::{boot, BootRequest, Booted, LiveVm, StepFailure};

use crate::guest::Artifacts;
use crate::net::{NamespaceKind, NetError};
use crate::time::TimeScale;
use crate::vm::{Accel, Probe};

/// What every lab of a run shares.
#[derive(Debug, Clone)]
pub struct RunContext {
    pub guest: Artifacts,
    pub probe: Probe,
    /// Reports and transcripts go here (`target/labcheck` for verify-labs).
    pub out_dir: PathBuf,
    /// Per-lab work dirs are made here; kept short because unix socket paths
    /// must stay under 108 bytes.
    pub work_root: PathBuf,
    /// Keep work dirs after the run (the user asked to).
    pub keep: bool,
    /// What a lab's private network namespace is made of.
    pub namespaces: NamespaceKind,
    /// Other labs run at the same time (`--jobs` above 1): a lab on the
    /// host's network gets free loopback ports for the handout's fixed ones.
    pub parallel: bool,
    /// Which job slot this lab runs in (0 when labs run one at a time):
    /// a student's scripts run as that slot's own sandbox user, so
    /// submissions graded at the same time never share a process limit.
    pub jail_slot: u16,
}

impl RunContext {
    pub fn time_scale(&self) -> TimeScale {
        match self.probe.accel {
            Accel::Kvm => TimeScale::KVM,
            Accel::Tcg => TimeScale::TCG,
        }
    }
}

/// Why a lab could not be started at all.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot prepare the work dir {path}: {source}")]
    WorkDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot make the lab's network namespace: {0}")]
    Namespace(#[source] NetError),
    #[error("cannot find free loopback ports for the lab's VMs: {0}")]
    LoopbackPorts(#[source] std::io::Error),
    #[error("cannot place the stand-in {name} in the work dir: {source}")]
    StandIn {
        name: String,
        #[source]
        source: std::io::Error,
    },
}

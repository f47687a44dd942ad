//! What the runner tells the world: the interface between the runner and
//! its reporters (cargo-nextest keeps the same seam in `reporter/events.rs`).
//! Past tense: each event reports something that has happened. The runner
//! never prints; reporters consume these. A leaf: the runner and the report
//! both depend on it, never on each other.

pub mod records;

use std::time::Duration;

use crate::scenario::model::Network;
use records::{Environment, StandInReport, StepReport, SubstitutionReport, TranscriptReport};

#[derive(Debug, Clone)]
pub enum Event {
    RunStarted {
        environment: Environment,
        /// The ids of the labs to run, in the order given: the report's order,
        /// whichever finishes first.
        labs: Vec<String>,
    },
    LabStarted {
        lab: String,
        title: String,
        handout: String,
        source: String,
        work_dir: String,
        network: Network,
        stand_ins: Vec<StandInReport>,
        /// Changes that apply to the whole lab (`sudo` in its namespace).
        substitutions: Vec<SubstitutionReport>,
        /// How many steps the lab has, cleanup included (for progress).
        steps: usize,
    },
    /// A VM's QEMU command line was rewritten: these are the declared changes.
    VmPrepared {
        lab: String,
        vm: String,
        substitutions: Vec<SubstitutionReport>,
    },
    VmBooting {
        lab: String,
        vm: String,
    },
    VmReady {
        lab: String,
        vm: String,
        after: Duration,
    },
    StepStarted {
        lab: String,
        index: usize,
        name: String,
    },
    StepFinished {
        lab: String,
        index: usize,
        step: Box<StepReport>,
    },
    LabFinished {
        lab: String,
        duration: Duration,
        transcripts: Vec<TranscriptReport>,
    },
}

/// Where the runner sends its events. Sending never fails the run: a
/// reporter that went away must not stop VMs from being cleaned up.
#[derive(Debug, Clone)]
pub struct EventSink(tokio::sync::mpsc::UnboundedSender<Event>);

impl EventSink {
    pub fn channel() -> (EventSink, tokio::sync::mpsc::UnboundedReceiver<Event>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (EventSink(tx), rx)
    }

    pub fn emit(&self, event: Event) {
        let _ = self.0.send(event);
    }
}

//! `labcheck grade`: students' submissions graded against real VMs.

pub mod submission;

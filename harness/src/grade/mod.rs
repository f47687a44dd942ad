//! Grading student submissions (`labcheck grade`, `labcheck selftest`).

pub mod model;
pub mod outputs;
pub mod program;
pub mod run;
pub mod submission;

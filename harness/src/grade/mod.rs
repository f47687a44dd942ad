//! Grading student submissions (`labcheck grade`, `labcheck selftest`).

pub mod model;
pub mod outputs;
pub mod submission;

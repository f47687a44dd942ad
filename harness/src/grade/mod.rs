//! Grading student submissions (`labcheck grade`, `labcheck selftest`).

pub mod allowlist;
pub mod model;
pub mod outputs;

//! Grading students' submissions: what they may run, and how it scores.
//!
//! - [`allowlist`] judges a submission's QEMU command lines and the image
//!   files they name before anything runs.

pub mod allowlist;

//! The lab file format: TOML parsed in two phases, raw (serde, with spans)
//! then validated into [`model`]. Pure: no I/O beyond reading the file.

pub mod model;

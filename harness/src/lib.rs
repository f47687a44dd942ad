//! labcheck: verifies QEMU lab handouts against real virtual machines.
//!
//! See ARCHITECTURE.md at the repository root for the map of these modules and
//! the invariants that keep them apart.

pub mod cli;
pub mod console;
pub mod events;
pub mod grade;
pub mod guest;
pub mod net;
pub mod process;
pub mod report;
pub mod runner;
pub mod sandbox;
pub mod scenario;
pub mod shard;
pub mod text;
pub mod time;
pub mod vm;

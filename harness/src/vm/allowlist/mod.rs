//! What a student's QEMU command line may do on the grading machine.
//!
//! QEMU runs there as root, so a submission's command line is held to an
//! allow-list: only options known to stay inside the student's work dir and
//! the lab's private network pass, and inside their `key=value,…` values only
//! known types and keys. Everything else is refused with a reason a student
//! can act on.
//!
//! - [`check`] and [`image_paths`] are pure: they judge the text (`options`,
//!   against the lists in `table`).
//! - [`confine_images`] judges the files the line names, just before QEMU
//!   starts: where symlinks lead, hard links, and every file of a qcow2
//!   backing chain (a student's script can point a backing file anywhere);
//!   [`firmware_lookalikes`], the work dir's other files (`confine`).
//!
//! Not covered here, and up to whoever starts QEMU: QEMU 7.2 looks its
//! firmware and option ROMs up in its working directory before its data dir
//! (a `bios-256k.bin` there is loaded; an `efi-e1000.rom` symlink would put
//! any host file in the guest's reach), so QEMU must not run with the
//! student's work dir as its working directory.
//!
//! Comments need nothing here: [`CommandLine::parse`] splits words as a shell
//! does, so a `#` starting a word (a comment line, or ` # …` after an option)
//! already runs to the end of its line.
//!
//! [`CommandLine::parse`]: crate::vm::CommandLine::parse

mod confine;
mod options;
mod table;

pub use confine::{confine_images, firmware_lookalikes, ConfineError};
pub use options::{check, image_paths, Refusal};

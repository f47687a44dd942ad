//! The expect engine over a serial console.

mod frame;
mod view;

//! The expect engine over a serial console.

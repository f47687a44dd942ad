//! QEMU: command lines, the accelerator probe, child processes, QMP.

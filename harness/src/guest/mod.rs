//! The built-in guest: pinned Debian packages made into an ISO, a disk and direct-boot artifacts.

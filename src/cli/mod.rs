//! The parts of the `guix-docker-native` program (src/main.rs).  Not part of
//! the library: they are compiled into the binary only.

pub mod args;
pub mod malloc;
pub mod progress;
pub mod signals;
pub mod stdio;
pub mod time;

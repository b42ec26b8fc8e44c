//! Which file descriptors were open when the program started.
//!
//! Rust's runtime opens `/dev/null` on a standard descriptor (0, 1, 2) that
//! is closed at start, before `main`: after that, the command
//! `guix-docker-native -o - ITEM >&-` would write the archive to
//! `/dev/null` and succeed.  A function in `.init_array` runs before the
//! runtime's start-up and records which descriptors the program was given,
//! so that a closed standard output is an error instead.

use std::sync::atomic::{AtomicU64, Ordering};

/// Descriptors 0 to 255, one bit each, set when open at start.
static OPEN_AT_START: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];
/// Set once [`record`] has run (it does unless the loader skipped it).
static RECORDED: AtomicU64 = AtomicU64::new(0);

/// Run by the dynamic loader (or the C start-up code) before Rust's.
extern "C" fn record() {
    for fd in 0..256 {
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0 {
            OPEN_AT_START[fd as usize / 64].fetch_or(1 << (fd % 64), Ordering::Relaxed);
        }
    }
    RECORDED.store(1, Ordering::Relaxed);
}

#[used]
#[link_section = ".init_array"]
static RECORD: extern "C" fn() = record;

/// Whether descriptor `fd` was open when the program started.  For a
/// descriptor past 255, or if the record was not made, whether it is open
/// now.
pub fn was_open_at_start(fd: i32) -> bool {
    if (0..256).contains(&fd) && RECORDED.load(Ordering::Relaxed) == 1 {
        return OPEN_AT_START[fd as usize / 64].load(Ordering::Relaxed) & (1 << (fd % 64)) != 0;
    }
    fd >= 0 && unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0
}

//! SIGINT, SIGTERM and SIGHUP stop the build cleanly.
//!
//! The first signal sets the cancel flag the engine polls: it stops, removes
//! its temporary file and returns a "cancelled" error.  A second signal ends
//! the process at once (for a build stuck in a system call), without that
//! cleanup.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

/// The signals that interrupt a build.
const SIGNALS: [i32; 3] = [SIGINT, SIGTERM, SIGHUP];

/// The cancel flag, and which signal set it.
pub struct Interrupts {
    pub cancel: Arc<AtomicBool>,
    signal: Arc<AtomicUsize>,
}

impl Interrupts {
    /// Installs the handlers.
    pub fn install() -> std::io::Result<Interrupts> {
        let cancel = Arc::new(AtomicBool::new(false));
        let signal = Arc::new(AtomicUsize::new(0));
        for sig in SIGNALS {
            // Registered first, so it sees the flag as the previous signal left it.
            signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, Arc::clone(&cancel))?;
            signal_hook::flag::register_usize(sig, Arc::clone(&signal), sig as usize)?;
            signal_hook::flag::register(sig, Arc::clone(&cancel))?;
        }
        Ok(Interrupts { cancel, signal })
    }

    /// The signal received, if any.
    pub fn received(&self) -> Option<i32> {
        match self.signal.load(Ordering::SeqCst) {
            0 => None,
            sig => Some(sig as i32),
        }
    }
}

/// `SIGINT`, `SIGTERM`, `SIGHUP`.
pub fn signal_name(sig: i32) -> String {
    match sig {
        SIGINT => "SIGINT".into(),
        SIGTERM => "SIGTERM".into(),
        SIGHUP => "SIGHUP".into(),
        _ => format!("signal {sig}"),
    }
}

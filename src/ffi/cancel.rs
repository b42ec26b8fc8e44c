//! `gdn_cancel`: a flag that stops builds from another thread or a signal
//! handler.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::{arg_ref, call, call_returning, gdn_result};
use super::options::{arg_handle, gdn_options};

/// A cancellation flag: an opaque handle.
///
/// Create it with `gdn_cancel_new`, attach it to options with
/// `gdn_options_set_cancel`, and call `gdn_cancel_request` (from any thread,
/// or from a signal handler) to stop every build that uses those options.
/// Such a build returns `GDN_ERR_CANCELLED` soon after (it looks at the flag
/// before each store item it measures, and before each file and every
/// 128 KiB of data it writes) and leaves nothing at its output path.  The
/// flag stays set: a build that starts after the request stops before
/// writing anything, so make a new flag for new builds.  The progress
/// callback may request cancellation.
///
/// Thread-safety: any number of threads may request cancellation at the
/// same time, and while builds use the flag.
#[allow(non_camel_case_types)]
pub struct gdn_cancel {
    flag: Arc<AtomicBool>,
}

/// Creates a cancellation flag, not requested.
///
/// Ownership: the caller owns the handle and must free it with
/// `gdn_cancel_free`.  Returns NULL only if the library failed internally
/// (see `gdn_last_error_message`).
#[no_mangle]
pub extern "C" fn gdn_cancel_new() -> *mut gdn_cancel {
    call_returning(std::ptr::null_mut(), || {
        let handle = Box::into_raw(Box::new(gdn_cancel { flag: Arc::new(AtomicBool::new(false)) }));
        super::error::clear_last_error();
        handle
    })
}

/// Requests cancellation: every build using options this flag is attached
/// to stops, now or when it starts.  NULL is ignored.
///
/// Thread-safe and async-signal-safe (it only sets an atomic flag; it
/// leaves the last error alone), so a SIGINT handler may call it.
///
/// # Safety
/// `cancel` is NULL or a handle from `gdn_cancel_new` not freed yet.
#[no_mangle]
pub unsafe extern "C" fn gdn_cancel_request(cancel: *const gdn_cancel) {
    // No panic boundary is needed (nothing here can panic), and none is
    // wanted: it is not async-signal-safe.
    if let Some(cancel) = cancel.as_ref() {
        cancel.flag.store(true, Ordering::SeqCst);
    }
}

/// Frees a flag made by `gdn_cancel_new`.  NULL is accepted and ignored.
/// Options it is attached to keep their own reference: freeing it neither
/// detaches it from them nor cancels, nor undoes a request made before.
///
/// # Safety
/// `cancel` is NULL or a handle from `gdn_cancel_new` not freed yet, not in
/// use by another thread (`gdn_cancel_request`).
#[no_mangle]
pub unsafe extern "C" fn gdn_cancel_free(cancel: *mut gdn_cancel) {
    if cancel.is_null() {
        return;
    }
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(Box::from_raw(cancel))));
}

/// Attaches a cancellation flag to the options (see `gdn_cancel`); NULL
/// `cancel` detaches it.  The options keep a reference of their own: the
/// caller may free `cancel` after this call, whatever the options' fate.
///
/// Fails with `GDN_ERR_BUSY`, as every setter, while a build uses the
/// options (see `gdn_options`).
///
/// # Safety
/// `options` is NULL or a live handle; `cancel` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn gdn_options_set_cancel(options: *mut gdn_options, cancel: *const gdn_cancel) -> gdn_result {
    const F: &str = "gdn_options_set_cancel";
    call(F, || {
        let options = arg_handle(F, options)?;
        let flag = if cancel.is_null() { None } else { Some(arg_ref(F, "cancel", cancel)?.flag.clone()) };
        options.change(F, |o| {
            o.set_cancel(flag);
            Ok(())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::GDN_OK;

    #[test]
    fn a_request_reaches_the_options_even_after_the_flag_is_freed() {
        unsafe {
            let o = super::super::options::gdn_options_new();
            let c = gdn_cancel_new();
            assert_eq!(gdn_options_set_cancel(o, c), GDN_OK);
            let seen = (*o).snapshot().cancel.clone().unwrap();
            assert!(!seen.load(Ordering::SeqCst));
            std::thread::scope(|s| {
                let c = c as usize;
                s.spawn(move || gdn_cancel_request(c as *const gdn_cancel));
            });
            assert!(seen.load(Ordering::SeqCst));
            gdn_cancel_free(c);
            assert!((*o).snapshot().cancel.as_ref().unwrap().load(Ordering::SeqCst));
            assert_eq!(gdn_options_set_cancel(o, std::ptr::null()), GDN_OK);
            assert!((*o).snapshot().cancel.is_none());
            gdn_cancel_request(std::ptr::null());
            gdn_cancel_free(std::ptr::null_mut());
            super::super::options::gdn_options_free(o);
        }
    }
}

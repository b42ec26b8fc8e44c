//! The last error message, kept per thread.

use std::cell::RefCell;
use std::ffi::{c_char, CString};

thread_local! {
    static LAST_ERROR: RefCell<Option<CString>> = const { RefCell::new(None) };
}

/// Records `message` as this thread's last error.
pub(crate) fn set_last_error(message: &str) {
    // A message quotes inputs; an interior NUL would cut it short in C.
    let text = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    // During thread teardown the slot may be gone; there is no one to tell.
    let _ = LAST_ERROR.try_with(|slot| *slot.borrow_mut() = Some(text));
}

/// Forgets this thread's last error: the last call succeeded.
pub(crate) fn clear_last_error() {
    let _ = LAST_ERROR.try_with(|slot| *slot.borrow_mut() = None);
}

/// The message of the last failure on the calling thread: a NUL-terminated
/// UTF-8 string that names the offending input (the argument, the file, the
/// store item, the option) and says what is wrong; or NULL when the last
/// call on this thread succeeded (or none was made).
///
/// "The last call" is the last call on this thread to a function that
/// returns `gdn_result`, or to `gdn_options_new`: each of them clears the
/// message on success and replaces it on failure.  `gdn_abi_version`,
/// `gdn_version`, `gdn_options_free` and this function leave it alone.
///
/// Ownership: the string belongs to the library.  Do not free it.  It stays
/// valid until the next call on this same thread to a function that sets or
/// clears it (see above), or until the thread exits; copy it to keep it.
///
/// Thread-safety: each thread has its own message; a failure in one thread
/// never shows in another.
#[no_mangle]
pub extern "C" fn gdn_last_error_message() -> *const c_char {
    super::call_returning(std::ptr::null(), || {
        LAST_ERROR
            .try_with(|slot| slot.borrow().as_ref().map_or(std::ptr::null(), |text| text.as_ptr()))
            .unwrap_or(std::ptr::null())
    })
}

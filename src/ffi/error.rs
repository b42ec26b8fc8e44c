//! Errors across the C ABI: the last error message, kept per thread, and
//! the names of the result codes.

use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::sync::OnceLock;

use super::gdn_result;
use crate::error::ErrorKind;

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

/// The name of the result code `code`: "ok" for `GDN_OK`, else the
/// `GDN_ERR_*` constant's name after `GDN_ERR_`, lower-cased with `-` for
/// `_` ("invalid-argument", "invalid-store-path", "io", ...); NULL for a
/// code this library does not know (one from a newer library).
///
/// Ownership: a static string owned by the library; never free it.
/// Thread-safety: safe from any thread; never fails, and leaves the last
/// error alone.
#[no_mangle]
pub extern "C" fn gdn_result_name(code: gdn_result) -> *const c_char {
    super::call_returning(std::ptr::null(), || result_name(code).map_or(std::ptr::null(), |name| name.as_ptr()))
}

/// The NUL-terminated names of the result codes, `GDN_OK` first, each
/// [`ErrorKind::name`] with a NUL.
fn result_name(code: gdn_result) -> Option<&'static CStr> {
    static NAMES: OnceLock<Vec<CString>> = OnceLock::new();
    let names = NAMES.get_or_init(|| {
        std::iter::once("ok")
            .chain(ErrorKind::ALL.iter().map(|kind| kind.name()))
            .map(|name| CString::new(name).expect("result names have no NUL"))
            .collect()
    });
    usize::try_from(code).ok().and_then(|i| names.get(i)).map(CString::as_c_str)
}

/// For the unit tests of the exports: the calling thread's last error
/// message, if any.
#[cfg(test)]
pub(crate) fn last_error() -> Option<String> {
    let ptr = gdn_last_error_message();
    (!ptr.is_null()).then(|| unsafe { CStr::from_ptr(ptr) }.to_str().unwrap().to_string())
}

/// For the unit tests of the exports: the message a failed call must have
/// left in the calling thread.
#[cfg(test)]
pub(crate) fn expect_last_error() -> String {
    last_error().expect("a failed call leaves its message in gdn_last_error_message")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(code: gdn_result) -> Option<&'static str> {
        let ptr = gdn_result_name(code);
        (!ptr.is_null()).then(|| unsafe { CStr::from_ptr(ptr) }.to_str().unwrap())
    }

    #[test]
    fn every_code_has_its_kind_s_name() {
        assert_eq!(name(0), Some("ok"));
        for kind in ErrorKind::ALL {
            assert_eq!(name(kind.code()), Some(kind.name()));
        }
        assert_eq!(name(-1), None);
        assert_eq!(name(ErrorKind::ALL.len() as gdn_result + 1), None);
        assert_eq!(name(gdn_result::MAX), None);
    }
}

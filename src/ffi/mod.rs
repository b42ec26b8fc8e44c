//! The C ABI: `include/guix_docker_native.h` is generated from this module
//! by cbindgen (see `build.rs`), so the doc comments here are the header's.
//!
//! Conventions, in the manner of rustls-ffi:
//! - every exported function runs its body through [`call`] (or
//!   [`call_returning`]), which catches panics so that none unwinds into C;
//! - every pointer argument is checked for NULL by [`arg_ref`],
//!   [`arg_str`], [`arg_path`] or [`options::arg_handle`], whose errors name
//!   the function and the argument;
//! - failures are reported as a [`gdn_result`] code plus a thread-local
//!   message ([`error`]).

pub mod error;
pub mod options;
pub mod cancel;
pub mod names;
pub mod build;
pub mod sbom;
pub mod image;
pub mod registry;
pub mod cache;

use std::ffi::{c_char, CStr, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use crate::error::{Error, ErrorKind, Result};

/// A result code.  `GDN_OK` (0) is success; any other value is a failure
/// whose message `gdn_last_error_message()` returns, and whose name
/// `gdn_result_name()` returns.  The numbers are stable: codes are only
/// ever appended.  (The codes are the library's error kinds, listed once
/// in `src/error.rs`; a test holds these constants to that list.)
#[allow(non_camel_case_types)]
pub type gdn_result = i32;

/// Success.
pub const GDN_OK: gdn_result = 0;
/// A required pointer argument was NULL.
pub const GDN_ERR_NULL_ARGUMENT: gdn_result = 1;
/// An argument or option has an invalid value (a tag, a number out of range,
/// a string that is not UTF-8, ...).
pub const GDN_ERR_INVALID_ARGUMENT: gdn_result = 2;
/// A path is not a store item: relative, outside the store, badly named.
pub const GDN_ERR_INVALID_STORE_PATH: gdn_result = 3;
/// The closure lacks the item or an item that a member references.
pub const GDN_ERR_INCOMPLETE_CLOSURE: gdn_result = 4;
/// The closure holds something an image cannot carry (socket, FIFO, device
/// node, a name starting with `.wh.`, ...).
pub const GDN_ERR_UNSUPPORTED_FILE: gdn_result = 5;
/// Reading the store failed (a missing or unreadable file, ...).
pub const GDN_ERR_IO: gdn_result = 6;
/// The output could not be written (missing directory, full disk, ...).
pub const GDN_ERR_OUTPUT: gdn_result = 7;
/// The store database could not be read.
pub const GDN_ERR_DATABASE: gdn_result = 8;
/// The build was interrupted.
pub const GDN_ERR_CANCELLED: gdn_result = 9;
/// A bug in the library: it panicked.  The panic was caught and did not
/// cross into the caller; the message says where it happened.
pub const GDN_ERR_PANIC: gdn_result = 10;
/// A handle was used against its rules while a build uses it: a setter
/// called on the options of a running build, a build started from a
/// progress callback with that callback's own options, or a freed handle
/// that running builds still hold (see `gdn_options`).  Nothing was done.
pub const GDN_ERR_BUSY: gdn_result = 11;

/// The version of this ABI that the header describes.  Compare it with
/// `gdn_abi_version()` to detect a library built for another header.
pub const GDN_ABI_VERSION: u32 = 1;

/// The version of the ABI the library implements: 1 for this header
/// (`GDN_ABI_VERSION`).  It changes only when an existing function changes
/// incompatibly; new functions and new result codes do not change it.
/// Thread-safe; never fails.
#[no_mangle]
pub extern "C" fn gdn_abi_version() -> u32 {
    call_returning(0, || GDN_ABI_VERSION)
}

/// The library's version (the crate version, e.g. "0.1.0"), as a static
/// NUL-terminated string owned by the library: never free it; it stays valid
/// for the life of the process.  Thread-safe; never fails.
#[no_mangle]
pub extern "C" fn gdn_version() -> *const c_char {
    const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");
    VERSION.as_ptr().cast()
}

/// Runs the body of the exported function `function`: its outcome becomes
/// the result code and the thread's last error message (cleared on
/// success), and a panic becomes `GDN_ERR_PANIC` instead of unwinding
/// into C.
pub(crate) fn call(function: &str, body: impl FnOnce() -> Result<()>) -> gdn_result {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => {
            error::clear_last_error();
            GDN_OK
        }
        Ok(Err(err)) => {
            error::set_last_error(&err.message);
            err.kind.code()
        }
        Err(payload) => {
            error::set_last_error(&panic_message(function, payload.as_ref()));
            GDN_ERR_PANIC
        }
    }
}

/// Runs the body of an exported function that returns a value rather than
/// a result code; a panic returns `on_panic` and sets the last error.
pub(crate) fn call_returning<T>(on_panic: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|payload| {
        error::set_last_error(&panic_message("guix-docker-native", payload.as_ref()));
        on_panic
    })
}

fn panic_message(function: &str, payload: &(dyn std::any::Any + Send)) -> String {
    let what = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("no message");
    format!("{function}: internal error, the library panicked (please report this bug): {what}")
}

fn null_argument(function: &str, name: &str) -> Error {
    Error::new(ErrorKind::NullArgument, format!("{function}: argument '{name}' is NULL"))
}

/// The object behind a pointer argument, or `GDN_ERR_NULL_ARGUMENT` naming it.
///
/// # Safety
/// A non-NULL `ptr` must point to a live `T` that nobody mutates meanwhile.
pub(crate) unsafe fn arg_ref<'a, T>(function: &str, name: &str, ptr: *const T) -> Result<&'a T> {
    ptr.as_ref().ok_or_else(|| null_argument(function, name))
}

/// The bytes of a C string argument, or `GDN_ERR_NULL_ARGUMENT`.
///
/// # Safety
/// A non-NULL `ptr` must point to a NUL-terminated string that stays
/// unchanged for `'a`.
pub(crate) unsafe fn arg_bytes<'a>(function: &str, name: &str, ptr: *const c_char) -> Result<&'a [u8]> {
    if ptr.is_null() {
        return Err(null_argument(function, name));
    }
    Ok(CStr::from_ptr(ptr).to_bytes())
}

/// A C string argument as UTF-8 text; NULL gives `GDN_ERR_NULL_ARGUMENT`,
/// invalid UTF-8 gives `GDN_ERR_INVALID_ARGUMENT`, both naming the argument.
///
/// # Safety
/// As [`arg_bytes`].
pub(crate) unsafe fn arg_str<'a>(function: &str, name: &str, ptr: *const c_char) -> Result<&'a str> {
    utf8(function, name, arg_bytes(function, name, ptr)?)
}

/// Checks that `bytes`, the value of argument `name`, is UTF-8.
pub(crate) fn utf8<'a>(function: &str, name: &str, bytes: &'a [u8]) -> Result<&'a str> {
    std::str::from_utf8(bytes).map_err(|err| {
        let offset = err.valid_up_to();
        Error::invalid_argument(format!(
            "{function}: argument '{name}' ('{}') is not valid UTF-8: byte 0x{:02x} at offset {offset}",
            String::from_utf8_lossy(bytes),
            bytes[offset],
        ))
    })
}

/// A C string argument naming a file of the host, taken as raw bytes (a
/// Linux file name need not be UTF-8); NULL gives `GDN_ERR_NULL_ARGUMENT`.
///
/// # Safety
/// As [`arg_bytes`].
pub(crate) unsafe fn arg_path(function: &str, name: &str, ptr: *const c_char) -> Result<PathBuf> {
    Ok(PathBuf::from(OsStr::from_bytes(arg_bytes(function, name, ptr)?)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use error::last_error;

    #[test]
    fn result_codes_match_error_kinds() {
        let pairs = [
            (GDN_ERR_NULL_ARGUMENT, ErrorKind::NullArgument),
            (GDN_ERR_INVALID_ARGUMENT, ErrorKind::InvalidArgument),
            (GDN_ERR_INVALID_STORE_PATH, ErrorKind::InvalidStorePath),
            (GDN_ERR_INCOMPLETE_CLOSURE, ErrorKind::IncompleteClosure),
            (GDN_ERR_UNSUPPORTED_FILE, ErrorKind::UnsupportedFile),
            (GDN_ERR_IO, ErrorKind::Io),
            (GDN_ERR_OUTPUT, ErrorKind::Output),
            (GDN_ERR_DATABASE, ErrorKind::Database),
            (GDN_ERR_CANCELLED, ErrorKind::Cancelled),
            (GDN_ERR_PANIC, ErrorKind::Panic),
            (GDN_ERR_BUSY, ErrorKind::Busy),
        ];
        for (code, kind) in pairs {
            assert_eq!(code, kind.code(), "{kind:?}");
        }
    }

    /// The header's `GDN_ERR_*` constants are `ErrorKind::ALL`, name for
    /// name and number for number: none missing, none extra.
    #[test]
    fn the_header_s_result_codes_are_the_error_kinds() {
        let header = include_str!(env!("GDN_GENERATED_HEADER"));
        let defined: Vec<(String, i32)> = header
            .lines()
            .filter_map(|line| line.strip_prefix("#define GDN_ERR_"))
            .map(|rest| {
                let (name, value) = rest.split_once(' ').unwrap();
                (name.to_string(), value.trim().parse().unwrap())
            })
            .collect();
        let expected: Vec<(String, i32)> =
            ErrorKind::ALL.iter().map(|kind| (kind.name().to_uppercase().replace('-', "_"), kind.code())).collect();
        assert_eq!(defined, expected);
        assert!(header.contains("\n#define GDN_OK 0\n"));
    }

    #[test]
    fn a_panic_becomes_a_result_code_and_a_message() {
        let code = call("gdn_test", || panic!("boom {}", 42));
        assert_eq!(code, GDN_ERR_PANIC);
        let message = last_error().unwrap();
        assert!(message.starts_with("gdn_test: internal error"), "{message}");
        assert!(message.ends_with("boom 42"), "{message}");
        assert_eq!(call_returning(7u32, || panic!("static str")), 7);
        assert!(last_error().unwrap().ends_with("static str"));
    }

    #[test]
    fn success_clears_the_last_error() {
        call("gdn_test", || Err(Error::invalid_argument("tag 'X': bad")));
        assert_eq!(last_error().as_deref(), Some("tag 'X': bad"));
        assert_eq!(call("gdn_test", || Ok(())), GDN_OK);
        assert_eq!(last_error(), None);
    }

    #[test]
    fn the_last_error_is_per_thread() {
        call("gdn_test", || Err(Error::invalid_argument("only here")));
        std::thread::spawn(|| assert_eq!(last_error(), None)).join().unwrap();
        assert_eq!(last_error().as_deref(), Some("only here"));
    }

    #[test]
    fn null_and_non_utf8_arguments_are_named() {
        let err = unsafe { arg_str("gdn_f", "tag", std::ptr::null()) }.unwrap_err();
        assert_eq!(err.kind, ErrorKind::NullArgument);
        assert_eq!(err.message, "gdn_f: argument 'tag' is NULL");
        let bad = b"ab\xffc\0";
        let err = unsafe { arg_str("gdn_f", "tag", bad.as_ptr().cast()) }.unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidArgument);
        assert!(err.message.contains("argument 'tag'"), "{}", err.message);
        assert!(err.message.contains("0xff at offset 2"), "{}", err.message);
        let path = unsafe { arg_path("gdn_f", "output", bad.as_ptr().cast()) }.unwrap();
        assert_eq!(path.as_os_str().as_bytes(), b"ab\xffc");
    }

    #[test]
    fn versions() {
        assert_eq!(gdn_abi_version(), 1);
        let v = unsafe { CStr::from_ptr(gdn_version()) };
        assert_eq!(v.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
    }
}

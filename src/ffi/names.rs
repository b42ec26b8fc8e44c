//! The names the library gives: a store item's name, the default output
//! file of a build, the tag an image gets from a name; and
//! `gdn_string_free` for the strings these functions return.
//!
//! They exist so that a binding (the Guile module) asks the library rather
//! than keeping its own copy of each rule.  Each returns its string through
//! an out-parameter, allocated by the library.

use std::ffi::{c_char, CString};
use std::path::Path;

use super::options::{gdn_options, options_or_defaults};
use super::{arg_ref, arg_str, call, gdn_result};
use crate::error::{Error, Result};
use crate::reference::repository_from_name;
use crate::store::{StoreDir, StoreItem};

/// Checks that `item` is a store item of the options' store directory
/// (`gdn_options_set_store_dir`; with NULL `options`, `$NIX_STORE_DIR` or
/// "/gnu/store"), as `build_docker_image` checks its `item`: absolute,
/// directly under the store directory, named `<32 nix-base32
/// characters>-<name>`.  The item need not exist.  On success `*name` is
/// its name without the store directory and hash: "hello-2.12" for
/// "/gnu/store/<hash>-hello-2.12".
///
/// Returns `GDN_OK`, `GDN_ERR_INVALID_STORE_PATH` (the message names
/// `item` and what is wrong), `GDN_ERR_INVALID_ARGUMENT` (not UTF-8),
/// `GDN_ERR_NULL_ARGUMENT` or `GDN_ERR_BUSY` (the options were freed while
/// builds hold them).  On failure `*name` is set to NULL.
///
/// Ownership: `*name` belongs to the caller, who frees it with
/// `gdn_string_free`.
///
/// # Safety
/// `item` is NULL or a NUL-terminated string; `options` is NULL or a live
/// handle; `name` is NULL or points to writable storage for a pointer.
#[no_mangle]
pub unsafe extern "C" fn gdn_store_item_name(
    item: *const c_char,
    options: *const gdn_options,
    name: *mut *mut c_char,
) -> gdn_result {
    const F: &str = "gdn_store_item_name";
    returning_string(F, "name", name, || {
        let item = store_item(F, item, options)?;
        Ok(item.name().to_string())
    })
}

/// The file a build of `item` writes when no output is named, as the
/// command line and the Guile module name it: `<name>-docker-image.tar`,
/// plus ".gz" or ".zst" when the options compress the archive
/// (`gdn_options_set_compression`), `<name>` being `item`'s name (see
/// `gdn_store_item_name`, whose checks and results this shares).  A file
/// name relative to the current directory.
///
/// Ownership: `*name` belongs to the caller, who frees it with
/// `gdn_string_free`; NULL after a failure.
///
/// # Safety
/// As `gdn_store_item_name`.
#[no_mangle]
pub unsafe extern "C" fn gdn_default_output_name(
    item: *const c_char,
    options: *const gdn_options,
    name: *mut *mut c_char,
) -> gdn_result {
    const F: &str = "gdn_default_output_name";
    returning_string(F, "name", name, || {
        let item = store_item(F, item, options)?;
        let options = options_or_defaults(F, options)?;
        Ok(crate::image::default_output_name(&item, &options))
    })
}

/// The image reference Guix derives from `name` (a package or profile
/// name, Guix's `#:repository`), as "REPOSITORY:latest": lower-cased, each
/// character Docker's reference grammar refuses in a repository mapped to
/// ".", runs of separators it refuses made one ".", separators at either
/// end dropped; a name with no letter or digit gives "image".  Any string
/// is accepted: "Guile+GnuTLS" gives "guile.gnutls:latest".  This is the
/// tag a build gets when no tag is set, from the item's name.
///
/// Returns `GDN_OK`, `GDN_ERR_NULL_ARGUMENT` or `GDN_ERR_INVALID_ARGUMENT`
/// (not UTF-8).
///
/// Ownership: `*tag` belongs to the caller, who frees it with
/// `gdn_string_free`; NULL after a failure.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string; `tag` is NULL or points to
/// writable storage for a pointer.
#[no_mangle]
pub unsafe extern "C" fn gdn_tag_from_name(name: *const c_char, tag: *mut *mut c_char) -> gdn_result {
    const F: &str = "gdn_tag_from_name";
    returning_string(F, "tag", tag, || Ok(format!("{}:latest", repository_from_name(arg_str(F, "name", name)?))))
}

/// Frees a string that `gdn_store_item_name`, `gdn_default_output_name` or
/// `gdn_tag_from_name` returned.  NULL is accepted and ignored.  Never pass
/// it a string of `gdn_version`, `gdn_last_error_message` or
/// `gdn_result_name`, which the library keeps.
///
/// # Safety
/// `string` is NULL or a string from one of the functions above, not freed
/// yet.
#[no_mangle]
pub unsafe extern "C" fn gdn_string_free(string: *mut c_char) {
    if string.is_null() {
        return;
    }
    let _ = std::panic::catch_unwind(|| drop(CString::from_raw(string)));
}

/// `item` checked as a store item of the options' store directory.
unsafe fn store_item(function: &str, item: *const c_char, options: *const gdn_options) -> Result<StoreItem> {
    let item = arg_str(function, "item", item)?;
    let options = options_or_defaults(function, options)?;
    StoreDir::new(&options.store_dir)?.parse_item(Path::new(item))
}

/// Runs `body` as an exported function returning its string through `out`:
/// `*out` is the string, which the caller frees with `gdn_string_free`,
/// or NULL after a failure.
unsafe fn returning_string(
    function: &str,
    out_name: &str,
    out: *mut *mut c_char,
    body: impl FnOnce() -> Result<String>,
) -> gdn_result {
    if let Some(out) = out.as_mut() {
        *out = std::ptr::null_mut();
    }
    call(function, || {
        arg_ref(function, out_name, out.cast_const())?;
        let text = body()?;
        // Names of store items, files and tags hold no NUL; this is a guard.
        let text = CString::new(text).map_err(|_| Error::invalid_argument(format!("{function}: result holds a NUL")))?;
        *out = text.into_raw();
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::options::{gdn_options_free, gdn_options_new, gdn_options_set_compression, gdn_options_set_store_dir};
    use crate::ffi::{GDN_ERR_INVALID_STORE_PATH, GDN_ERR_NULL_ARGUMENT, GDN_OK};
    use std::ffi::CStr;

    const ITEM: &std::ffi::CStr = c"/tmp/s/0123456789abcdfghijklmnpqrsvwxyz-hello-2.12";

    unsafe fn taken(code: gdn_result, out: *mut c_char) -> std::result::Result<String, (gdn_result, String)> {
        if code == GDN_OK {
            let text = CStr::from_ptr(out).to_str().unwrap().to_string();
            gdn_string_free(out);
            Ok(text)
        } else {
            assert!(out.is_null());
            let message = CStr::from_ptr(crate::ffi::error::gdn_last_error_message()).to_str().unwrap();
            Err((code, message.to_string()))
        }
    }

    #[test]
    fn names_follow_the_options_store_and_compression() {
        unsafe {
            let o = gdn_options_new();
            assert_eq!(gdn_options_set_store_dir(o, c"/tmp/s".as_ptr()), GDN_OK);
            let mut out = std::ptr::null_mut();
            assert_eq!(taken(gdn_store_item_name(ITEM.as_ptr(), o, &mut out), out).unwrap(), "hello-2.12");
            assert_eq!(
                taken(gdn_default_output_name(ITEM.as_ptr(), o, &mut out), out).unwrap(),
                "hello-2.12-docker-image.tar"
            );
            assert_eq!(gdn_options_set_compression(o, c"zstd".as_ptr(), 0), GDN_OK);
            assert_eq!(
                taken(gdn_default_output_name(ITEM.as_ptr(), o, &mut out), out).unwrap(),
                "hello-2.12-docker-image.tar.zst"
            );
            // Another store's item is refused, naming it.
            let (code, message) =
                taken(gdn_store_item_name(c"/gnu/store/0123456789abcdfghijklmnpqrsvwxyz-x".as_ptr(), o, &mut out), out)
                    .unwrap_err();
            assert_eq!(code, GDN_ERR_INVALID_STORE_PATH);
            assert!(message.contains("not under the store directory /tmp/s"), "{message}");
            let (code, message) = taken(gdn_default_output_name(c"/tmp/s/hello".as_ptr(), o, &mut out), out).unwrap_err();
            assert_eq!(code, GDN_ERR_INVALID_STORE_PATH);
            assert!(message.contains("/tmp/s/hello"), "{message}");
            gdn_options_free(o);
            let (code, message) = taken(gdn_store_item_name(std::ptr::null(), std::ptr::null(), &mut out), out).unwrap_err();
            assert_eq!(code, GDN_ERR_NULL_ARGUMENT);
            assert_eq!(message, "gdn_store_item_name: argument 'item' is NULL");
            assert_eq!(gdn_store_item_name(ITEM.as_ptr(), std::ptr::null(), std::ptr::null_mut()), GDN_ERR_NULL_ARGUMENT);
        }
    }

    #[test]
    fn tags_from_names_are_rust_s_repositories() {
        unsafe {
            let mut out = std::ptr::null_mut();
            for (name, tag) in [
                (c"hello", "hello:latest"),
                (c"Guile+GnuTLS", "guile.gnutls:latest"),
                (c"--x/y--", "x.y:latest"),
                (c"+++", "image:latest"),
            ] {
                assert_eq!(taken(gdn_tag_from_name(name.as_ptr(), &mut out), out).unwrap(), tag);
            }
            gdn_string_free(std::ptr::null_mut());
        }
    }
}

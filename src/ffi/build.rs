//! `build_docker_image`: the C entry point of the whole job.

use std::ffi::c_char;
use std::path::PathBuf;

use super::options::{begin_build, gdn_options};
use super::{arg_bytes, arg_path, call, gdn_result, utf8};
use crate::error::{Error, ErrorKind, Result};
use crate::output::Output;
use crate::options::ImageOptions;

/// Builds the Docker image archive (what `docker load` reads) of the store
/// item `item` and its closure, and writes it to `output`.
///
/// - `item`: the absolute path of a store item under the options' store
///   directory, e.g. "/gnu/store/<hash>-hello-2.12".  A relative entry
///   point or symlink target is relative to it.
/// - `closure`, `closure_len`: the closure as an array of `closure_len`
///   store paths (each a NUL-terminated UTF-8 string), as `guix gc -R`
///   prints it; it must contain `item`, and when a database is set, every
///   item a member references.  NULL with `closure_len` 0: the library
///   computes the closure, from the database if one is set, else by
///   scanning the store for references.  NULL with `closure_len` > 0 is
///   `GDN_ERR_NULL_ARGUMENT`.
/// - `output`: the file to write (its name is taken as bytes), or "-" for
///   standard output (file descriptor 1: flush your own `stdout` first).
///   A regular file (new, or replaced atomically, keeping its mode; through
///   a symlink, its target) is written unnamed in its directory and named
///   at the end: after a failure, nothing is at `output` and no temporary
///   file is left.  "/dev/stdout", "/dev/fd/N", a character device and a
///   FIFO (which must have a reader) are written in place.  A directory,
///   socket or block device, the database, an added file, or a path in the
///   store is refused (`GDN_ERR_OUTPUT`) before anything is written.
/// - `options`: a handle from `gdn_options_new`, or NULL for the defaults.
///
/// Returns `GDN_OK`, or a result code whose message (naming the item, the
/// file or the argument at fault) `gdn_last_error_message` returns.
///
/// Ownership: the library reads the arguments only during the call and
/// keeps none of them; the caller still owns and frees them.
///
/// Thread-safety: may run in several threads at once, with distinct
/// options handles or with one shared handle.  While it runs, the handle
/// refuses every setter (`GDN_ERR_BUSY`) and a `gdn_options_free` of it is
/// deferred to the end of the last build using it (see `gdn_options`).
/// Called from a progress callback with that callback's own options handle
/// (or a copy of it), it fails at once with `GDN_ERR_BUSY` instead of
/// waiting for the callback.  Give concurrent calls distinct outputs.
///
/// # Safety
/// Each pointer is NULL or valid as described above; `closure` points to
/// `closure_len` pointers.
#[no_mangle]
pub unsafe extern "C" fn build_docker_image(
    item: *const c_char,
    closure: *const *const c_char,
    closure_len: usize,
    output: *const c_char,
    options: *const gdn_options,
) -> gdn_result {
    const F: &str = "build_docker_image";
    call(F, || {
        let item = store_path(F, "item", arg_bytes(F, "item", item)?)?;
        let closure = closure_paths(F, closure, closure_len)?;
        let output = output_of(arg_path(F, "output", output)?)?;
        // Held to the end of the build: the handle can neither change nor
        // be released meanwhile.
        let handle_use;
        let defaults;
        let options = if options.is_null() {
            defaults = ImageOptions::new();
            &defaults
        } else {
            handle_use = begin_build(F, options)?;
            &*handle_use.options
        };
        crate::image::build_docker_image(&[item], closure.as_deref(), &output, options)
    })
}

/// A store path argument: store names are ASCII, so a path that is not
/// UTF-8 can never name a store item; say so here, naming the argument.
pub(super) fn store_path(function: &str, name: &str, bytes: &[u8]) -> Result<PathBuf> {
    Ok(PathBuf::from(utf8(function, name, bytes)?))
}

/// The closure array of `function`'s call, or `None` when the library is
/// to compute it.
///
/// # Safety
/// As `build_docker_image`'s `closure` and `closure_len`.
pub(super) unsafe fn closure_paths(function: &str, closure: *const *const c_char, len: usize) -> Result<Option<Vec<PathBuf>>> {
    if closure.is_null() {
        if len == 0 {
            return Ok(None);
        }
        return Err(Error::new(
            ErrorKind::NullArgument,
            format!("{function}: argument 'closure' is NULL but 'closure_len' is {len}; pass NULL and 0 to compute the closure"),
        ));
    }
    if len > isize::MAX as usize / std::mem::size_of::<*const c_char>() {
        return Err(Error::invalid_argument(format!("{function}: argument 'closure_len' ({len}) is too large")));
    }
    let entries = std::slice::from_raw_parts(closure, len);
    let mut paths = Vec::with_capacity(len);
    for (i, &entry) in entries.iter().enumerate() {
        let name = format!("closure[{i}]");
        paths.push(store_path(function, &name, arg_bytes(function, &name, entry)?)?);
    }
    Ok(Some(paths))
}

fn output_of(path: PathBuf) -> Result<Output> {
    if path.as_os_str() == "-" {
        Ok(Output::Stdout)
    } else if path.as_os_str().is_empty() {
        Err(Error::invalid_argument("build_docker_image: argument 'output' is empty; give a file name or \"-\""))
    } else {
        Ok(Output::Path(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::{GDN_ERR_INVALID_ARGUMENT, GDN_ERR_NULL_ARGUMENT};

    use crate::ffi::error::expect_last_error as last_error;

    #[test]
    fn arguments_are_checked_before_any_work() {
        let item = c"/gnu/store/00000000000000000000000000000000-x".as_ptr();
        let out = c"/tmp/x.tar".as_ptr();
        unsafe {
            let code = build_docker_image(std::ptr::null(), std::ptr::null(), 0, out, std::ptr::null());
            assert_eq!(code, GDN_ERR_NULL_ARGUMENT);
            assert_eq!(last_error(), "build_docker_image: argument 'item' is NULL");

            let code = build_docker_image(item, std::ptr::null(), 2, out, std::ptr::null());
            assert_eq!(code, GDN_ERR_NULL_ARGUMENT);
            assert!(last_error().contains("'closure' is NULL but 'closure_len' is 2"));

            let closure = [item, std::ptr::null()];
            let code = build_docker_image(item, closure.as_ptr(), 2, out, std::ptr::null());
            assert_eq!(code, GDN_ERR_NULL_ARGUMENT);
            assert_eq!(last_error(), "build_docker_image: argument 'closure[1]' is NULL");

            let bad = c"/gnu/store/\xff".as_ptr();
            let closure = [item, bad];
            let code = build_docker_image(item, closure.as_ptr(), 2, out, std::ptr::null());
            assert_eq!(code, GDN_ERR_INVALID_ARGUMENT);
            assert!(last_error().contains("'closure[1]'"));

            let code = build_docker_image(item, std::ptr::null(), 0, std::ptr::null(), std::ptr::null());
            assert_eq!(code, GDN_ERR_NULL_ARGUMENT);
            assert_eq!(last_error(), "build_docker_image: argument 'output' is NULL");

            let code = build_docker_image(item, std::ptr::null(), 0, c"".as_ptr(), std::ptr::null());
            assert_eq!(code, GDN_ERR_INVALID_ARGUMENT);
            assert!(last_error().contains("'output' is empty"));
        }
    }

    #[test]
    fn dash_means_standard_output() {
        assert_eq!(output_of(PathBuf::from("-")).unwrap(), Output::Stdout);
        assert_eq!(output_of(PathBuf::from("./-")).unwrap(), Output::Path(PathBuf::from("./-")));
    }
}

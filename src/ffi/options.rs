//! `gdn_options`: the opaque options handle and its setters.
//!
//! Each setter delegates to the [`ImageOptions`] setter of the same name, so
//! a value is checked exactly as the command line checks it.

use std::ffi::{c_char, c_void};
use std::sync::{Arc, Mutex};

use super::{arg_mut, arg_path, arg_str, call, call_returning, gdn_result};
use crate::options::{Compression, ImageOptions, Progress};

/// Options for `build_docker_image`: an opaque handle.
///
/// Create it with `gdn_options_new`, fill it with the `gdn_options_set_*` /
/// `gdn_options_add_*` setters, pass it to any number of builds, and free it
/// with `gdn_options_free`.  Its layout is private, so options can grow
/// without breaking callers.
///
/// Thread-safety: a handle may not be changed (by a setter or by
/// `gdn_options_free`) while another thread uses it.  Any number of threads
/// may read one handle at the same time (pass it to `build_docker_image`),
/// and distinct handles may be used freely in distinct threads.
#[allow(non_camel_case_types)]
pub struct gdn_options {
    pub(crate) inner: ImageOptions,
}

/// Called with the progress of a build: `bytes_done` of `bytes_total` bytes
/// of file data archived so far.  `userdata` is the pointer given to
/// `gdn_options_set_progress_callback`.
///
/// The callback is called on the thread that called `build_docker_image`,
/// only while that call runs, and never concurrently with itself for one
/// options handle (when two threads build with one handle, their calls are
/// serialised).  It must return normally: it may not unwind (C++
/// exceptions) or longjmp out, and may not call `build_docker_image` or
/// change the options handle.
#[allow(non_camel_case_types)]
pub type gdn_progress_callback =
    Option<unsafe extern "C" fn(bytes_done: u64, bytes_total: u64, userdata: *mut c_void)>;

/// A C callback and its userdata, callable from any thread, one call at a time.
struct CProgress {
    callback: unsafe extern "C" fn(u64, u64, *mut c_void),
    userdata: *mut c_void,
    one_at_a_time: Mutex<()>,
}

// SAFETY: the pointer is only handed back to the caller's callback.  The
// engine calls progress on the building thread, but a handle may be shared
// by builds in several threads: the mutex keeps their calls sequential, as
// the header promises.
unsafe impl Send for CProgress {}
unsafe impl Sync for CProgress {}

impl CProgress {
    fn report(&self, progress: Progress) {
        let _turn = self.one_at_a_time.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // SAFETY: the caller promised a callback that accepts its userdata.
        unsafe { (self.callback)(progress.bytes_done, progress.bytes_total, self.userdata) }
    }
}

/// Creates an options handle with the defaults: store directory
/// `$NIX_STORE_DIR` if set and not empty, else `/gnu/store`; no database
/// (the closure is found by scanning the store); the tag derived from the
/// item's name; one layer; the host's architecture; creation time
/// `$SOURCE_DATE_EPOCH` if set, else 1970-01-01T00:00:01Z; no compression;
/// one worker thread per core; no progress callback.
///
/// Ownership: the caller owns the handle and must free it with
/// `gdn_options_free`.  Returns NULL only if the library failed internally
/// (see `gdn_last_error_message`).
#[no_mangle]
pub extern "C" fn gdn_options_new() -> *mut gdn_options {
    call_returning(std::ptr::null_mut(), || {
        let handle = Box::into_raw(Box::new(gdn_options { inner: ImageOptions::new() }));
        super::error::clear_last_error();
        handle
    })
}

/// Frees an options handle made by `gdn_options_new`.  NULL is accepted and
/// ignored.  The handle must not be used afterwards, nor be in use by
/// another thread.  Builds that already returned are unaffected: they kept
/// nothing of it.
///
/// # Safety
/// `options` is NULL or a handle from `gdn_options_new` not freed yet.
#[no_mangle]
pub unsafe extern "C" fn gdn_options_free(options: *mut gdn_options) {
    if options.is_null() {
        return;
    }
    // Dropping runs no caller code; should it ever panic, the panic stops
    // here and the last error is left alone, as documented.
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(Box::from_raw(options))));
}

/// Sets the store directory (an absolute path, e.g. "/gnu/store" or
/// "/tmp/x/gnu/store").  The string is copied.
///
/// # Safety
/// `options` is NULL or a live handle; `dir` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn gdn_options_set_store_dir(options: *mut gdn_options, dir: *const c_char) -> gdn_result {
    const F: &str = "gdn_options_set_store_dir";
    call(F, || {
        let options = arg_mut(F, "options", options)?;
        let dir = arg_str(F, "dir", dir)?;
        options.inner.set_store_dir(dir.as_ref())
    })
}

/// Sets the store database (Guix's `db.sqlite`) from which the closure and
/// the references are read; it is opened read-only during the build.  The
/// file name is taken as bytes (it need not be UTF-8) and copied.
///
/// # Safety
/// `options` is NULL or a live handle; `file` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn gdn_options_set_database(options: *mut gdn_options, file: *const c_char) -> gdn_result {
    const F: &str = "gdn_options_set_database";
    call(F, || {
        let options = arg_mut(F, "options", options)?;
        let file = arg_path(F, "file", file)?;
        options.inner.set_database(&file)
    })
}

/// Adds a tag, "name" or "name:tag" in the Docker reference grammar
/// ("name" alone means "name:latest").  Repeatable.  The string is copied.
///
/// # Safety
/// `options` is NULL or a live handle; `tag` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn gdn_options_add_tag(options: *mut gdn_options, tag: *const c_char) -> gdn_result {
    const F: &str = "gdn_options_add_tag";
    call(F, || {
        let options = arg_mut(F, "options", options)?;
        let tag = arg_str(F, "tag", tag)?;
        options.inner.add_tag(tag)
    })
}

/// Sets the entry point's program: absolute, or relative to the item (as
/// `guix pack --entry-point`).  Replaces an earlier program and keeps its
/// arguments.  The string is copied.
///
/// # Safety
/// `options` is NULL or a live handle; `program` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn gdn_options_set_entry_point(options: *mut gdn_options, program: *const c_char) -> gdn_result {
    const F: &str = "gdn_options_set_entry_point";
    call(F, || {
        let options = arg_mut(F, "options", options)?;
        let program = arg_str(F, "program", program)?;
        options.inner.set_entry_point(program)
    })
}

/// Appends an argument to the entry point (`-A`); the entry point must have
/// been set.  The string is copied.
///
/// # Safety
/// `options` is NULL or a live handle; `arg` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn gdn_options_add_entry_point_argument(options: *mut gdn_options, arg: *const c_char) -> gdn_result {
    const F: &str = "gdn_options_add_entry_point_argument";
    call(F, || {
        let options = arg_mut(F, "options", options)?;
        let arg = arg_str(F, "arg", arg)?;
        options.inner.add_entry_point_argument(arg)
    })
}

/// Appends an argument to the image's `Cmd`.  The string is copied.
///
/// # Safety
/// `options` is NULL or a live handle; `arg` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn gdn_options_add_cmd(options: *mut gdn_options, arg: *const c_char) -> gdn_result {
    const F: &str = "gdn_options_add_cmd";
    call(F, || {
        let options = arg_mut(F, "options", options)?;
        let arg = arg_str(F, "arg", arg)?;
        options.inner.add_cmd(arg)
    })
}

/// Adds "NAME=VALUE" to the image's environment; a later binding of the
/// same NAME replaces the earlier one.  The string is copied.
///
/// # Safety
/// `options` is NULL or a live handle; `name_eq_value` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn gdn_options_add_env(options: *mut gdn_options, name_eq_value: *const c_char) -> gdn_result {
    const F: &str = "gdn_options_add_env";
    call(F, || {
        let options = arg_mut(F, "options", options)?;
        let binding = arg_str(F, "name_eq_value", name_eq_value)?;
        options.inner.add_env(binding)
    })
}

/// Sets the image's working directory (an absolute path).  The string is copied.
///
/// # Safety
/// `options` is NULL or a live handle; `dir` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn gdn_options_set_working_dir(options: *mut gdn_options, dir: *const c_char) -> gdn_result {
    const F: &str = "gdn_options_set_working_dir";
    call(F, || {
        let options = arg_mut(F, "options", options)?;
        let dir = arg_str(F, "dir", dir)?;
        options.inner.set_working_dir(dir)
    })
}

/// Sets the user the image runs as ("name", "uid" or "uid:gid").  The string
/// is copied.
///
/// # Safety
/// `options` is NULL or a live handle; `user` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn gdn_options_set_user(options: *mut gdn_options, user: *const c_char) -> gdn_result {
    const F: &str = "gdn_options_set_user";
    call(F, || {
        let options = arg_mut(F, "options", options)?;
        let user = arg_str(F, "user", user)?;
        options.inner.set_user(user)
    })
}

/// Sets the label `key` to `value`.  The strings are copied.
///
/// # Safety
/// `options` is NULL or a live handle; `key` and `value` are NULL or
/// NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn gdn_options_add_label(options: *mut gdn_options, key: *const c_char, value: *const c_char) -> gdn_result {
    const F: &str = "gdn_options_add_label";
    call(F, || {
        let options = arg_mut(F, "options", options)?;
        let key = arg_str(F, "key", key)?;
        let value = arg_str(F, "value", value)?;
        options.inner.add_label(key, value)
    })
}

/// Adds an exposed port: "8080" (TCP), "8080/tcp", "53/udp" or "9/sctp".
/// The string is copied.
///
/// # Safety
/// `options` is NULL or a live handle; `port` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn gdn_options_add_exposed_port(options: *mut gdn_options, port: *const c_char) -> gdn_result {
    const F: &str = "gdn_options_add_exposed_port";
    call(F, || {
        let options = arg_mut(F, "options", options)?;
        let port = arg_str(F, "port", port)?;
        options.inner.add_exposed_port(port)
    })
}

/// Adds a volume (an absolute path in the image).  The string is copied.
///
/// # Safety
/// `options` is NULL or a live handle; `path` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn gdn_options_add_volume(options: *mut gdn_options, path: *const c_char) -> gdn_result {
    const F: &str = "gdn_options_add_volume";
    call(F, || {
        let options = arg_mut(F, "options", options)?;
        let path = arg_str(F, "path", path)?;
        options.inner.add_volume(path)
    })
}

/// Adds a symbolic link `link` (absolute, in the image) pointing to
/// `target`; a relative target is relative to the item, as with
/// `guix pack -S /bin=bin`.  The strings are copied.
///
/// # Safety
/// `options` is NULL or a live handle; `link` and `target` are NULL or
/// NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn gdn_options_add_symlink(options: *mut gdn_options, link: *const c_char, target: *const c_char) -> gdn_result {
    const F: &str = "gdn_options_add_symlink";
    call(F, || {
        let options = arg_mut(F, "options", options)?;
        let link = arg_str(F, "link", link)?;
        let target = arg_str(F, "target", target)?;
        options.inner.add_symlink(link, target)
    })
}

/// Adds a directory `path` (absolute, in the image) owned by `uid`:`gid`
/// with permission bits `mode` (at most 07777).  The string is copied.
///
/// # Safety
/// `options` is NULL or a live handle; `path` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn gdn_options_add_directory(options: *mut gdn_options, path: *const c_char, uid: u32, gid: u32, mode: u32) -> gdn_result {
    const F: &str = "gdn_options_add_directory";
    call(F, || {
        let options = arg_mut(F, "options", options)?;
        let path = arg_str(F, "path", path)?;
        options.inner.add_directory(path, uid, gid, mode)
    })
}

/// Adds the regular file `source` of the host to the image at `image_path`
/// (absolute).  `source` is read during the build; its name is taken as
/// bytes (it need not be UTF-8).  The strings are copied.
///
/// # Safety
/// `options` is NULL or a live handle; `image_path` and `source` are NULL or
/// NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn gdn_options_add_file(options: *mut gdn_options, image_path: *const c_char, source: *const c_char) -> gdn_result {
    const F: &str = "gdn_options_add_file";
    call(F, || {
        let options = arg_mut(F, "options", options)?;
        let image_path = arg_str(F, "image_path", image_path)?;
        let source = arg_path(F, "source", source)?;
        options.inner.add_file(image_path, source)
    })
}

/// Rewrites the names in the image that start with the absolute prefix
/// `old_prefix` to start with `new_prefix` instead (Guix's
/// `#:transformations`).  The strings are copied.
///
/// # Safety
/// `options` is NULL or a live handle; `old_prefix` and `new_prefix` are
/// NULL or NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn gdn_options_add_transformation(options: *mut gdn_options, old_prefix: *const c_char, new_prefix: *const c_char) -> gdn_result {
    const F: &str = "gdn_options_add_transformation";
    call(F, || {
        let options = arg_mut(F, "options", options)?;
        let old_prefix = arg_str(F, "old_prefix", old_prefix)?;
        let new_prefix = arg_str(F, "new_prefix", new_prefix)?;
        options.inner.add_transformation(old_prefix, new_prefix)
    })
}

/// Allows at most `n` layers (1 to 125, the Docker engine's limit): store
/// items get layers of their own, the rest are grouped.  The default is one
/// layer.
///
/// # Safety
/// `options` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn gdn_options_set_max_layers(options: *mut gdn_options, n: u32) -> gdn_result {
    const F: &str = "gdn_options_set_max_layers";
    call(F, || arg_mut(F, "options", options)?.inner.set_max_layers(n))
}

/// Sets the image's architecture from a Guix system or GNU triplet
/// ("x86_64-linux", "aarch64-linux-gnu", "i686-linux", "armhf-linux",
/// "mips64el-linux", "riscv64-linux").  The default is the host's.
///
/// # Safety
/// `options` is NULL or a live handle; `system` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn gdn_options_set_system(options: *mut gdn_options, system: *const c_char) -> gdn_result {
    const F: &str = "gdn_options_set_system";
    call(F, || {
        let options = arg_mut(F, "options", options)?;
        let system = arg_str(F, "system", system)?;
        options.inner.set_system(system)
    })
}

/// Sets the creation time recorded in the image, in seconds since the epoch
/// (years 0000 to 9999).  The default is `$SOURCE_DATE_EPOCH` when set at
/// build time, else 1 (1970-01-01T00:00:01Z).
///
/// # Safety
/// `options` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn gdn_options_set_creation_time(options: *mut gdn_options, seconds_since_epoch: i64) -> gdn_result {
    const F: &str = "gdn_options_set_creation_time";
    call(F, || arg_mut(F, "options", options)?.inner.set_creation_time(seconds_since_epoch))
}

/// Compresses the whole archive: `name` is "none", "gzip" or "zstd";
/// `level` 0 means the compressor's default, else 1 to 9 for gzip and 1 to
/// 19 for zstd ("none" takes only 0).  The string is not kept.
///
/// # Safety
/// `options` is NULL or a live handle; `name` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn gdn_options_set_compression(options: *mut gdn_options, name: *const c_char, level: i32) -> gdn_result {
    const F: &str = "gdn_options_set_compression";
    call(F, || {
        let options = arg_mut(F, "options", options)?;
        let compression = Compression::parse(arg_str(F, "name", name)?)?;
        options.inner.set_compression(compression, (level != 0).then_some(level))
    })
}

/// Puts the store database in the image (non-zero `enable`), as
/// `guix pack --localstatedir` does: `/var/guix/db/db.sqlite` registering
/// exactly the closure, each item with the hash, size, references, deriver
/// and registration time the store database (`gdn_options_set_database`)
/// gives it, and root's profile `guix-profile` linking to the item, which
/// makes it a GC root.  A build with it and without a database fails with
/// `GDN_ERR_INVALID_ARGUMENT`: the hashes cannot be made up.  0 (the
/// default) turns it off.
///
/// # Safety
/// `options` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn gdn_options_set_localstatedir(options: *mut gdn_options, enable: i32) -> gdn_result {
    const F: &str = "gdn_options_set_localstatedir";
    call(F, || {
        let options = arg_mut(F, "options", options)?;
        options.inner.set_localstatedir(enable != 0);
        Ok(())
    })
}

/// Sets the number of worker threads (at most 1024); 0 means one per core.
/// The image's bytes do not depend on it.
///
/// # Safety
/// `options` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn gdn_options_set_threads(options: *mut gdn_options, n: u32) -> gdn_result {
    const F: &str = "gdn_options_set_threads";
    call(F, || {
        let options = arg_mut(F, "options", options)?;
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        options.inner.set_threads(n)
    })
}

/// Sets the progress callback (see `gdn_progress_callback`) and the pointer
/// it receives; NULL `callback` removes it.  The library never reads or
/// frees `userdata`: it must stay valid for every build that uses this
/// handle, until the callback is replaced or the handle freed.
///
/// # Safety
/// `options` is NULL or a live handle; `callback` is NULL or a function
/// that accepts `userdata`.
#[no_mangle]
pub unsafe extern "C" fn gdn_options_set_progress_callback(
    options: *mut gdn_options,
    callback: gdn_progress_callback,
    userdata: *mut c_void,
) -> gdn_result {
    const F: &str = "gdn_options_set_progress_callback";
    call(F, || {
        let options = arg_mut(F, "options", options)?;
        options.inner.progress = callback.map(|callback| {
            let c = CProgress { callback, userdata, one_at_a_time: Mutex::new(()) };
            Arc::new(move |progress: Progress| c.report(progress)) as crate::options::ProgressFn
        });
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::{GDN_ERR_INVALID_ARGUMENT, GDN_ERR_NULL_ARGUMENT, GDN_OK};
    use std::ffi::CStr;
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

    fn last_error() -> String {
        let ptr = crate::ffi::error::gdn_last_error_message();
        assert!(!ptr.is_null());
        unsafe { CStr::from_ptr(ptr) }.to_str().unwrap().to_string()
    }

    #[test]
    fn setters_fill_the_options_and_check_values() {
        unsafe {
            let o = gdn_options_new();
            assert!(!o.is_null());
            assert_eq!(gdn_options_add_tag(o, c"hello".as_ptr()), GDN_OK);
            assert_eq!(gdn_options_set_max_layers(o, 3), GDN_OK);
            assert_eq!(gdn_options_set_compression(o, c"zstd".as_ptr(), 0), GDN_OK);
            assert_eq!(gdn_options_add_label(o, c"k".as_ptr(), c"v".as_ptr()), GDN_OK);
            let inner = &(*o).inner;
            assert_eq!(inner.tags, ["hello:latest"]);
            assert_eq!(inner.max_layers, Some(3));
            assert_eq!(inner.compression, Compression::Zstd);
            assert_eq!(inner.compression_level, None);
            assert_eq!(inner.labels["k"], "v");

            assert_eq!(gdn_options_set_max_layers(o, 126), GDN_ERR_INVALID_ARGUMENT);
            assert!(last_error().contains("max-layers 126"));
            assert_eq!((*o).inner.max_layers, Some(3), "a refused value changes nothing");
            assert_eq!(gdn_options_set_compression(o, c"lzma".as_ptr(), 0), GDN_ERR_INVALID_ARGUMENT);
            assert!(last_error().contains("'lzma'"));
            assert_eq!(gdn_options_add_label(o, c"k".as_ptr(), std::ptr::null()), GDN_ERR_NULL_ARGUMENT);
            assert_eq!(last_error(), "gdn_options_add_label: argument 'value' is NULL");
            gdn_options_free(o);
            gdn_options_free(std::ptr::null_mut());
        }
    }

    static CALLS: AtomicUsize = AtomicUsize::new(0);
    static LAST_DONE: AtomicU64 = AtomicU64::new(0);

    unsafe extern "C" fn count(done: u64, _total: u64, userdata: *mut c_void) {
        assert_eq!(userdata as usize, 0x1234);
        CALLS.fetch_add(1, Ordering::SeqCst);
        LAST_DONE.store(done, Ordering::SeqCst);
    }

    #[test]
    fn the_progress_callback_gets_its_userdata_from_any_thread() {
        unsafe {
            let o = gdn_options_new();
            assert_eq!(gdn_options_set_progress_callback(o, Some(count), 0x1234 as *mut c_void), GDN_OK);
            let progress = (*o).inner.progress.clone().unwrap();
            std::thread::scope(|s| {
                for i in 0..4 {
                    let progress = progress.clone();
                    s.spawn(move || progress(Progress { bytes_done: i, bytes_total: 10, ..Default::default() }));
                }
            });
            assert_eq!(CALLS.load(Ordering::SeqCst), 4);
            assert_eq!(gdn_options_set_progress_callback(o, None, std::ptr::null_mut()), GDN_OK);
            assert!((*o).inner.progress.is_none());
            gdn_options_free(o);
        }
    }
}

//! `gdn_options`: the opaque options handle and its setters.
//!
//! Each setter delegates to the [`ImageOptions`] setter of the same name, so
//! a value is checked exactly as the command line checks it.
//!
//! A handle is shared by the builds that use it and the threads that set it:
//! its state sits behind a mutex that is held only for a moment (never
//! during a build, never while C code runs), and a build works on a
//! snapshot of the options.  A handle in use by a build refuses to change
//! (`GDN_ERR_BUSY`), and freeing it then is deferred to the end of the last
//! such build, so that no build reads freed memory and no setter races with
//! a build.

use std::cell::RefCell;
use std::ffi::{c_char, c_void};
use std::sync::{Arc, Mutex, MutexGuard};

use super::cancel::gdn_cancel;
use super::{arg_path, arg_ref, arg_str, call, call_returning, gdn_result};
use crate::error::{Error, ErrorKind, Result};
use crate::options::{Compression, ImageOptions, Progress};

/// Options for `build_docker_image`: an opaque handle.
///
/// Create it with `gdn_options_new` (or `gdn_options_clone`), fill it with
/// the `gdn_options_set_*` / `gdn_options_add_*` setters, pass it to any
/// number of builds, and free it with `gdn_options_free`.  Its layout is
/// private, so options can grow without breaking callers.
///
/// Thread-safety: every function taking a handle may be called from any
/// thread, also while builds use the handle:
/// - any number of builds may use one handle at once, each in its thread;
/// - while a build uses the handle (from the moment `build_docker_image` is
///   entered until it returns), every setter on it fails with
///   `GDN_ERR_BUSY` and changes nothing, whether called from another thread
///   or from the build's own progress callback: a running build's options
///   never change under it.  To build with other options meanwhile, copy
///   the handle with `gdn_options_clone` and change the copy;
/// - `gdn_options_free` while builds use the handle is allowed (from their
///   progress callback or from another thread): the handle is released when
///   the last of them returns, and they finish with the options they had.
///   (A build counts from its start: a free racing with the entry into
///   `build_docker_image` is a use after free, as with any function.)
///   Using a freed handle is an error: until it is released, setters,
///   `gdn_options_clone` and `build_docker_image` refuse it with
///   `GDN_ERR_BUSY`; after, the pointer is dangling, as after any free.
#[allow(non_camel_case_types)]
pub struct gdn_options {
    state: Mutex<HandleState>,
}

struct HandleState {
    /// What builds get: a snapshot, shared, copied on change.
    options: Arc<ImageOptions>,
    /// The C callback behind `options.progress`, if any: its identity tells
    /// a re-entrant build from a nested one.
    callback: Option<Arc<CProgress>>,
    /// Builds running with this handle.
    builds: usize,
    /// `gdn_options_free` was called while builds ran: the last one frees.
    freed: bool,
}

/// Called with the progress of a build: `bytes_done` of `bytes_total` bytes
/// of file data archived so far.  `userdata` is the pointer given to
/// `gdn_options_set_progress_callback`.
///
/// The callback is called on the thread that called `build_docker_image`,
/// only while that call runs, and never concurrently with itself for one
/// options handle (when two threads build with one handle, their calls are
/// serialised).  It must return normally: it may not unwind (C++
/// exceptions) or longjmp out (the build's worker threads would be left
/// running); to stop the build, request a cancellation (`gdn_cancel`).
///
/// Rules, enforced: the callback may not change its build's options handle
/// (the setters return `GDN_ERR_BUSY`), and may not start a build with that
/// handle or a copy of it (`gdn_options_clone`), which would wait for the
/// callback itself: `build_docker_image` returns `GDN_ERR_BUSY` at once.
/// It may start a build with an unrelated handle, and may free its build's
/// handle (see `gdn_options`).  It should not wait for another thread that
/// builds with its handle or a copy: that build's callbacks wait for this
/// one to return.
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

thread_local! {
    /// The callbacks running on this thread (their addresses), innermost
    /// last: a build that would report to one of them would wait for its
    /// own caller.
    static RUNNING_CALLBACKS: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// Removes a callback from `RUNNING_CALLBACKS` when its call ends.
struct RunningCallback;

impl Drop for RunningCallback {
    fn drop(&mut self) {
        let _ = RUNNING_CALLBACKS.try_with(|running| running.borrow_mut().pop());
    }
}

impl CProgress {
    fn id(self: &Arc<Self>) -> usize {
        Arc::as_ptr(self) as usize
    }

    fn running_on_this_thread(self: &Arc<Self>) -> bool {
        RUNNING_CALLBACKS.try_with(|running| running.borrow().contains(&self.id())).unwrap_or(false)
    }

    fn report(self: &Arc<Self>, progress: Progress) {
        let _turn = self.one_at_a_time.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let _running = RUNNING_CALLBACKS.try_with(|running| running.borrow_mut().push(self.id())).map(|()| RunningCallback);
        // SAFETY: the caller promised a callback that accepts its userdata.
        unsafe { (self.callback)(progress.bytes_done, progress.bytes_total, self.userdata) }
    }
}

fn busy(message: String) -> Error {
    Error::new(ErrorKind::Busy, message)
}

impl gdn_options {
    fn with(options: ImageOptions, callback: Option<Arc<CProgress>>) -> gdn_options {
        gdn_options {
            state: Mutex::new(HandleState { options: Arc::new(options), callback, builds: 0, freed: false }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HandleState> {
        // Nothing panics while the lock is held; if something did, the
        // state is still whole.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The state of a handle that may be used, or `GDN_ERR_BUSY` for one
    /// that was freed and waits for its builds to end.
    fn live(&self, function: &str) -> Result<MutexGuard<'_, HandleState>> {
        let state = self.lock();
        if state.freed {
            return Err(busy(format!(
                "{function}: the options handle was freed (gdn_options_free) and may not be used any more"
            )));
        }
        Ok(state)
    }

    /// The state of a handle that may change: live, and no build uses it.
    fn writable(&self, function: &str) -> Result<MutexGuard<'_, HandleState>> {
        let state = self.live(function)?;
        if state.builds > 0 {
            return Err(busy(format!(
                "{function}: the options handle is in use by {} running build{} (build_docker_image); \
                 it cannot change until {} returned: change a copy (gdn_options_clone) instead",
                state.builds,
                if state.builds == 1 { "" } else { "s" },
                if state.builds == 1 { "that build has" } else { "they have" },
            )));
        }
        Ok(state)
    }

    /// Applies `change` to the options, unless a build uses them.  The
    /// setters of `ImageOptions` change nothing when they fail.
    pub(crate) fn change(&self, function: &str, change: impl FnOnce(&mut ImageOptions) -> Result<()>) -> Result<()> {
        let mut state = self.writable(function)?;
        change(Arc::make_mut(&mut state.options))
    }

    /// Sets or removes the C progress callback.
    fn set_callback(&self, function: &str, callback: Option<Arc<CProgress>>) -> Result<()> {
        let mut state = self.writable(function)?;
        Arc::make_mut(&mut state.options).set_progress(callback.clone().map(|c| {
            Arc::new(move |progress: Progress| c.report(progress)) as crate::options::ProgressFn
        }));
        state.callback = callback;
        Ok(())
    }

    /// The options as they are now (a snapshot).
    #[cfg(test)]
    pub(crate) fn snapshot(&self) -> Arc<ImageOptions> {
        self.lock().options.clone()
    }
}

/// The options of `options`, or the defaults for NULL, as a build would
/// use them now: for the functions that answer from options without
/// building (`gdn_default_output_name`).
///
/// # Safety
/// `options` is NULL or a live handle.
pub(crate) unsafe fn options_or_defaults(function: &str, options: *const gdn_options) -> Result<Arc<ImageOptions>> {
    match options.as_ref() {
        None => Ok(Arc::new(ImageOptions::new())),
        Some(handle) => Ok(handle.live(function)?.options.clone()),
    }
}

/// A build's use of a handle: it holds the handle's options for the build,
/// and, when it ends, frees the handle if `gdn_options_free` was called
/// meanwhile and it was the last build using it.
pub(crate) struct BuildUse {
    handle: *mut gdn_options,
    pub(crate) options: Arc<ImageOptions>,
}

impl Drop for BuildUse {
    fn drop(&mut self) {
        // SAFETY: the handle stays allocated while `builds` > 0.
        let handle = unsafe { &*self.handle };
        let release = {
            let mut state = handle.lock();
            state.builds -= 1;
            state.freed && state.builds == 0
        };
        if release {
            // SAFETY: freed by the caller, and no build uses it any more.
            drop(unsafe { Box::from_raw(self.handle) });
        }
    }
}

/// Registers a build with the handle `options`: refused when the handle was
/// freed, or when the calling thread is inside the handle's own progress
/// callback (the build would wait for the callback to return).
///
/// # Safety
/// `options` is a live handle (or one freed while builds use it).
pub(crate) unsafe fn begin_build(function: &str, options: *const gdn_options) -> Result<BuildUse> {
    let handle = arg_ref(function, "options", options)?;
    let mut state = handle.live(function)?;
    if state.callback.as_ref().is_some_and(|c| c.running_on_this_thread()) {
        return Err(busy(format!(
            "{function}: called from the progress callback of a build that uses the same options handle \
             (or a copy of it); a progress callback may not start a build with its own build's options, \
             which would wait for the callback itself: give the nested build a handle of its own"
        )));
    }
    state.builds += 1;
    Ok(BuildUse { handle: options.cast_mut(), options: state.options.clone() })
}

/// The handle behind a setter's `options` argument, or
/// `GDN_ERR_NULL_ARGUMENT` naming it.
///
/// # Safety
/// A non-NULL `options` is a live handle (or one freed while builds use it).
pub(crate) unsafe fn arg_handle<'a>(function: &str, options: *mut gdn_options) -> Result<&'a gdn_options> {
    arg_ref(function, "options", options.cast_const())
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
        let handle = Box::into_raw(Box::new(gdn_options::with(ImageOptions::new(), None)));
        super::error::clear_last_error();
        handle
    })
}

/// Creates a copy of the options handle `options`: the same values, the
/// same progress callback and userdata, the same cancellation flag (a
/// request stops the builds of both).  The copy is independent: changing
/// or freeing one leaves the other as it is.  Copying a handle that builds
/// are using is allowed: the copy may be changed at once.
///
/// Ownership: the caller owns the copy and must free it with
/// `gdn_options_free`.  Returns NULL when `options` is NULL or freed, with
/// the message in `gdn_last_error_message`.
///
/// # Safety
/// `options` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn gdn_options_clone(options: *const gdn_options) -> *mut gdn_options {
    const F: &str = "gdn_options_clone";
    let mut copy = std::ptr::null_mut();
    let _ = call(F, || {
        let handle = arg_ref(F, "options", options)?;
        let state = handle.live(F)?;
        let options = ImageOptions::clone(&state.options);
        copy = Box::into_raw(Box::new(gdn_options::with(options, state.callback.clone())));
        Ok(())
    });
    copy
}

/// Frees an options handle made by `gdn_options_new` or
/// `gdn_options_clone`.  NULL is accepted and ignored.  The handle must not
/// be used afterwards.  Builds that already returned are unaffected: they
/// kept nothing of it.  Builds that are still running with it (this may be
/// called from their progress callback, or from another thread) finish with
/// their options, and the last of them releases the handle.
///
/// # Safety
/// `options` is NULL or a handle from `gdn_options_new` or
/// `gdn_options_clone` not freed yet.
#[no_mangle]
pub unsafe extern "C" fn gdn_options_free(options: *mut gdn_options) {
    if options.is_null() {
        return;
    }
    // Dropping runs no caller code; should it ever panic, the panic stops
    // here and the last error is left alone, as documented.
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let release = {
            let mut state = (*options).lock();
            let release = state.builds == 0 && !state.freed;
            state.freed = true;
            release
        };
        if release {
            drop(Box::from_raw(options));
        }
    }));
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
        let options = arg_handle(F, options)?;
        let dir = arg_str(F, "dir", dir)?;
        options.change(F, |o| o.set_store_dir(dir.as_ref()))
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
        let options = arg_handle(F, options)?;
        let file = arg_path(F, "file", file)?;
        options.change(F, |o| o.set_database(&file))
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
        let options = arg_handle(F, options)?;
        let tag = arg_str(F, "tag", tag)?;
        options.change(F, |o| o.add_tag(tag))
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
        let options = arg_handle(F, options)?;
        let program = arg_str(F, "program", program)?;
        options.change(F, |o| o.set_entry_point(program))
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
        let options = arg_handle(F, options)?;
        let arg = arg_str(F, "arg", arg)?;
        options.change(F, |o| o.add_entry_point_argument(arg))
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
        let options = arg_handle(F, options)?;
        let arg = arg_str(F, "arg", arg)?;
        options.change(F, |o| o.add_cmd(arg))
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
        let options = arg_handle(F, options)?;
        let binding = arg_str(F, "name_eq_value", name_eq_value)?;
        options.change(F, |o| o.add_env(binding))
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
        let options = arg_handle(F, options)?;
        let dir = arg_str(F, "dir", dir)?;
        options.change(F, |o| o.set_working_dir(dir))
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
        let options = arg_handle(F, options)?;
        let user = arg_str(F, "user", user)?;
        options.change(F, |o| o.set_user(user))
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
        let options = arg_handle(F, options)?;
        let key = arg_str(F, "key", key)?;
        let value = arg_str(F, "value", value)?;
        options.change(F, |o| o.add_label(key, value))
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
        let options = arg_handle(F, options)?;
        let port = arg_str(F, "port", port)?;
        options.change(F, |o| o.add_exposed_port(port))
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
        let options = arg_handle(F, options)?;
        let path = arg_str(F, "path", path)?;
        options.change(F, |o| o.add_volume(path))
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
        let options = arg_handle(F, options)?;
        let link = arg_str(F, "link", link)?;
        let target = arg_str(F, "target", target)?;
        options.change(F, |o| o.add_symlink(link, target))
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
        let options = arg_handle(F, options)?;
        let path = arg_str(F, "path", path)?;
        options.change(F, |o| o.add_directory(path, uid, gid, mode))
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
        let options = arg_handle(F, options)?;
        let image_path = arg_str(F, "image_path", image_path)?;
        let source = arg_path(F, "source", source)?;
        options.change(F, |o| o.add_file(image_path, source))
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
        let options = arg_handle(F, options)?;
        let old_prefix = arg_str(F, "old_prefix", old_prefix)?;
        let new_prefix = arg_str(F, "new_prefix", new_prefix)?;
        options.change(F, |o| o.add_transformation(old_prefix, new_prefix))
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
    call(F, || arg_handle(F, options)?.change(F, |o| o.set_max_layers(n)))
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
        let options = arg_handle(F, options)?;
        let system = arg_str(F, "system", system)?;
        options.change(F, |o| o.set_system(system))
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
    call(F, || arg_handle(F, options)?.change(F, |o| o.set_creation_time(seconds_since_epoch)))
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
        let options = arg_handle(F, options)?;
        let compression = Compression::parse(arg_str(F, "name", name)?)?;
        options.change(F, |o| o.set_compression(compression, (level != 0).then_some(level)))
    })
}

/// Puts the store database in the image (non-zero `enable`), as
/// `guix pack --localstatedir` does: `/var/guix/db/db.sqlite` registering
/// exactly the closure, each item with the hash, size, references, deriver
/// and registration time the store database (`gdn_options_set_database`)
/// gives it, and root's profile `guix-profile` linking to the item, which
/// makes it a GC root.  A build with it and without a database fails with
/// `GDN_ERR_INVALID_ARGUMENT`: the hashes cannot be made up.  0 (the
/// default) turns it off.  Fails with `GDN_ERR_BUSY`, as every setter,
/// while a build uses the handle.
///
/// # Safety
/// `options` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn gdn_options_set_localstatedir(options: *mut gdn_options, enable: i32) -> gdn_result {
    const F: &str = "gdn_options_set_localstatedir";
    call(F, || {
        let options = arg_handle(F, options)?;
        options.change(F, |o| {
            o.set_localstatedir(enable != 0);
            Ok(())
        })
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
        let options = arg_handle(F, options)?;
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        options.change(F, |o| o.set_threads(n))
    })
}

/// Sets the progress callback (see `gdn_progress_callback`) and the pointer
/// it receives; NULL `callback` removes it.  The library never reads or
/// frees `userdata`: it must stay valid for every build that uses this
/// handle or a copy of it (`gdn_options_clone`), until the callback is
/// replaced or the handles freed.  Fails with `GDN_ERR_BUSY`, as every
/// setter, while a build uses the handle.
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
        let options = arg_handle(F, options)?;
        let callback = callback.map(|callback| Arc::new(CProgress { callback, userdata, one_at_a_time: Mutex::new(()) }));
        options.set_callback(F, callback)
    })
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
    use crate::ffi::{GDN_ERR_INVALID_ARGUMENT, GDN_ERR_NULL_ARGUMENT, GDN_OK};
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

    use crate::ffi::error::expect_last_error as last_error;

    #[test]
    fn setters_fill_the_options_and_check_values() {
        unsafe {
            let o = gdn_options_new();
            assert!(!o.is_null());
            assert_eq!(gdn_options_add_tag(o, c"hello".as_ptr()), GDN_OK);
            assert_eq!(gdn_options_set_max_layers(o, 3), GDN_OK);
            assert_eq!(gdn_options_set_compression(o, c"zstd".as_ptr(), 0), GDN_OK);
            assert_eq!(gdn_options_add_label(o, c"k".as_ptr(), c"v".as_ptr()), GDN_OK);
            let inner = (*o).snapshot();
            assert_eq!(inner.tags, ["hello:latest"]);
            assert_eq!(inner.max_layers, Some(3));
            assert_eq!(inner.compression, Compression::Zstd);
            assert_eq!(inner.compression_level, None);
            assert_eq!(inner.labels["k"], "v");

            assert_eq!(gdn_options_set_max_layers(o, 126), GDN_ERR_INVALID_ARGUMENT);
            assert!(last_error().contains("max-layers 126"));
            assert_eq!((*o).snapshot().max_layers, Some(3), "a refused value changes nothing");
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
            let progress = (*o).snapshot().progress.clone().unwrap();
            std::thread::scope(|s| {
                for i in 0..4 {
                    let progress = progress.clone();
                    s.spawn(move || progress(Progress { bytes_done: i, bytes_total: 10, ..Default::default() }));
                }
            });
            assert_eq!(CALLS.load(Ordering::SeqCst), 4);
            assert_eq!(gdn_options_set_progress_callback(o, None, std::ptr::null_mut()), GDN_OK);
            assert!((*o).snapshot().progress.is_none());
            gdn_options_free(o);
        }
    }

    #[test]
    fn a_handle_in_use_refuses_changes_and_is_released_by_its_last_build() {
        unsafe {
            let o = gdn_options_new();
            assert_eq!(gdn_options_add_tag(o, c"before".as_ptr()), GDN_OK);
            let first = begin_build("build_docker_image", o).unwrap();
            let second = begin_build("build_docker_image", o).unwrap();
            assert_eq!(gdn_options_add_tag(o, c"during".as_ptr()), crate::ffi::GDN_ERR_BUSY);
            let message = last_error();
            assert!(message.starts_with("gdn_options_add_tag: the options handle is in use by 2 running builds"), "{message}");
            assert_eq!(gdn_options_set_progress_callback(o, Some(count), std::ptr::null_mut()), crate::ffi::GDN_ERR_BUSY);

            // A copy may change while the original is in use.
            let copy = gdn_options_clone(o);
            assert!(!copy.is_null());
            assert_eq!(gdn_options_add_tag(copy, c"copy".as_ptr()), GDN_OK);
            assert_eq!((*copy).snapshot().tags, ["before:latest", "copy:latest"]);

            gdn_options_free(o);
            assert_eq!(gdn_options_add_tag(o, c"after".as_ptr()), crate::ffi::GDN_ERR_BUSY);
            assert!(last_error().contains("was freed"));
            assert!(gdn_options_clone(o).is_null());
            assert!(begin_build("build_docker_image", o).is_err());
            drop(first);
            // The build kept the options it started with.
            assert_eq!(second.options.tags, ["before:latest"]);
            drop(second); // releases the handle (valgrind and miri would see a leak otherwise)
            assert_eq!((*copy).snapshot().tags, ["before:latest", "copy:latest"]);
            gdn_options_free(copy);
            assert!(gdn_options_clone(std::ptr::null()).is_null());
            assert_eq!(last_error(), "gdn_options_clone: argument 'options' is NULL");
        }
    }

    unsafe extern "C" fn nested_build(_done: u64, _total: u64, userdata: *mut c_void) {
        let options = userdata as *const gdn_options;
        let refused = begin_build("build_docker_image", options).err().map(|e| (e.kind, e.message));
        NESTED.with(|n| *n.borrow_mut() = refused);
    }

    thread_local! {
        static NESTED: RefCell<Option<(ErrorKind, String)>> = const { RefCell::new(None) };
    }

    #[test]
    fn a_callback_may_not_build_with_its_own_options() {
        unsafe {
            let o = gdn_options_new();
            assert_eq!(gdn_options_set_progress_callback(o, Some(nested_build), o.cast()), GDN_OK);
            let progress = (*o).snapshot().progress.clone().unwrap();
            progress(Progress::default());
            let (kind, message) = NESTED.with(|n| n.borrow_mut().take()).expect("the nested build was refused");
            assert_eq!(kind, ErrorKind::Busy);
            assert!(message.contains("progress callback"), "{message}");
            // Outside the callback the same handle builds.
            drop(begin_build("build_docker_image", o).unwrap());
            gdn_options_free(o);
        }
    }
}

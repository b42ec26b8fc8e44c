//! The layer cache's options: where it lives and whether it is used.  Each
//! delegates to the `ImageOptions` setter of the same name, as the command
//! line's `--cache-dir` and `--no-cache` do.

use std::ffi::c_char;

use super::options::{arg_handle, gdn_options};
use super::{arg_path, call, gdn_result};

/// Keeps the layer cache in `dir` (made when first written; a relative
/// name is taken from the current directory now), as `--cache-dir DIR`;
/// NULL: the default, `$XDG_CACHE_HOME/guix-docker-native`, else
/// `$HOME/.cache/guix-docker-native`.  The name is copied.
///
/// # Safety
/// `options` is NULL or a live handle; `dir` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn gdn_options_set_cache_dir(options: *mut gdn_options, dir: *const c_char) -> gdn_result {
    const F: &str = "gdn_options_set_cache_dir";
    call(F, || {
        let options = arg_handle(F, options)?;
        if dir.is_null() {
            return options.change(F, |o| {
                o.reset_cache_dir();
                Ok(())
            });
        }
        let dir = arg_path(F, "dir", dir)?;
        options.change(F, |o| o.set_cache_dir(&dir))
    })
}

/// Whether builds use and update the layer cache: non-zero (the default),
/// or 0, as `--no-cache`.  The image is the same either way.
///
/// # Safety
/// `options` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn gdn_options_set_cache(options: *mut gdn_options, enabled: i32) -> gdn_result {
    const F: &str = "gdn_options_set_cache";
    call(F, || {
        arg_handle(F, options)?.change(F, |o| {
            o.set_cache(enabled != 0);
            Ok(())
        })
    })
}

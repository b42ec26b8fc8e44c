//! The options of a push to a registry (a `docker://HOST[:PORT]/REPOSITORY[:TAG]`
//! destination): credentials, certificates, TLS, the manifest format and
//! how many layers upload at once.  Each delegates to the `ImageOptions`
//! setter of the same name, as the command line's `--creds`,
//! `--cert-dir`, `--tls-verify`, `--manifest-format` and `--jobs` do.

use std::ffi::c_char;

use super::options::{arg_handle, gdn_options};
use super::{arg_bytes, arg_path, arg_str, call, gdn_result};
use crate::error::Error;
use crate::registry::ManifestFormat;

/// Sets the credentials for the registry pushed to, as the command line's
/// `--creds USER:PASSWORD`: `user` (without ':') and `password`, both
/// copied and UTF-8.  NULL `user` forgets them: the credentials are then
/// looked up in the auth files and credential helpers (see README, "Push
/// to a registry").  No message, of this function or of a build, holds the
/// password.
///
/// # Safety
/// `options` is NULL or a live handle; `user` and `password` are NULL or
/// NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn gdn_options_set_registry_credentials(
    options: *mut gdn_options,
    user: *const c_char,
    password: *const c_char,
) -> gdn_result {
    const F: &str = "gdn_options_set_registry_credentials";
    call(F, || {
        let options = arg_handle(F, options)?;
        if user.is_null() {
            return options.change(F, |o| {
                o.clear_registry_credentials();
                Ok(())
            });
        }
        let user = arg_str(F, "user", user)?;
        // Not arg_str: its error would quote the value.
        let password = std::str::from_utf8(arg_bytes(F, "password", password)?)
            .map_err(|_| Error::invalid_argument(format!("{F}: argument 'password' is not valid UTF-8")))?;
        options.change(F, |o| o.set_registry_credentials(user, password))
    })
}

/// Sets a directory of CA certificates (its `*.crt` files, PEM) trusted for the
/// registry besides the system's, as skopeo's `--cert-dir`; NULL: the
/// system's alone.  The name is copied.
///
/// # Safety
/// `options` is NULL or a live handle; `dir` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn gdn_options_set_cert_dir(options: *mut gdn_options, dir: *const c_char) -> gdn_result {
    const F: &str = "gdn_options_set_cert_dir";
    call(F, || {
        let options = arg_handle(F, options)?;
        let dir = if dir.is_null() { None } else { Some(arg_path(F, "dir", dir)?) };
        options.change(F, |o| o.set_cert_dir(dir.as_deref()))
    })
}

/// Whether the registry's certificate is checked (non-zero, the default);
/// 0, as `--tls-verify=false`: any certificate is accepted, and a registry
/// that does not speak TLS is spoken to in plain HTTP.
///
/// # Safety
/// `options` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn gdn_options_set_tls_verify(options: *mut gdn_options, verify: i32) -> gdn_result {
    const F: &str = "gdn_options_set_tls_verify";
    call(F, || {
        arg_handle(F, options)?.change(F, |o| {
            o.set_tls_verify(verify != 0);
            Ok(())
        })
    })
}

/// The manifest a push writes: "oci" (the default) or "docker" (Docker's
/// schema 2, for registries and tools that need it; a push of zstd layers
/// with it fails with `GDN_ERR_INVALID_ARGUMENT`).
///
/// # Safety
/// `options` is NULL or a live handle; `format` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn gdn_options_set_manifest_format(options: *mut gdn_options, format: *const c_char) -> gdn_result {
    const F: &str = "gdn_options_set_manifest_format";
    call(F, || {
        let options = arg_handle(F, options)?;
        let format = ManifestFormat::parse(arg_str(F, "format", format)?)?;
        options.change(F, |o| {
            o.set_manifest_format(format);
            Ok(())
        })
    })
}

/// At most `n` layers upload at once (1 to 64; 0: the default, 4).
///
/// # Safety
/// `options` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn gdn_options_set_push_jobs(options: *mut gdn_options, n: u32) -> gdn_result {
    const F: &str = "gdn_options_set_push_jobs";
    call(F, || {
        let options = arg_handle(F, options)?;
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        options.change(F, |o| o.set_push_jobs(n))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::options::{gdn_options_free, gdn_options_new};
    use crate::ffi::{GDN_ERR_INVALID_ARGUMENT, GDN_ERR_NULL_ARGUMENT, GDN_OK};
    use std::ffi::CString;

    use crate::ffi::error::expect_last_error as last_error;

    #[test]
    fn registry_setters_fill_the_options_and_check_values() {
        unsafe {
            let o = gdn_options_new();
            let c = |s: &str| CString::new(s).unwrap();
            let (user, password) = (c("me"), c("hunter2"));
            assert_eq!(gdn_options_set_registry_credentials(o, user.as_ptr(), password.as_ptr()), GDN_OK);
            let (bad_user, bad_password) = (c("m:e"), c("hunter2"));
            assert_eq!(
                gdn_options_set_registry_credentials(o, bad_user.as_ptr(), bad_password.as_ptr()),
                GDN_ERR_INVALID_ARGUMENT
            );
            assert!(!last_error().contains("hunter2"), "{}", last_error());
            let invalid = [0xffu8, 0];
            assert_eq!(
                gdn_options_set_registry_credentials(o, user.as_ptr(), invalid.as_ptr().cast()),
                GDN_ERR_INVALID_ARGUMENT
            );
            assert!(last_error().contains("'password' is not valid UTF-8") && !last_error().contains('\u{fffd}'));
            assert_eq!(gdn_options_set_registry_credentials(o, user.as_ptr(), std::ptr::null()), GDN_ERR_NULL_ARGUMENT);
            let dir = c("/etc/certs");
            assert_eq!(gdn_options_set_cert_dir(o, dir.as_ptr()), GDN_OK);
            assert_eq!(gdn_options_set_tls_verify(o, 0), GDN_OK);
            let docker = c("docker");
            assert_eq!(gdn_options_set_manifest_format(o, docker.as_ptr()), GDN_OK);
            assert_eq!(gdn_options_set_push_jobs(o, 7), GDN_OK);
            let snapshot = (*o).snapshot();
            assert_eq!(snapshot.registry_user(), Some("me"));
            assert_eq!(snapshot.cert_dir(), Some(std::path::Path::new("/etc/certs")));
            assert!(!snapshot.tls_verify());
            assert_eq!(snapshot.manifest_format(), ManifestFormat::Docker);
            assert_eq!(snapshot.push_jobs(), 7);
            let v1 = c("v1");
            assert_eq!(gdn_options_set_manifest_format(o, v1.as_ptr()), GDN_ERR_INVALID_ARGUMENT);
            assert!(last_error().contains("manifest format 'v1'"), "{}", last_error());
            assert_eq!(gdn_options_set_push_jobs(o, 65), GDN_ERR_INVALID_ARGUMENT);
            assert_eq!(gdn_options_set_registry_credentials(o, std::ptr::null(), std::ptr::null()), GDN_OK);
            assert_eq!(gdn_options_set_cert_dir(o, std::ptr::null()), GDN_OK);
            let snapshot = (*o).snapshot();
            assert_eq!((snapshot.registry_user(), snapshot.cert_dir()), (None, None));
            gdn_options_free(o);
        }
    }

    /// `gdn_build_image` takes a `docker://` destination to a push: an
    /// unreachable registry is an output error naming it.
    #[test]
    fn gdn_build_image_pushes_to_docker_destinations() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("gnu/store");
        let item = store.join("0123456789abcdfghijklmnpqrsvwxyz-tiny");
        std::fs::create_dir_all(item.join("bin")).unwrap();
        std::fs::write(item.join("bin/x"), "x").unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let c = |s: String| CString::new(s).unwrap();
        let (store_c, item_c) = (c(store.display().to_string()), c(item.display().to_string()));
        let destination = c(format!("docker://127.0.0.1:{port}/tiny:1"));
        unsafe {
            let o = gdn_options_new();
            crate::ffi::options::gdn_options_set_store_dir(o, store_c.as_ptr());
            gdn_options_set_tls_verify(o, 0);
            let r = crate::ffi::image::gdn_build_image(destination.as_ptr(), item_c.as_ptr(), std::ptr::null(), 0, o);
            assert_eq!(r, crate::ffi::GDN_ERR_OUTPUT);
            let message = last_error();
            assert!(message.contains(&format!("registry 127.0.0.1:{port}, repository tiny: cannot reach")), "{message}");
            gdn_options_free(o);
        }
    }
}

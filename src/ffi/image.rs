//! `gdn_build_image` and `gdn_build_platform_image`: builds to a
//! destination string, as the command line's `-o` takes it (one parser,
//! `crate::destination::parse_destination`).

use std::ffi::{c_char, OsStr};
use std::os::unix::ffi::OsStrExt;

use super::build::{closure_paths, store_path};
use super::options::{begin_build, gdn_options};
use super::{arg_bytes, arg_str, call, gdn_result};
use crate::destination::{parse_destination, Destination};
use crate::error::{Error, ErrorKind, Result};
use crate::image::PlatformItem;
use crate::options::ImageOptions;

/// Runs `build` with the options behind `options` (held, so that they
/// neither change nor go during the build), or the defaults for NULL.
///
/// # Safety
/// `options` is NULL or a live handle.
unsafe fn with_options(function: &str, options: *const gdn_options, build: impl FnOnce(&ImageOptions) -> Result<()>) -> Result<()> {
    if options.is_null() {
        return build(&ImageOptions::new());
    }
    let handle_use = begin_build(function, options)?;
    build(&handle_use.options)
}

/// The destination argument, parsed.
///
/// # Safety
/// `destination` is NULL or a NUL-terminated string.
unsafe fn destination_arg(function: &str, destination: *const c_char) -> Result<Destination> {
    let bytes = arg_bytes(function, "destination", destination)?;
    parse_destination(OsStr::from_bytes(bytes)).map_err(|e| Error::new(e.kind, format!("{function}: {}", e.message)))
}

/// Builds the image of the store item `item` and its closure, and writes
/// it to `destination`, given as the command line's `-o` takes it (its
/// name is taken as bytes):
///
/// - "oci:DIR[:REF]": an OCI image layout directory, created or added to
///   (an entry of the ref REF is replaced, the others stay; `index.json`
///   is replaced atomically);
/// - "oci-archive:FILE[:REF]": that layout as one tar file (a regular
///   file);
/// - "docker-archive:FILE", a plain "FILE", or "-" (standard output): the
///   docker-archive, as `build_docker_image` writes it;
/// - "docker://HOST[:PORT]/REPOSITORY[:TAG]": pushed to a registry, under
///   TAG and each tag's tag part (the options' registry setters, `GDN_1.2`,
///   say how; a registry's failure is `GDN_ERR_OUTPUT`, naming the registry
///   and the repository).
///
/// REF, the image's name in the layout's index, defaults to the first tag.
/// DIR and FILE end at the first ':' after the transport; a file whose
/// name starts with a transport and ':' is given as "./NAME".  An unknown
/// transport ("dir:", "docker:NAME") or a bad REF is
/// `GDN_ERR_INVALID_ARGUMENT`, before anything is read or written.
///
/// `item`, `closure`, `closure_len` and `options` are as for
/// `build_docker_image`.  After a failure nothing this call wrote is left:
/// no file, and a layout as it was before.
///
/// Returns `GDN_OK`, or a result code whose message
/// `gdn_last_error_message` returns.
///
/// Ownership: the library reads the arguments only during the call.
///
/// Thread-safety: as `build_docker_image` (builds into one layout are
/// serialized by a lock on its directory).
///
/// # Safety
/// Each pointer is NULL or valid as described above; `closure` points to
/// `closure_len` pointers.
#[no_mangle]
pub unsafe extern "C" fn gdn_build_image(
    destination: *const c_char,
    item: *const c_char,
    closure: *const *const c_char,
    closure_len: usize,
    options: *const gdn_options,
) -> gdn_result {
    const F: &str = "gdn_build_image";
    call(F, || {
        let destination = destination_arg(F, destination)?;
        let item = store_path(F, "item", arg_bytes(F, "item", item)?)?;
        let closure = closure_paths(F, closure, closure_len)?;
        with_options(F, options, |o| crate::image::build_image(&[item], closure.as_deref(), &destination, o))
    })
}

/// Builds a multi-platform image: for each `i` below `count`, the image of
/// the store item `items[i]`, built for the Guix system `systems[i]`
/// ("x86_64-linux", "aarch64-linux", "armhf-linux", "i686-linux",
/// "riscv64-linux", "powerpc64le-linux", "mips64el-linux", or a GNU
/// triplet), for that system's platform (linux/amd64, linux/arm64 variant
/// v8, linux/arm variant v7, linux/386, ...), all under one OCI image
/// index at `destination` (as for `gdn_build_image`; REF defaults to the
/// first tag).  Each item's closure is computed (from the options'
/// database when one is set, else by scanning the store); each item is
/// its image's main item (a relative entry point or symlink target is
/// relative to it); every option applies to each image, but the options'
/// system, which `systems` replaces.  A blob the images share (a layer of
/// the same bytes) is stored once.
///
/// `destination` must be "oci:..." or "oci-archive:..." when `count` is
/// more than 1 (a docker-archive has no index: `GDN_ERR_INVALID_ARGUMENT`);
/// one platform may go to any destination.  `count` 0, an unknown system,
/// or two items for one platform is `GDN_ERR_INVALID_ARGUMENT`.  Every
/// image is planned before the destination is touched; after a failure
/// nothing this call wrote is left.
///
/// Returns `GDN_OK`, or a result code whose message
/// `gdn_last_error_message` returns.
///
/// Ownership: the library reads the arguments only during the call.
///
/// Thread-safety: as `build_docker_image`.
///
/// # Safety
/// `destination` is NULL or a NUL-terminated string; `systems` and `items`
/// are NULL or point to `count` pointers each; `options` is NULL or a live
/// handle.
#[no_mangle]
pub unsafe extern "C" fn gdn_build_platform_image(
    destination: *const c_char,
    systems: *const *const c_char,
    items: *const *const c_char,
    count: usize,
    options: *const gdn_options,
) -> gdn_result {
    const F: &str = "gdn_build_platform_image";
    call(F, || {
        let destination = destination_arg(F, destination)?;
        if count > 0 && (systems.is_null() || items.is_null()) {
            let name = if systems.is_null() { "systems" } else { "items" };
            return Err(Error::new(ErrorKind::NullArgument, format!("{F}: argument '{name}' is NULL but 'count' is {count}")));
        }
        if count > isize::MAX as usize / std::mem::size_of::<*const c_char>() {
            return Err(Error::invalid_argument(format!("{F}: argument 'count' ({count}) is too large")));
        }
        let mut platforms = Vec::with_capacity(count);
        if count > 0 {
            let systems = std::slice::from_raw_parts(systems, count);
            let items = std::slice::from_raw_parts(items, count);
            for (i, (&system, &item)) in systems.iter().zip(items).enumerate() {
                let system = arg_str(F, &format!("systems[{i}]"), system)?;
                let name = format!("items[{i}]");
                let item = store_path(F, &name, arg_bytes(F, &name, item)?)?;
                platforms.push(PlatformItem { system: system.to_string(), item, closure: None });
            }
        }
        with_options(F, options, |o| crate::image::build_platform_images(&platforms, &destination, o))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::{GDN_ERR_INVALID_ARGUMENT, GDN_ERR_NULL_ARGUMENT};

    use crate::ffi::error::expect_last_error as last_error;

    #[test]
    fn arguments_are_checked_before_any_work() {
        let item = c"/gnu/store/00000000000000000000000000000000-x".as_ptr();
        let null: *const c_char = std::ptr::null();
        let (no_list, no_options): (*const *const c_char, *const gdn_options) = (std::ptr::null(), std::ptr::null());
        unsafe {
            assert_eq!(gdn_build_image(null, item, no_list, 0, no_options), GDN_ERR_NULL_ARGUMENT);
            assert_eq!(last_error(), "gdn_build_image: argument 'destination' is NULL");
            assert_eq!(gdn_build_image(c"dir:/tmp/x".as_ptr(), item, no_list, 0, no_options), GDN_ERR_INVALID_ARGUMENT);
            assert!(last_error().starts_with("gdn_build_image: output 'dir:/tmp/x': unknown transport 'dir'"), "{}", last_error());
            assert_eq!(gdn_build_image(c"oci:/tmp/x:Bad Ref".as_ptr(), item, no_list, 0, no_options), GDN_ERR_INVALID_ARGUMENT);
            assert!(last_error().contains("reference 'Bad Ref'"));
            assert_eq!(gdn_build_image(c"oci:/tmp/x".as_ptr(), null, no_list, 0, no_options), GDN_ERR_NULL_ARGUMENT);
            assert_eq!(last_error(), "gdn_build_image: argument 'item' is NULL");

            let dest = c"oci:/tmp/gdn-never-made".as_ptr();
            assert_eq!(gdn_build_platform_image(dest, no_list, no_list, 2, no_options), GDN_ERR_NULL_ARGUMENT);
            assert!(last_error().contains("'systems' is NULL but 'count' is 2"));
            let systems = [c"x86_64-linux".as_ptr(), null];
            let items = [item, item];
            assert_eq!(gdn_build_platform_image(dest, systems.as_ptr(), items.as_ptr(), 2, no_options), GDN_ERR_NULL_ARGUMENT);
            assert_eq!(last_error(), "gdn_build_platform_image: argument 'systems[1]' is NULL");
            assert_eq!(gdn_build_platform_image(dest, no_list, no_list, 0, no_options), GDN_ERR_INVALID_ARGUMENT);
            assert!(last_error().contains("no platform given"));
            assert!(!std::path::Path::new("/tmp/gdn-never-made").exists());
        }
    }
}

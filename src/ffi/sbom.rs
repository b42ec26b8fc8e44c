//! The SBOM setters of the options handle: the formats, the file, the
//! licences (see `crate::sbom`).  Added in `GDN_1.2`.

use std::ffi::c_char;

use super::options::{arg_handle, gdn_options};
use super::{arg_path, arg_str, call, gdn_result};
use crate::sbom::SbomFormat;

/// Asks for an SBOM of the image, in the format `format`: `"spdx"` (SPDX
/// 2.3 JSON) or `"cyclonedx"` (CycloneDX 1.5 JSON); call it once per format
/// (asking twice for one is asking once).  The SBOM lists every store item
/// of the closure (name and version split from the store name as Guix
/// splits them, store path, purl `pkg:guix/NAME@VERSION`, the NAR hash
/// and references the store database gives, `NOASSERTION` without one)
/// and the extra directories, symlinks and files.  It is written beside the
/// image: to the file of `gdn_options_set_sbom_output`, by default to the
/// output file's name followed by `.spdx.json` or `.cdx.json`; a build to
/// standard output (`"-"`) without `gdn_options_set_sbom_output` fails with
/// `GDN_ERR_INVALID_ARGUMENT`.  The files are named just before the image
/// is, and a build that fails leaves neither.  An unknown format is
/// `GDN_ERR_INVALID_ARGUMENT`.
///
/// # Safety
/// `options` is NULL or a live handle; `format` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn gdn_options_add_sbom(options: *mut gdn_options, format: *const c_char) -> gdn_result {
    const F: &str = "gdn_options_add_sbom";
    call(F, || {
        let options = arg_handle(F, options)?;
        let format = SbomFormat::parse(arg_str(F, "format", format)?)?;
        options.change(F, |o| {
            o.add_sbom(format);
            Ok(())
        })
    })
}

/// Writes the SBOM to `file` (taken as bytes, copied): with one format,
/// `file` itself; with several, `file` followed by `.spdx.json` and
/// `.cdx.json`.  `file` is an output as the image's is (a regular file is
/// written unnamed and named at the end); the image's own output, the
/// store database and the store are refused (`GDN_ERR_OUTPUT`).  Without
/// `gdn_options_add_sbom` a build fails with `GDN_ERR_INVALID_ARGUMENT`.
///
/// # Safety
/// `options` is NULL or a live handle; `file` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn gdn_options_set_sbom_output(options: *mut gdn_options, file: *const c_char) -> gdn_result {
    const F: &str = "gdn_options_set_sbom_output";
    call(F, || {
        let options = arg_handle(F, options)?;
        let file = arg_path(F, "file", file)?;
        options.change(F, |o| o.set_sbom_output(&file))
    })
}

/// Declares the licence of the store item `item` (its absolute path) in
/// the SBOM: `expression` is an SPDX licence expression
/// (`"GPL-3.0-or-later"`, `"MIT OR Apache-2.0"`, `"LicenseRef-NAME"`),
/// checked for its syntax (a Guix licence name such as `"GPL 3+"` is
/// `GDN_ERR_INVALID_ARGUMENT`).  Items without one are `NOASSERTION`.
/// The last expression given for an item counts; a build whose closure
/// lacks `item` fails with `GDN_ERR_INVALID_ARGUMENT`.  The strings are
/// copied.
///
/// # Safety
/// `options` is NULL or a live handle; `item` and `expression` are NULL or
/// NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn gdn_options_add_sbom_license(
    options: *mut gdn_options,
    item: *const c_char,
    expression: *const c_char,
) -> gdn_result {
    const F: &str = "gdn_options_add_sbom_license";
    call(F, || {
        let options = arg_handle(F, options)?;
        let item = arg_path(F, "item", item)?;
        let expression = arg_str(F, "expression", expression)?;
        options.change(F, |o| o.add_sbom_license(&item, expression))
    })
}

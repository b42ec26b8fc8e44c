//! Generates the C header from `src/ffi` with cbindgen.
//!
//! The header goes to `$OUT_DIR/guix_docker_native.h`, whose path the crate
//! sees as `GDN_GENERATED_HEADER` (tests/header.rs compares it with the
//! checked-in `include/guix_docker_native.h`).  With `GDN_UPDATE_HEADER=1`
//! the checked-in copy is rewritten too.

use std::env;
use std::path::{Path, PathBuf};

/// The root of the ABI's modules; cbindgen follows its `mod` declarations,
/// and the header presents the items in that order.
const FFI_ROOT: &str = "src/ffi/mod.rs";

fn main() {
    let root = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));

    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-env-changed=GDN_UPDATE_HEADER");

    let header = generate_header(&root);
    let generated = out_dir.join("guix_docker_native.h");
    write_if_changed(&generated, &header);
    println!("cargo:rustc-env=GDN_GENERATED_HEADER={}", generated.display());

    if env::var_os("GDN_UPDATE_HEADER").is_some_and(|v| v == "1") {
        write_if_changed(&root.join("include/guix_docker_native.h"), &header);
    }
}

fn generate_header(root: &Path) -> Vec<u8> {
    let config = cbindgen::Config::from_file(root.join("cbindgen.toml"))
        .unwrap_or_else(|err| panic!("cbindgen.toml: {err}"));
    // Parsing the ABI's own modules (not the whole crate) keeps this fast
    // and needs no `cargo metadata`.
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(root.join(FFI_ROOT))
        .generate().unwrap_or_else(|err| panic!("cbindgen over src/ffi: {err}"));
    let mut header = Vec::new();
    bindings.write(&mut header);
    header
}

/// Writes only when the contents differ, so the file's mtime (and whatever
/// depends on it) changes only with the header.
fn write_if_changed(path: &Path, contents: &[u8]) {
    if std::fs::read(path).ok().as_deref() == Some(contents) {
        return;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap_or_else(|err| panic!("{}: {err}", dir.display()));
    }
    std::fs::write(path, contents).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
}

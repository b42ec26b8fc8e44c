//! Generates the C header from `src/ffi` with cbindgen, and links the
//! shared library as a versioned one.
//!
//! The header goes to `$OUT_DIR/guix_docker_native.h`, whose path the crate
//! sees as `GDN_GENERATED_HEADER` (tests/header.rs compares it with the
//! checked-in `include/guix_docker_native.h`).  With `GDN_UPDATE_HEADER=1`
//! the checked-in copy is rewritten too.
//!
//!
//! It also writes the GNU ld version script of the installed library,
//! `$OUT_DIR/guix_docker_native.map` (path in `GDN_VERSION_SCRIPT`, which
//! `gdn-install-files` copies out for the Makefile): it exports exactly the
//! header's functions, each with the symbol version of the release that
//! introduced it (`GDN_1`, `GDN_1.1`: see `LATER_VERSIONS`), and hides
//! everything else.  It is not given to
//! Cargo's own link of the cdylib: rustc passes its own unversioned script,
//! and every linker (GNU ld, gold, lld) gives the first script's assignment
//! precedence, so the Makefile links the installed library from the
//! staticlib with this script alone.

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

    let text = String::from_utf8(header).expect("cbindgen writes UTF-8");
    let script = version_script(&declared_functions(&text), abi_version(&text));
    let map = out_dir.join("guix_docker_native.map");
    write_if_changed(&map, script.as_bytes());
    println!("cargo:rustc-env=GDN_VERSION_SCRIPT={}", map.display());
}

/// The symbol versions after the first, oldest first, with the functions
/// each introduced.  A symbol keeps the version of the release that
/// introduced it forever, so that a program linked against an older
/// library still finds it, and a program using a newer function is told
/// by the dynamic linker, at start, that the library is too old: functions
/// added within ABI 1 go to a new node `GDN_1.N` (each release that adds
/// functions gets the next N), and every function not listed here is one
/// of the first release's, `GDN_1`.  A new ABI (a new SONAME) starts at
/// `GDN_2`.
const LATER_VERSIONS: &[(&str, &[&str])] = &[
    (
        "GDN_1.1",
        &["gdn_result_name", "gdn_store_item_name", "gdn_default_output_name", "gdn_tag_from_name", "gdn_string_free"],
    ),
    (
        "GDN_1.2",
        &[
            "gdn_options_add_sbom",
            "gdn_options_set_sbom_output",
            "gdn_options_add_sbom_license",
            "gdn_options_set_registry_credentials",
            "gdn_options_set_cert_dir",
            "gdn_options_set_tls_verify",
            "gdn_options_set_manifest_format",
            "gdn_options_set_push_jobs",
            "gdn_build_image",
            "gdn_build_platform_image",
        ],
    ),
    (
        "GDN_1.3",
        &[
            // The layer cache.
            "gdn_options_set_cache_dir",
            "gdn_options_set_cache",
        ],
    ),
];

/// `GDN_ABI_VERSION` from the header.
fn abi_version(header: &str) -> u32 {
    header
        .lines()
        .find_map(|line| line.strip_prefix("#define GDN_ABI_VERSION "))
        .and_then(|value| value.trim().parse().ok())
        .expect("the header defines GDN_ABI_VERSION as a number")
}

/// The names of the functions the header declares, in its order: in each
/// declaration (comments, preprocessor lines and typedefs aside), the name
/// before the first parenthesis.
fn declared_functions(header: &str) -> Vec<String> {
    let mut code = String::new();
    let mut rest = header;
    // Drop /* */ comments, then // comments and preprocessor lines.
    while let Some(start) = rest.find("/*") {
        code.push_str(&rest[..start]);
        let end = rest[start..].find("*/").expect("the header's comments are closed");
        rest = &rest[start + end + 2..];
    }
    code.push_str(rest);
    let code: String = code
        .lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .filter(|line| !line.trim_start().starts_with('#'))
        .map(|line| format!("{line}\n"))
        .collect();
    code.split(|c| c == ';' || c == '{' || c == '}')
        .map(str::trim)
        .filter(|decl| !decl.starts_with("typedef") && decl.contains('('))
        .map(|decl| {
            let before = decl[..decl.find('(').unwrap()].trim_end();
            let name_start = before.rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).map_or(0, |i| i + 1);
            before[name_start..].to_string()
        })
        .collect()
}

/// The GNU ld version script: one node per symbol version, each later one
/// inheriting the one before; everything else is local (hidden).
fn version_script(functions: &[String], abi: u32) -> String {
    let later: Vec<&str> = LATER_VERSIONS.iter().flat_map(|(_, names)| names.iter().copied()).collect();
    for name in &later {
        assert!(functions.iter().any(|f| f == name), "build.rs: {name} is in LATER_VERSIONS but not in the header");
    }
    let first_version = "GDN_1".to_string();
    let newest = LATER_VERSIONS.last().map_or(first_version.as_str(), |(version, _)| version);
    let newest_abi = newest.strip_prefix("GDN_").and_then(|v| v.split('.').next()).and_then(|v| v.parse::<u32>().ok());
    assert_eq!(newest_abi, Some(abi), "build.rs: GDN_ABI_VERSION is {abi} but the newest symbol version is {newest}");
    let first: Vec<&str> = functions.iter().map(String::as_str).filter(|f| !later.contains(f)).collect();
    let mut script = String::from("/* Generated by build.rs from the header's declarations. */\n");
    let mut node = |version: &str, names: &[&str], previous: Option<&str>| {
        script.push_str(&format!("{version} {{\n  global:\n"));
        for name in names {
            script.push_str(&format!("    {name};\n"));
        }
        match previous {
            None => script.push_str("  local:\n    *;\n};\n"),
            Some(p) => script.push_str(&format!("}} {p};\n")),
        }
    };
    node(&first_version, &first, None);
    let mut previous = first_version.as_str();
    for (version, names) in LATER_VERSIONS {
        node(version, names, Some(previous));
        previous = version;
    }
    script
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

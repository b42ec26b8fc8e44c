//! The checked-in C header must be what cbindgen generates from the code now.

use std::path::Path;

#[test]
fn checked_in_header_is_up_to_date() {
    let generated_path = env!("GDN_GENERATED_HEADER");
    let generated = std::fs::read_to_string(generated_path)
        .unwrap_or_else(|err| panic!("{generated_path}: {err}"));
    let checked_in_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("include/guix_docker_native.h");
    let checked_in = std::fs::read_to_string(&checked_in_path)
        .unwrap_or_else(|err| panic!("{}: {err}", checked_in_path.display()));
    if checked_in != generated {
        let line = checked_in
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| checked_in.lines().count().min(generated.lines().count()))
            + 1;
        panic!(
            "{} differs from the header cbindgen generates now ({generated_path}), \
             first at line {line}; regenerate it with: GDN_UPDATE_HEADER=1 cargo build --lib",
            checked_in_path.display()
        );
    }
}

#[test]
fn header_declares_the_whole_abi() {
    let header = std::fs::read_to_string(env!("GDN_GENERATED_HEADER")).unwrap();
    for declaration in [
        "typedef int32_t gdn_result;",
        "typedef struct gdn_options gdn_options;",
        "#define GDN_OK 0",
        "#define GDN_ERR_PANIC 10",
        "uint32_t gdn_abi_version(void);",
        "const char *gdn_version(void);",
        "const char *gdn_last_error_message(void);",
        "gdn_options *gdn_options_new(void);",
        "void gdn_options_free(gdn_options *options);",
        "const char *const *closure",
        "size_t closure_len",
        "typedef void (*gdn_progress_callback)(uint64_t bytes_done, uint64_t bytes_total, void *userdata);",
    ] {
        assert!(header.contains(declaration), "the header lacks {declaration:?}");
    }
}

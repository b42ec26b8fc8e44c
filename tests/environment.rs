//! The values the command line takes from the environment are checked as
//! the options they stand for: a bad one is an error naming the variable,
//! and nothing is written.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const HASH: &str = "0a1b2c3d4f5g6h7i8j9k0l1m2n3p4q5r";

/// A store of one item, and a directory for the output.
fn store() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("gnu/store");
    let item = store.join(format!("{HASH}-hello-1.0"));
    fs::create_dir_all(item.join("bin")).unwrap();
    fs::write(item.join("bin/hello"), "#!/bin/sh\necho hello\n").unwrap();
    fs::create_dir(dir.path().join("out")).unwrap();
    (dir, store, item)
}

fn run(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_guix-docker-native"));
    command.current_dir(dir.join("out")).env_remove("SOURCE_DATE_EPOCH").env_remove("NIX_STORE_DIR");
    command.envs(env.iter().copied()).args(args).arg("-q");
    command.output().unwrap()
}

fn entries(dir: &Path) -> Vec<String> {
    fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()
}

#[test]
fn source_date_epoch_out_of_range_or_not_an_integer_is_refused() {
    let (dir, store, item) = store();
    let store = store.to_str().unwrap();
    let item = item.to_str().unwrap();
    for (value, why) in [
        ("253402300800", "outside the years 0000 to 9999"),
        ("-62167219201", "outside the years 0000 to 9999"),
        ("99999999999999999999", "outside the years 0000 to 9999"),
        ("tomorrow", "not an integer"),
        ("1.5", "not an integer"),
    ] {
        let out = run(dir.path(), &[("SOURCE_DATE_EPOCH", value)], &["--store-dir", store, "-o", "image.tar", item]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "SOURCE_DATE_EPOCH={value}: {stderr}");
        assert!(stderr.contains(&format!("SOURCE_DATE_EPOCH '{value}': {why}")), "{value}: {stderr}");
        assert_eq!(entries(&dir.path().join("out")), Vec::<String>::new(), "{value}: nothing is left");
    }
    // The option wins over the variable, which is then not looked at.
    let out = run(
        dir.path(),
        &[("SOURCE_DATE_EPOCH", "tomorrow")],
        &["--store-dir", store, "--creation-time", "@5", "-o", "image.tar", item],
    );
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    // The limits themselves are accepted.
    for value in ["253402300799", "-62167219200", "0"] {
        let out = run(dir.path(), &[("SOURCE_DATE_EPOCH", value)], &["--store-dir", store, "-o", "image.tar", item]);
        assert_eq!(out.status.code(), Some(0), "SOURCE_DATE_EPOCH={value}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn a_relative_nix_store_dir_is_refused() {
    let (dir, _store, item) = store();
    let out = run(dir.path(), &[("NIX_STORE_DIR", "gnu/store")], &["-o", "image.tar", item.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("NIX_STORE_DIR 'gnu/store': not an absolute path"), "{stderr}");
    assert_eq!(entries(&dir.path().join("out")), Vec::<String>::new());
    // --store-dir wins: the variable is then not looked at.
    let store = dir.path().join("gnu/store");
    let out = run(
        dir.path(),
        &[("NIX_STORE_DIR", "gnu/store")],
        &["--store-dir", store.to_str().unwrap(), "-o", "image.tar", item.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}

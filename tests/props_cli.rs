//! Property-based tests of the command line's option values, through the
//! program itself: a random value never crashes it; it is either accepted,
//! and then found in the image the program wrote (the config, the manifest,
//! a layer), or refused with exit status 2 and a message naming the option
//! and the value.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

use guix_docker_native::CREATION_TIME_RANGE;
use proptest::prelude::*;
use serde_json::Value;
use sha2::{Digest, Sha256};

const HASH: &str = "0a1b2c3d4f5g6h7i8j9k0l1m2n3p4q5r";

/// Seconds since the epoch in RFC 3339 UTC, as an image's `created` is.
fn rfc3339(t: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(t).unwrap();
    t.format(&time::format_description::well_known::Rfc3339).unwrap()
}

struct Store {
    dir: tempfile::TempDir,
    store: PathBuf,
    item: PathBuf,
}

fn make_store() -> Store {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("gnu/store");
    let item = store.join(format!("{HASH}-hello-1.0"));
    fs::create_dir_all(item.join("bin")).unwrap();
    fs::write(item.join("bin/hello"), "#!/bin/sh\necho hello\n").unwrap();
    fs::set_permissions(item.join("bin/hello"), fs::Permissions::from_mode(0o755)).unwrap();
    Store { dir, store, item }
}

/// What the program did with one option value.
enum Outcome {
    /// Exit 0: the image's files by name.
    Image(BTreeMap<String, Vec<u8>>),
    /// A non-zero exit: the status and standard error.
    Refused(i32, String),
}

fn run(s: &Store, args: &[String]) -> Outcome {
    let output = s.dir.path().join("out.tar");
    let _ = fs::remove_file(&output);
    let result = Command::new(env!("CARGO_BIN_EXE_guix-docker-native"))
        .arg("-q")
        .arg("-o")
        .arg(&output)
        .arg("--store-dir")
        .arg(&s.store)
        .args(args)
        .arg(&s.item)
        .env_remove("SOURCE_DATE_EPOCH")
        .env_remove("NIX_STORE_DIR")
        .output()
        .expect("the program runs");
    let code = result.status.code().unwrap_or(-1);
    if code != 0 {
        assert!(!output.exists(), "a failed run left {}", output.display());
        return Outcome::Refused(code, String::from_utf8_lossy(&result.stderr).into_owned());
    }
    let mut archive = fs::read(&output).unwrap();
    if archive.starts_with(&[0x1f, 0x8b]) {
        let mut plain = Vec::new();
        flate2::read::MultiGzDecoder::new(&archive[..]).read_to_end(&mut plain).unwrap();
        archive = plain;
    } else if archive.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        archive = zstd::decode_all(&archive[..]).unwrap();
    }
    let mut files = BTreeMap::new();
    for e in tar::Archive::new(&archive[..]).entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        files.insert(name, data);
    }
    Outcome::Image(files)
}

fn manifest(files: &BTreeMap<String, Vec<u8>>) -> Value {
    serde_json::from_slice(&files["manifest.json"]).unwrap()
}

fn config(files: &BTreeMap<String, Vec<u8>>) -> Value {
    let name = manifest(files)[0]["Config"].as_str().unwrap().to_string();
    assert_eq!(name, format!("{}.json", hex::encode(Sha256::digest(&files[&name]))));
    serde_json::from_slice(&files[&name]).unwrap()
}

/// Every layer's entries: (name, link target).
fn layer_entries(files: &BTreeMap<String, Vec<u8>>) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    for layer in manifest(files)[0]["Layers"].as_array().unwrap() {
        for e in tar::Archive::new(&files[layer.as_str().unwrap()][..]).entries().unwrap() {
            let e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            let link = e.link_name().unwrap().map(|l| l.to_string_lossy().into_owned());
            out.push((name, link));
        }
    }
    out
}

/// A refusal must be a usage error (2) naming the option and the value, or,
/// where `also` allows it, another clear error naming the value.
fn check_refused(code: i32, stderr: &str, what: &str, value: &str, also: &[i32]) -> Result<(), TestCaseError> {
    prop_assert!(code == 2 || also.contains(&code), "{what} {value:?}: exit {code}: {stderr}");
    prop_assert!(stderr.starts_with("guix-docker-native: error: "), "{}", stderr);
    prop_assert!(stderr.contains(what), "{what} {value:?}: {stderr}");
    // A number may be named as it was read ("+0130" as 130).
    let read = value.parse::<i64>().map(|n| n.to_string());
    prop_assert!(stderr.contains(value) || read.is_ok_and(|n| stderr.contains(&format!("{what} {n}"))), "{what} {value:?}: {stderr}");
    Ok(())
}

/// Option values: random text without NUL (argv cannot carry it), and text
/// shaped like each option's syntax.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[^\u{0}]{0,12}",
        "[a-z0-9/=:@._ +-]{0,16}",
        "/[a-zA-Z0-9/._-]{0,12}",
        "[+-]?[0-9]{1,13}(/(tcp|udp|sctp|icmp))?",
        "@[0-9]{1,13}",
        "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(Z|z|\\+00:00|\\+01:00|)",
        "(x86_64|i686|armhf|aarch64|mips64el|riscv64|sparc|ppc64le|powerpc64le)-linux",
        "(none|gzip|zstd|xz|Gzip)",
        "[A-Za-z_][A-Za-z0-9_]{0,6}=[^\u{0}]{0,6}",
    ]
}

/// Docker's port syntax, as the option documents it.
fn port_key(port: &str) -> Option<String> {
    let (number, proto) = port.split_once('/').unwrap_or((port, "tcp"));
    let ok = !number.is_empty()
        && number.bytes().all(|b| b.is_ascii_digit())
        && !number.starts_with('0')
        && number.parse::<u32>().is_ok_and(|n| n <= 65535)
        && ["tcp", "udp", "sctp"].contains(&proto);
    ok.then(|| format!("{number}/{proto}"))
}

/// A decimal number as the numeric options read it (an optional '+').
fn number(text: &str) -> Option<u64> {
    let digits = text.strip_prefix('+').unwrap_or(text);
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then(|| digits.parse().ok()).flatten()
}

const OPTIONS: &[&str] = &[
    "--tag", "--entry-point", "--env", "--workdir", "--user", "--label", "--expose", "--volume", "--max-layers",
    "--system", "--creation-time", "--threads", "--compression", "--compression-level", "--symlink",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn option_values_are_accepted_into_the_image_or_refused_by_name(option in proptest::sample::select(OPTIONS), v in value()) {
        let s = make_store();
        let mut args = vec![format!("{option}={v}")];
        if option == "--compression-level" {
            args.insert(0, "--compression=gzip".into());
        }
        let outcome = run(&s, &args);
        let item = s.item.to_str().unwrap();
        match (option, outcome) {
            (_, Outcome::Refused(code, _)) if code != 2 && option != "--symlink" => {
                prop_assert!(false, "{option}={v:?}: exit {code}, not a usage error");
            }
            ("--tag", Outcome::Image(files)) => {
                let tags = manifest(&files)[0]["RepoTags"].clone();
                let full = if v.rsplit('/').next().unwrap().contains(':') { v.clone() } else { format!("{v}:latest") };
                prop_assert_eq!(tags, serde_json::json!([full]));
            }
            ("--tag", Outcome::Refused(code, err)) => check_refused(code, &err, "tag", &v, &[])?,
            ("--entry-point", Outcome::Image(files)) => {
                let program = if v.starts_with('/') { v.clone() } else { format!("{item}/{v}") };
                prop_assert_eq!(&config(&files)["config"]["Entrypoint"], &serde_json::json!([program]));
            }
            ("--entry-point", Outcome::Refused(code, err)) => { prop_assert!(v.is_empty()); check_refused(code, &err, "entry point", &v, &[])?; }
            ("--env", Outcome::Image(files)) => prop_assert_eq!(&config(&files)["config"]["Env"], &serde_json::json!([v])),
            ("--env", Outcome::Refused(code, err)) => {
                prop_assert!(v.split_once('=').is_none_or(|(n, _)| n.is_empty()));
                check_refused(code, &err, "environment variable", &v, &[])?;
            }
            ("--workdir", Outcome::Image(files)) => prop_assert_eq!(&config(&files)["config"]["WorkingDir"], &serde_json::json!(v)),
            ("--workdir", Outcome::Refused(code, err)) => { prop_assert!(!v.starts_with('/')); check_refused(code, &err, "working directory", &v, &[])?; }
            ("--user", Outcome::Image(files)) => prop_assert_eq!(&config(&files)["config"]["User"], &serde_json::json!(v)),
            ("--user", Outcome::Refused(code, err)) => { prop_assert!(v.is_empty()); check_refused(code, &err, "user", &v, &[])?; }
            ("--label", Outcome::Image(files)) => {
                let (key, val) = v.split_once('=').unwrap();
                prop_assert_eq!(&config(&files)["config"]["Labels"], &serde_json::json!({ key: val }));
            }
            ("--label", Outcome::Refused(code, err)) => {
                prop_assert!(v.split_once('=').is_none_or(|(k, _)| k.is_empty()));
                check_refused(code, &err, "label", &v, &[])?;
            }
            ("--expose", Outcome::Image(files)) => {
                let key = port_key(&v);
                prop_assert!(key.is_some(), "{:?} accepted", v);
                prop_assert_eq!(&config(&files)["config"]["ExposedPorts"], &serde_json::json!({ key.unwrap(): {} }));
            }
            ("--expose", Outcome::Refused(code, err)) => { prop_assert!(port_key(&v).is_none(), "{:?} refused", v); check_refused(code, &err, "exposed port", &v, &[])?; }
            ("--volume", Outcome::Image(files)) => prop_assert_eq!(&config(&files)["config"]["Volumes"], &serde_json::json!({ v.clone(): {} })),
            ("--volume", Outcome::Refused(code, err)) => { prop_assert!(!v.starts_with('/')); check_refused(code, &err, "volume", &v, &[])?; }
            ("--max-layers", Outcome::Image(files)) => {
                let n = number(&v);
                prop_assert!(n.is_some_and(|n| (1..=125).contains(&n)), "{:?} accepted", v);
                let layers = manifest(&files)[0]["Layers"].as_array().unwrap().len() as u64;
                prop_assert!((1..=n.unwrap()).contains(&layers), "{} layers for --max-layers={}", layers, v);
            }
            ("--max-layers", Outcome::Refused(code, err)) => {
                prop_assert!(!number(&v).is_some_and(|n| (1..=125).contains(&n)), "{:?} refused", v);
                check_refused(code, &err, "max-layers", &v, &[])?;
            }
            ("--system", Outcome::Image(files)) => {
                let cpu = v.split('-').next().unwrap();
                let arch = match cpu {
                    "x86_64" => "amd64",
                    "i686" | "i586" | "i486" | "i386" | "x86" => "386",
                    "aarch64" => "arm64",
                    "mips64el" | "mips64" => "mips64le",
                    "riscv64" => "riscv64",
                    "powerpc64le" | "ppc64le" => "ppc64le",
                    _ if cpu.starts_with("arm") => "arm",
                    _ => return Err(TestCaseError::fail(format!("system {v:?} accepted"))),
                };
                prop_assert_eq!(&config(&files)["architecture"], &serde_json::json!(arch));
            }
            ("--system", Outcome::Refused(code, err)) => check_refused(code, &err, "system", &v, &[])?,
            ("--creation-time", Outcome::Image(files)) => {
                let created = config(&files)["created"].as_str().unwrap().to_string();
                match v.strip_prefix('@') {
                    Some(digits) => {
                        let t: i64 = digits.parse().unwrap();
                        prop_assert!(CREATION_TIME_RANGE.contains(&t));
                        prop_assert_eq!(created, rfc3339(t));
                    }
                    None => prop_assert_eq!(created, v[..19].to_uppercase() + "Z"),
                }
            }
            ("--creation-time", Outcome::Refused(code, err)) => {
                // Out of range is refused, naming the number.
                let shown = v.strip_prefix('@').filter(|d| d.parse::<i64>().is_ok()).map(|d| d.trim_start_matches('0').to_string());
                let named = match &shown { Some(n) if !n.is_empty() => n.clone(), _ => v.clone() };
                if let Some(n) = shown.as_ref().and_then(|n| n.parse::<i64>().ok()) {
                    prop_assert!(!CREATION_TIME_RANGE.contains(&n), "{:?} refused", v);
                }
                check_refused(code, &err, "creation time", &named, &[])?;
            }
            ("--threads", Outcome::Image(_)) => prop_assert!(number(&v).is_some_and(|n| n <= 1024), "{:?} accepted", v),
            ("--threads", Outcome::Refused(code, err)) => {
                prop_assert!(number(&v).is_none_or(|n| n > 1024), "{:?} refused", v);
                check_refused(code, &err, "threads", &v, &[])?;
            }
            ("--compression", Outcome::Image(files)) => {
                prop_assert!(["none", "gzip", "zstd"].contains(&v.as_str()), "{:?} accepted", v);
                prop_assert!(files.contains_key("manifest.json"));
            }
            ("--compression", Outcome::Refused(code, err)) => check_refused(code, &err, "compression", &v, &[])?,
            ("--compression-level", Outcome::Image(files)) => {
                prop_assert!(number(&v).is_some_and(|n| (1..=9).contains(&n)), "{:?} accepted", v);
                prop_assert!(files.contains_key("manifest.json"));
            }
            ("--compression-level", Outcome::Refused(code, err)) => {
                prop_assert!(!number(&v).is_some_and(|n| (1..=9).contains(&n)), "{:?} refused", v);
                check_refused(code, &err, "compression level", &v, &[])?;
            }
            ("--symlink", Outcome::Image(files)) => {
                let (link, target) = v.split_once('=').unwrap();
                let name: Vec<&str> = link.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
                let target = if target.starts_with('/') { target.to_string() } else { format!("{item}/{target}") };
                let entries = layer_entries(&files);
                prop_assert!(entries.contains(&(name.join("/"), Some(target.clone()))), "no symlink {:?} -> {:?} in {:?}", name, target, entries);
            }
            ("--symlink", Outcome::Refused(code, err)) => {
                // A usage error, or, for a link the image cannot hold (a
                // whiteout, or a path in the way of the store), exit 5.
                let link = v.split_once('=').map_or(v.as_str(), |(l, _)| l);
                let cleaned: Vec<&str> = link.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
                let cleaned = format!("/{}", cleaned.join("/"));
                check_refused(code, &err, "", "", &[5])?;
                prop_assert!(err.contains(link) || err.contains(&format!("'{cleaned}'")), "{link:?}: {err}");
                prop_assert!(err.contains("symlink") || err.contains("path '") || err.contains("conflict"), "{}", err);
            }
            (other, _) => prop_assert!(false, "no check for {}", other),
        }
    }
}

/// Store item arguments: the item itself, in any spelling of its path, is
/// built; anything else is refused with exit 3 (not a store item) or 6 (a
/// store item that does not exist), naming the argument (an empty one is
/// clap's usage error).
fn item_argument(store: &str, item: &str) -> impl Strategy<Value = String> {
    let (store, item) = (store.to_string(), item.to_string());
    let base = item.rsplit('/').next().unwrap().to_string();
    prop_oneof![
        Just(item.clone()),
        Just(format!("{item}/")),
        Just(format!("{store}/./{base}")),
        Just(format!("{store}//{base}//")),
        Just(format!("{item}/bin/hello")),
        Just(format!("{store}/../store/{base}")),
        Just(item.trim_start_matches('/').to_string()),
        Just(store.clone()),
        "[a-z0-9/._-]{0,20}".prop_map(move |s| format!("{store}/{s}")),
        "[0-9a-df-np-sv-z]{32}-[a-z0-9]{1,5}".prop_map({ let store = item.rsplit_once('/').unwrap().0.to_string(); move |s| format!("{store}/{s}") }),
        "[^\u{0}]{0,20}",
    ]
}

#[test]
fn item_arguments_are_the_item_or_refused_by_name() {
    let s = make_store();
    let (store, item) = (s.store.to_str().unwrap().to_string(), s.item.to_str().unwrap().to_string());
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(48));
    runner
        .run(&item_argument(&store, &item), |arg| {
            let output = s.dir.path().join("out.tar");
            let _ = fs::remove_file(&output);
            let result = Command::new(env!("CARGO_BIN_EXE_guix-docker-native"))
                .arg("-q")
                .arg("-o")
                .arg(&output)
                .arg("--store-dir")
                .arg(&s.store)
                .arg("--")
                .arg(&arg)
                .env_remove("NIX_STORE_DIR")
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&result.stderr);
            let parts: Vec<&str> = arg.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
            let is_item = arg.starts_with('/') && format!("/{}", parts.join("/")) == item;
            match result.status.code() {
                Some(0) => prop_assert!(is_item, "{:?} was built", arg),
                Some(code) => {
                    prop_assert!(!is_item, "{:?} refused: {}", arg, stderr);
                    if arg.is_empty() {
                        // clap's usage error: an empty ITEM is no item.
                        prop_assert!(code == 2 && stderr.contains("ITEM"), "{}", stderr);
                    } else {
                        prop_assert!(code == 3 || code == 6, "{:?}: exit {}: {}", arg, code, stderr);
                        prop_assert!(stderr.contains(&format!("'{arg}'")) || stderr.contains(&arg), "{:?}: {}", arg, stderr);
                    }
                    prop_assert!(!output.exists());
                }
                None => prop_assert!(false, "{:?}: killed by a signal", arg),
            }
            Ok(())
        })
        .unwrap();
}

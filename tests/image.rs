//! The engine through its Rust API, on a small store made here: what the
//! archive holds, that it is reproducible, and what the layers contain.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use guix_docker_native::{build_docker_image, Compression, ErrorKind, ImageOptions, Output, Progress};
use serde_json::Value;
use sha2::{Digest, Sha256};

const HASH_A: &str = "0a1b2c3d4f5g6h7i8j9k0l1m2n3p4q5r";
const HASH_B: &str = "1zyxwvsrqpnmlkjihgfdcba987654321";

struct Store {
    _dir: tempfile::TempDir,
    store: PathBuf,
    a: PathBuf,
    b: PathBuf,
}

fn make_store() -> Store {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("gnu/store");
    let a = store.join(format!("{HASH_A}-app-1.0"));
    let b = store.join(format!("{HASH_B}-data"));
    fs::create_dir_all(a.join("bin")).unwrap();
    fs::create_dir_all(a.join("share/empty")).unwrap();
    let long = a.join("share").join("d".repeat(60)).join("f".repeat(60));
    fs::create_dir_all(long.parent().unwrap()).unwrap();
    fs::write(&long, "long name\n").unwrap();
    fs::write(a.join("bin/app"), "#!/bin/sh\necho app\n").unwrap();
    fs::set_permissions(a.join("bin/app"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(a.join("share/big"), vec![7u8; 3 * 1024 * 1024 + 17]).unwrap();
    symlink(&b, a.join("data")).unwrap();
    symlink("bin/app", a.join("run")).unwrap();
    fs::write(&b, format!("data for {}\n", a.display())).unwrap();
    Store { store: store.clone(), a, b, _dir: dir }
}

fn options(s: &Store) -> ImageOptions {
    let mut o = ImageOptions::new();
    o.set_store_dir(&s.store).unwrap();
    o
}

fn build(s: &Store, o: &ImageOptions, out: &Path) -> Vec<u8> {
    let closure = [s.a.clone(), s.b.clone()];
    build_docker_image(&[s.a.clone()], Some(&closure), &Output::Path(out.to_path_buf()), o).unwrap();
    fs::read(out).unwrap()
}

/// The outer archive's files by name.
fn files(archive: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for e in tar::Archive::new(archive).entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        out.insert(name, data);
    }
    out
}

/// A layer's entries: name -> (type, mode, size, link).
fn entries(layer: &[u8]) -> Vec<(String, char, u32, u64, String)> {
    tar::Archive::new(layer)
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let h = e.header();
            assert_eq!(h.mtime().unwrap(), 1);
            assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (0, 0));
            (
                e.path().unwrap().to_string_lossy().into_owned(),
                h.entry_type().as_byte() as char,
                h.mode().unwrap(),
                h.size().unwrap(),
                e.link_name().unwrap().map(|l| l.to_string_lossy().into_owned()).unwrap_or_default(),
            )
        })
        .collect()
}

fn image(archive: &[u8]) -> (Value, Value, Vec<Vec<u8>>) {
    let files = files(archive);
    let manifest: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    let config_name = manifest[0]["Config"].as_str().unwrap();
    let config_bytes = &files[config_name];
    assert_eq!(config_name, format!("{}.json", hex::encode(Sha256::digest(config_bytes))));
    let config: Value = serde_json::from_slice(config_bytes).unwrap();
    let layers: Vec<Vec<u8>> =
        manifest[0]["Layers"].as_array().unwrap().iter().map(|l| files[l.as_str().unwrap()].clone()).collect();
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    assert_eq!(diff_ids.len(), layers.len());
    for (layer, id) in layers.iter().zip(diff_ids) {
        assert_eq!(id.as_str().unwrap(), format!("sha256:{}", hex::encode(Sha256::digest(layer))));
    }
    (manifest, config, layers)
}

#[test]
fn one_layer_holds_the_closure_with_store_modes() {
    let s = make_store();
    let dir = tempfile::tempdir().unwrap();
    let mut o = options(&s);
    o.set_entry_point("bin/app").unwrap();
    o.add_entry_point_argument("--now").unwrap();
    o.add_env("LANG=C").unwrap();
    o.add_symlink("/bin", "bin").unwrap();
    o.add_tag("app:1").unwrap();
    let archive = build(&s, &o, &dir.path().join("i.tar"));
    let (manifest, config, layers) = image(&archive);
    assert_eq!(manifest[0]["RepoTags"], serde_json::json!(["app:1"]));
    assert_eq!(config["created"], "1970-01-01T00:00:01Z");
    assert_eq!(config["config"]["Entrypoint"], serde_json::json!([format!("{}/bin/app", s.a.display()), "--now"]));
    assert_eq!(config["config"]["Env"], serde_json::json!(["LANG=C"]));
    assert_eq!(layers.len(), 1);
    let e = entries(&layers[0]);
    let names: Vec<&str> = e.iter().map(|x| x.0.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    let store = s.store.to_str().unwrap().trim_start_matches('/').to_string();
    let a = format!("{store}/{HASH_A}-app-1.0");
    assert!(names.contains(&"bin"));
    assert!(names.contains(&format!("{a}/share/empty/").as_str()));
    assert!(names.contains(&format!("{store}/{HASH_B}-data").as_str()));
    // Parents before children.
    for (i, n) in names.iter().enumerate() {
        let parent = Path::new(n.trim_end_matches('/')).parent().unwrap().to_string_lossy().into_owned();
        if !parent.is_empty() {
            let p = names.iter().position(|m| m.trim_end_matches('/') == parent).unwrap_or_else(|| panic!("no parent for {n}"));
            assert!(p < i, "{n} before its parent");
        }
    }
    let find = |suffix: &str| e.iter().find(|x| x.0.ends_with(suffix)).unwrap_or_else(|| panic!("{suffix}")).clone();
    assert_eq!(find("bin/app").2, 0o555);
    assert_eq!(find("share/big").2, 0o444);
    assert_eq!(find("share/big").3, 3 * 1024 * 1024 + 17);
    assert_eq!(find("-app-1.0/").2, 0o555);
    assert_eq!(find("-app-1.0/run").4, "bin/app");
    assert_eq!(find("-app-1.0/data").4, s.b.to_string_lossy());
    assert!(find(&"f".repeat(60)).0.len() > 100);
    assert_eq!(e.iter().find(|x| x.0 == "bin").unwrap().4, format!("{}/bin", s.a.display()));
}

#[test]
fn same_inputs_same_bytes_whatever_the_mtimes_modes_and_threads() {
    let s = make_store();
    let dir = tempfile::tempdir().unwrap();
    let mut o = options(&s);
    o.set_max_layers(3).unwrap();
    let first = build(&s, &o, &dir.path().join("1.tar"));
    // Touch files, change a mode the store would normalise, use one thread.
    let f = s.a.join("share/big");
    fs::write(&f, fs::read(&f).unwrap()).unwrap();
    fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap();
    o.set_threads(1).unwrap();
    let second = build(&s, &o, &dir.path().join("2.tar"));
    assert!(first == second, "archives differ");
    let (_, _, layers) = image(&first);
    assert_eq!(layers.len(), 2, "two items, no extras: a layer each");
}

#[test]
fn layers_hashed_on_threads_of_their_own_have_the_right_digests() {
    // With more threads than layers, a layer is hashed on a thread of its
    // own while its producer writes; with one thread, inline.
    let s = make_store();
    let dir = tempfile::tempdir().unwrap();
    for max_layers in [1, 3] {
        let mut o = options(&s);
        o.set_max_layers(max_layers).unwrap();
        o.set_threads(1).unwrap();
        let inline = build(&s, &o, &dir.path().join("inline.tar"));
        image(&inline);
        for threads in [2, 4, 8] {
            o.set_threads(threads).unwrap();
            let offloaded = build(&s, &o, &dir.path().join(format!("{threads}.tar")));
            image(&offloaded);
            assert!(offloaded == inline, "{threads} threads, {max_layers} layers: archives differ");
        }
    }
}

#[test]
fn compressed_archives_hold_the_same_bytes() {
    let s = make_store();
    let dir = tempfile::tempdir().unwrap();
    let mut o = options(&s);
    let plain = build(&s, &o, &dir.path().join("p.tar"));
    o.set_compression(Compression::Gzip, None).unwrap();
    let gz = build(&s, &o, &dir.path().join("p.tar.gz"));
    let mut back = Vec::new();
    flate2::read::MultiGzDecoder::new(&gz[..]).read_to_end(&mut back).unwrap();
    assert!(back == plain);
    o.set_compression(Compression::Zstd, Some(5)).unwrap();
    let zst = build(&s, &o, &dir.path().join("p.tar.zst"));
    assert!(zstd::decode_all(&zst[..]).unwrap() == plain);
}

#[test]
fn progress_grows_to_the_total_on_the_calling_thread() {
    let s = make_store();
    let dir = tempfile::tempdir().unwrap();
    let mut o = options(&s);
    let seen: Arc<Mutex<Vec<Progress>>> = Arc::default();
    let caller = std::thread::current().id();
    let log = Arc::clone(&seen);
    o.set_progress(Some(Arc::new(move |p| {
        assert_eq!(std::thread::current().id(), caller);
        log.lock().unwrap().push(p)
    })));
    let archive = build(&s, &o, &dir.path().join("p.tar"));
    let seen = seen.lock().unwrap();
    assert!(seen.len() >= 2);
    assert!(seen.windows(2).all(|w| w[0].bytes_done <= w[1].bytes_done && w[0].items_done <= w[1].items_done));
    let last = seen.last().unwrap();
    assert_eq!(last.bytes_done, archive.len() as u64);
    assert_eq!(last.bytes_total, archive.len() as u64);
    assert_eq!((last.items_done, last.items_total), (2, 2));
}

#[test]
fn a_failed_build_leaves_nothing() {
    let s = make_store();
    let dir = tempfile::tempdir().unwrap();
    let o = options(&s);
    let out = dir.path().join("x.tar");
    // A FIFO inside an item.
    let fifo = s.a.join("share/pipe");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let closure = [s.a.clone(), s.b.clone()];
    let err = build_docker_image(&[s.a.clone()], Some(&closure), &Output::Path(out.clone()), &o).unwrap_err();
    assert_eq!(err.kind, ErrorKind::UnsupportedFile);
    assert!(err.message.contains("share/pipe") && err.message.contains("FIFO"), "{}", err.message);
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
}

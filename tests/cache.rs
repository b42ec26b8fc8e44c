//! The layer cache, through the command line, on small stores made here:
//! a warm build gives the same bytes as `--no-cache` for every destination
//! and compression; a warm rewrite of an `oci:` layout reads no store file
//! of a known layer (strace); an item changed under the same path (with
//! and without a store database) is never served from a stale entry; a
//! damaged entry or a read-only cache is a warning and a correct build;
//! builds sharing a cache at once stay correct.  Pushes to a real
//! registry (Debian's `docker-registry`): a warm push to a repository that
//! has every blob reads no store file and pushes the same manifest as a
//! `--no-cache` push; to another repository of the registry, it mounts
//! every layer; to another registry, it uploads them; an item rebuilt
//! between two pushes is pushed with its new contents.

mod registry_support;

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use registry_support::{have, Registry};
use serde_json::Value;
use sha2::{Digest, Sha256};

const HASH_LIB: &str = "0a1b2c3d4f5g6h7i8j9k0l1m2n3p4q5r";
const HASH_APP: &str = "1zyxwvsrqpnmlkjihgfdcba987654321";
const HASH_DOC: &str = "2abcdfghijklmnpqrsvwxyz012345678";

const PROGRAM: &str = env!("CARGO_BIN_EXE_guix-docker-native");

/// A store of three items (`app` refers to `lib` and `doc`), its closure
/// file and, when asked, its store database.
struct Store {
    dir: tempfile::TempDir,
    store: PathBuf,
    lib: PathBuf,
    app: PathBuf,
    doc: PathBuf,
    closure_file: PathBuf,
    database: Option<PathBuf>,
}

/// The contents of the app's program: `version` repeated, always the same
/// size for a version of one character.
fn app_program(version: char) -> Vec<u8> {
    let mut v = b"#!/bin/sh\n# version ".to_vec();
    v.extend(vec![version as u8; 60_000]);
    v.push(b'\n');
    v
}

fn write_app(app: &Path, lib: &Path, version: char) {
    fs::create_dir_all(app.join("bin")).unwrap();
    fs::create_dir_all(app.join("share")).unwrap();
    let program = app.join("bin/cache-test-app");
    fs::write(&program, app_program(version)).unwrap();
    fs::set_permissions(&program, fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(app.join("share/cache-test-data"), format!("uses {}\n", lib.display()).repeat(20_000)).unwrap();
}

fn make_store(with_database: bool) -> Store {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("gnu/store");
    let lib = store.join(format!("{HASH_LIB}-lib-1.0"));
    let app = store.join(format!("{HASH_APP}-app-1.0"));
    let doc = store.join(format!("{HASH_DOC}-doc-1.0"));
    fs::create_dir_all(lib.join("lib")).unwrap();
    fs::write(lib.join("lib/cache-test-lib.so"), vec![b'L'; 300_000]).unwrap();
    fs::create_dir_all(&doc).unwrap();
    fs::write(doc.join("cache-test-doc"), "documentation\n".repeat(5000)).unwrap();
    write_app(&app, &lib, '1');
    std::os::unix::fs::symlink(&doc, app.join("share/doc")).unwrap();
    let closure_file = dir.path().join("closure.txt");
    fs::write(&closure_file, format!("{}\n{}\n{}\n", lib.display(), app.display(), doc.display())).unwrap();
    let mut s = Store { store, lib, app, doc, closure_file, database: None, dir };
    if with_database {
        let db = s.dir.path().join("var/guix/db/db.sqlite");
        fs::create_dir_all(db.parent().unwrap()).unwrap();
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch(guix_docker_native::closure::STORE_DATABASE_SCHEMA).unwrap();
        for (i, item) in [&s.lib, &s.app, &s.doc].iter().enumerate() {
            c.execute(
                "INSERT INTO ValidPaths (id, path, hash, registrationTime, narSize) VALUES (?1, ?2, ?3, ?4, 1000)",
                rusqlite::params![i as i64 + 1, item.to_str().unwrap(), format!("sha256:{:064x}", i + 1), 1_700_000_000 + i as i64],
            )
            .unwrap();
        }
        c.execute_batch("INSERT INTO Refs (referrer, reference) VALUES (2, 1), (2, 3);").unwrap();
        s.database = Some(db);
    }
    s
}

impl Store {
    /// Re-registers `item` as the daemon would after building it again:
    /// another hash and a later time.
    fn reregister(&self, item: &Path, hash: &str) {
        let c = rusqlite::Connection::open(self.database.as_ref().unwrap()).unwrap();
        let n = c
            .execute(
                "UPDATE ValidPaths SET hash = ?1, registrationTime = registrationTime + 100 WHERE path = ?2",
                rusqlite::params![hash, item.to_str().unwrap()],
            )
            .unwrap();
        assert_eq!(n, 1);
    }
}

struct Run {
    status: i32,
    stderr: String,
}

/// Runs the program on the store's app with `args` (`--cache-dir` and
/// the destination among them).
fn gdn(s: &Store, args: &[&str]) -> Run {
    gdn_with(s, args, None)
}

/// As [`gdn`], under `strace -f -e trace=openat -o trace` when given.
fn gdn_with(s: &Store, args: &[&str], trace: Option<&Path>) -> Run {
    let mut c = match trace {
        Some(file) => {
            let mut c = Command::new("strace");
            c.args(["-f", "-qq", "-e", "trace=openat", "-o"]).arg(file).arg(PROGRAM);
            c
        }
        None => Command::new(PROGRAM),
    };
    c.arg("-q").arg("--store-dir").arg(&s.store).arg("-t").arg("app:1.0").arg("--max-layers").arg("4");
    match &s.database {
        Some(db) => c.arg("--database").arg(db),
        None => c.arg("--closure-file").arg(&s.closure_file),
    };
    c.args(args).arg(&s.app);
    let out = c.output().expect("the program runs (and strace, when asked for, is installed)");
    Run { status: out.status.code().unwrap_or(-1), stderr: String::from_utf8_lossy(&out.stderr).into_owned() }
}

fn ok(r: Run) -> Run {
    assert_eq!(r.status, 0, "{}", r.stderr);
    r
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Every file under `dir`, by relative name, with its bytes.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            } else {
                out.insert(p.strip_prefix(dir).unwrap().display().to_string(), fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// The cache's entries (their files under `layers-1`).
fn entries(cache: &Path) -> Vec<PathBuf> {
    match fs::read_dir(cache.join("layers-1")) {
        Ok(list) => {
            let mut v: Vec<PathBuf> =
                list.map(|e| e.unwrap().path()).filter(|p| !p.file_name().unwrap().to_str().unwrap().starts_with('.')).collect();
            v.sort();
            v
        }
        Err(_) => Vec::new(),
    }
}

/// Checks an entry as a reader outside the program would: three lines,
/// the last the SHA-256 of the first two.
fn assert_entry_valid(path: &Path) {
    let text = fs::read_to_string(path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{}: {text}", path.display());
    assert_eq!(lines[0], "guix-docker-native layer cache 1");
    let signed = format!("{}\n{}\n", lines[0], lines[1]);
    assert_eq!(lines[2], format!("sha256:{}", hex::encode(Sha256::digest(signed.as_bytes()))), "{}", path.display());
    let record: Value = serde_json::from_str(lines[1]).unwrap();
    assert_eq!(record["key"].as_str().unwrap(), path.file_name().unwrap().to_str().unwrap());
}

/// The files of the layer blobs of the image `reference` in the layout
/// `dir`, by name (decompressed).
fn layout_files(dir: &Path, reference: &str) -> BTreeMap<String, Vec<u8>> {
    let blob = |digest: &str| fs::read(dir.join("blobs/sha256").join(digest.strip_prefix("sha256:").unwrap())).unwrap();
    let index: Value = serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["annotations"]["org.opencontainers.image.ref.name"] == reference)
        .expect("the image is in the index");
    let manifest: Value = serde_json::from_slice(&blob(entry["digest"].as_str().unwrap())).unwrap();
    let mut files = BTreeMap::new();
    for layer in manifest["layers"].as_array().unwrap() {
        let bytes = blob(layer["digest"].as_str().unwrap());
        let tar = match layer["mediaType"].as_str().unwrap() {
            t if t.ends_with("+gzip") => {
                let mut v = Vec::new();
                flate2::read::MultiGzDecoder::new(&bytes[..]).read_to_end(&mut v).unwrap();
                v
            }
            t if t.ends_with("+zstd") => zstd::decode_all(&bytes[..]).unwrap(),
            _ => bytes,
        };
        for e in tar::Archive::new(&tar[..]).entries().unwrap() {
            let mut e = e.unwrap();
            let name = e.path().unwrap().display().to_string();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            files.insert(name, data);
        }
    }
    files
}

fn archive_name(p: &Path) -> String {
    p.to_str().unwrap().trim_start_matches('/').to_string()
}

/// The store files opened for reading in `trace` (strace's log): the
/// walk opens files with O_NONBLOCK and O_NOFOLLOW, relative to their
/// directory; the names here are the store's own.
fn store_files_opened(trace: &Path) -> Vec<String> {
    let log = fs::read_to_string(trace).unwrap();
    let names = ["cache-test-app", "cache-test-data", "cache-test-lib.so", "cache-test-doc"];
    log.lines()
        .filter(|l| l.contains("O_NONBLOCK") && !l.contains("O_DIRECTORY"))
        .filter_map(|l| names.iter().find(|n| l.contains(&format!("\"{n}\""))).map(|n| n.to_string()))
        .collect()
}

#[test]
fn warm_builds_are_byte_identical_to_no_cache_builds() {
    let s = make_store(true);
    let work = s.dir.path();
    let cache = work.join("cache");
    let cache_arg = format!("--cache-dir={}", path_str(&cache));
    for compression in ["none", "gzip", "zstd"] {
        // docker-archive and oci-archive: the file is the same.
        for (kind, name) in [("docker-archive", "image.tar"), ("oci-archive", "image.oci.tar")] {
            let reference = work.join(format!("ref-{compression}-{name}"));
            let dest = |p: &Path| format!("{kind}:{}", path_str(p));
            ok(gdn(&s, &["--no-cache", "-C", compression, "-o", &dest(&reference)]));
            for round in ["cold", "warm"] {
                let out = work.join(format!("{round}-{compression}-{name}"));
                let r = ok(gdn(&s, &[&cache_arg, "-C", compression, "-o", &dest(&out)]));
                assert!(!r.stderr.contains("warning"), "{}", r.stderr);
                assert!(fs::read(&out).unwrap() == fs::read(&reference).unwrap(), "{kind}, {compression}, {round}");
            }
        }
        // oci: a layout rewritten with a warm cache (its blobs reused), a
        // new layout with a warm cache, and a --no-cache one: the same files.
        let reference = work.join(format!("ref-{compression}-layout"));
        ok(gdn(&s, &["--no-cache", "-C", compression, "-o", &format!("oci:{}", path_str(&reference))]));
        let layout = work.join(format!("layout-{compression}"));
        for round in ["cold", "warm", "warm again"] {
            ok(gdn(&s, &[&cache_arg, "-C", compression, "-o", &format!("oci:{}", path_str(&layout))]));
            assert!(tree(&layout) == tree(&reference), "oci:, {compression}, {round}");
        }
        let fresh = work.join(format!("fresh-{compression}"));
        ok(gdn(&s, &[&cache_arg, "-C", compression, "-o", &format!("oci:{}", path_str(&fresh))]));
        assert!(tree(&fresh) == tree(&reference), "oci:, {compression}, a new layout");
    }
    // Three store items and /tmp, four layers, one entry each, all valid
    // and small.
    let list = entries(&cache);
    assert_eq!(list.len(), 4, "{list:?}");
    for e in &list {
        assert_entry_valid(e);
        assert!(fs::metadata(e).unwrap().len() < 2048, "an entry is small");
    }
}

#[test]
fn a_warm_layout_rewrite_reads_no_store_file_of_a_known_layer() {
    for compression in ["none", "zstd"] {
        // Without a database (the walk's metadata) and with one.
        for with_database in [false, true] {
            let s = make_store(with_database);
            let work = s.dir.path();
            let cache_arg = format!("--cache-dir={}", path_str(&work.join("cache")));
            let layout = format!("oci:{}", path_str(&work.join("layout")));
            let trace = work.join("trace");
            let what = format!("{compression}, database: {with_database}");
            ok(gdn_with(&s, &[&cache_arg, "-C", compression, "-o", &layout], Some(&trace)));
            let mut cold = store_files_opened(&trace);
            cold.sort();
            assert_eq!(cold, ["cache-test-app", "cache-test-data", "cache-test-doc", "cache-test-lib.so"], "{what}");
            ok(gdn_with(&s, &[&cache_arg, "-C", compression, "-o", &layout], Some(&trace)));
            assert_eq!(store_files_opened(&trace), Vec::<String>::new(), "{what}: warm");
            // One item changed: only its files are read again.
            if with_database {
                write_app(&s.app, &s.lib, '2');
                s.reregister(&s.app, &format!("sha256:{:064x}", 99));
            } else {
                fs::write(s.app.join("share/cache-test-data"), "changed\n").unwrap();
            }
            ok(gdn_with(&s, &[&cache_arg, "-C", compression, "-o", &layout], Some(&trace)));
            let mut changed = store_files_opened(&trace);
            changed.sort();
            assert_eq!(changed, ["cache-test-app", "cache-test-data"], "{what}: the app changed");
        }
    }
}

#[test]
fn an_item_rebuilt_under_the_same_path_and_registered_again_is_not_stale() {
    let s = make_store(true);
    let work = s.dir.path();
    let cache_arg = format!("--cache-dir={}", path_str(&work.join("cache")));
    let layout = work.join("layout");
    let dest = format!("oci:{}", path_str(&layout));
    let program = format!("{}/bin/cache-test-app", archive_name(&s.app));
    for compression in ["gzip", "none"] {
        ok(gdn(&s, &[&cache_arg, "-C", compression, "-o", &dest]));
        ok(gdn(&s, &[&cache_arg, "-C", compression, "-o", &dest]));
        assert!(layout_files(&layout, "app:1.0")[&program] == app_program('1'), "the program is '1'");
    }
    // Deleted and built again, other contents of the same size, registered
    // again with another hash and a later time.
    fs::remove_dir_all(&s.app).unwrap();
    write_app(&s.app, &s.lib, '2');
    std::os::unix::fs::symlink(&s.doc, s.app.join("share/doc")).unwrap();
    s.reregister(&s.app, &format!("sha256:{:064x}", 42));
    for compression in ["gzip", "none"] {
        ok(gdn(&s, &[&cache_arg, "-C", compression, "-o", &dest]));
        assert!(layout_files(&layout, "app:1.0")[&program] == app_program('2'), "{compression}: the program is '2'");
        let reference = work.join(format!("reference-{compression}"));
        ok(gdn(&s, &["--no-cache", "-C", compression, "-o", &format!("oci:{}", path_str(&reference))]));
        assert!(layout_files(&layout, "app:1.0") == layout_files(&reference, "app:1.0"), "the --no-cache build's files");
    }
}

#[test]
fn without_a_database_a_file_changed_in_place_with_its_mtime_put_back_is_not_stale() {
    let s = make_store(false);
    let work = s.dir.path();
    let cache_arg = format!("--cache-dir={}", path_str(&work.join("cache")));
    let layout = work.join("layout");
    let dest = format!("oci:{}", path_str(&layout));
    let program = s.app.join("bin/cache-test-app");
    let name = format!("{}/bin/cache-test-app", archive_name(&s.app));
    ok(gdn(&s, &[&cache_arg, "-C", "zstd", "-o", &dest]));
    ok(gdn(&s, &[&cache_arg, "-C", "zstd", "-o", &dest]));
    assert!(layout_files(&layout, "app:1.0")[&name] == app_program('1'), "the program is '1'");
    let before = fs::metadata(&program).unwrap();
    // Same size, same inode, and the mtime put back with touch -d.
    fs::write(&program, app_program('3')).unwrap();
    let mtime = format!("@{}.{:09}", before.mtime(), before.mtime_nsec());
    let touched = Command::new("touch").arg("-d").arg(&mtime).arg(&program).status().unwrap();
    assert!(touched.success());
    let after = fs::metadata(&program).unwrap();
    assert_eq!((after.len(), after.ino(), after.mtime(), after.mtime_nsec()),
               (before.len(), before.ino(), before.mtime(), before.mtime_nsec()));
    assert_ne!((after.ctime(), after.ctime_nsec()), (before.ctime(), before.ctime_nsec()), "ctime changed");
    ok(gdn(&s, &[&cache_arg, "-C", "zstd", "-o", &dest]));
    assert!(layout_files(&layout, "app:1.0")[&name] == app_program('3'), "the program is '3'");
    let reference = work.join("reference");
    ok(gdn(&s, &["--no-cache", "-C", "zstd", "-o", &format!("oci:{}", path_str(&reference))]));
    assert!(layout_files(&layout, "app:1.0") == layout_files(&reference, "app:1.0"), "the --no-cache build's files");
    // The index names the --no-cache build's image (the layout also keeps
    // the first image's blobs, which it no longer names).
    assert_eq!(fs::read(layout.join("index.json")).unwrap(), fs::read(reference.join("index.json")).unwrap());
}

use std::os::unix::fs::MetadataExt;

#[test]
fn a_damaged_entry_is_a_warning_naming_it_and_a_correct_build() {
    let s = make_store(true);
    let work = s.dir.path();
    let cache = work.join("cache");
    let cache_arg = format!("--cache-dir={}", path_str(&cache));
    let reference = work.join("reference");
    ok(gdn(&s, &["--no-cache", "-C", "gzip", "-o", &format!("oci:{}", path_str(&reference))]));
    let layout = work.join("layout");
    let dest = format!("oci:{}", path_str(&layout));
    ok(gdn(&s, &[&cache_arg, "-C", "gzip", "-o", &dest]));
    let list = entries(&cache);
    assert_eq!(list.len(), 4);
    let good: Vec<Vec<u8>> = list.iter().map(|e| fs::read(e).unwrap()).collect();
    type Damage = fn(&Path, &[u8]);
    let damages: [(&str, Damage); 5] = [
        ("truncated", |p, b| fs::write(p, &b[..b.len() / 2]).unwrap()),
        ("emptied", |p, _| fs::write(p, b"").unwrap()),
        ("garbage", |p, b| fs::write(p, b.iter().map(|x| x.wrapping_mul(31)).collect::<Vec<u8>>()).unwrap()),
        // A record that reads well but whose checksum no longer matches:
        // the diff_id changed by one digit.
        ("altered", |p, b| {
            let t = String::from_utf8(b.to_vec()).unwrap();
            let i = t.find("\"diff_id\":\"sha256:").unwrap() + 18;
            let mut v = b.to_vec();
            v[i] = if v[i] == b'0' { b'1' } else { b'0' };
            fs::write(p, v).unwrap()
        }),
        // What cannot be read (as root, a mode 000 file still can): a
        // directory in the entry's place.
        ("unreadable", |p, _| {
            fs::remove_file(p).unwrap();
            fs::create_dir(p).unwrap();
        }),
    ];
    for (what, damage) in damages {
        for (e, bytes) in list.iter().zip(&good) {
            damage(e, bytes);
        }
        let r = ok(gdn(&s, &[&cache_arg, "-C", "gzip", "-o", &dest]));
        for e in &list {
            assert!(r.stderr.contains(&format!("warning: cache entry {}", e.display())), "{what}: {}", r.stderr);
        }
        assert_eq!(r.stderr.lines().filter(|l| l.contains(&list[0].display().to_string())).count(), 1, "{what}: once");
        assert!(tree(&layout) == tree(&reference), "{what}");
        if what == "unreadable" {
            for e in &list {
                fs::remove_dir(e).unwrap();
            }
        }
        // The build stored good entries again: no warning next time.
        let r = ok(gdn(&s, &[&cache_arg, "-C", "gzip", "-o", &dest]));
        assert!(!r.stderr.contains("warning"), "{what}: {}", r.stderr);
        assert!(tree(&layout) == tree(&reference), "{what}, rebuilt");
        for e in entries(&cache) {
            assert_entry_valid(&e);
        }
    }
}

/// Mounts a read-only tmpfs at `dir`; `false` where that is not allowed.
fn mount_read_only(dir: &Path) -> bool {
    Command::new("mount").args(["-t", "tmpfs", "-o", "ro,size=1m", "gdn-cache-test"]).arg(dir).status().is_ok_and(|s| s.success())
}

#[test]
fn a_read_only_cache_is_a_warning_naming_it_and_a_correct_build() {
    let s = make_store(false);
    let work = s.dir.path();
    let reference = work.join("reference.tar");
    ok(gdn(&s, &["--no-cache", "-C", "zstd", "-o", path_str(&reference)]));
    // A read-only file system (a tmpfs mounted read-only; as root, the
    // only kind of directory root cannot write), else, for a user who may
    // not mount, a directory of mode 0555.
    let ro = work.join("ro");
    fs::create_dir(&ro).unwrap();
    let mounted = mount_read_only(&ro);
    if !mounted {
        assert_ne!(unsafe { libc::geteuid() }, 0, "root must be able to mount a tmpfs for this test");
        fs::set_permissions(&ro, fs::Permissions::from_mode(0o555)).unwrap();
    }
    // A cache directory that is a file is as unwritable, for anyone.
    let file = work.join("a-file");
    fs::write(&file, "not a directory").unwrap();
    for cache in [ro.join("cache"), ro.clone(), file.clone()] {
        for round in 0..2 {
            let out = work.join("image.tar");
            let r = ok(gdn(&s, &[&format!("--cache-dir={}", path_str(&cache)), "-C", "zstd", "-o", path_str(&out)]));
            let warnings: Vec<&str> = r.stderr.lines().filter(|l| l.contains("warning")).collect();
            assert_eq!(warnings.len(), 1, "{}: {}", cache.display(), r.stderr);
            assert!(warnings[0].contains(&format!("cache directory {}", cache.display())), "{}", r.stderr);
            assert!(fs::read(&out).unwrap() == fs::read(&reference).unwrap(), "{} {round}", cache.display());
        }
    }
    if mounted {
        assert!(Command::new("umount").arg(&ro).status().unwrap().success());
    }
}

#[test]
fn builds_sharing_a_cache_at_once_stay_correct() {
    let s = make_store(true);
    let work = s.dir.path();
    let cache = work.join("cache");
    let cache_arg = format!("--cache-dir={}", path_str(&cache));
    let mut references = Vec::new();
    for c in ["gzip", "zstd"] {
        let r = work.join(format!("reference-{c}"));
        ok(gdn(&s, &["--no-cache", "-C", c, "-o", &format!("oci:{}", path_str(&r))]));
        references.push(tree(&r));
    }
    for round in 0..20 {
        // Two builds at once, each into its own layout, one gzip and one
        // zstd (both adding blobs to the same entries); every fifth round
        // with the cache emptied first.
        if round % 5 == 0 {
            let _ = fs::remove_dir_all(&cache);
        }
        let runs: Vec<Run> = std::thread::scope(|scope| {
            let handles: Vec<_> = ["gzip", "zstd"]
                .into_iter()
                .map(|c| {
                    let (s, cache_arg) = (&s, &cache_arg);
                    let layout = work.join(format!("layout-{c}"));
                    scope.spawn(move || gdn(s, &[cache_arg, "-C", c, "-o", &format!("oci:{}", path_str(&layout))]))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (i, (r, c)) in runs.into_iter().zip(["gzip", "zstd"]).enumerate() {
            let r = ok(r);
            assert!(!r.stderr.contains("warning"), "round {round}: {}", r.stderr);
            assert!(tree(&work.join(format!("layout-{c}"))) == references[i], "round {round}, {c}");
        }
        for e in entries(&cache) {
            assert_entry_valid(&e);
        }
    }
    // Both builds' blobs are known in the end (a build that raced another
    // merged what it read): a docker-archive after them reads the same.
    assert_eq!(entries(&cache).len(), 4);
    let out = work.join("after.tar");
    let r = ok(gdn(&s, &[&cache_arg, "-o", path_str(&out)]));
    assert!(!r.stderr.contains("warning"), "{}", r.stderr);
}

#[test]
fn the_cache_lives_under_xdg_cache_home_else_home() {
    let s = make_store(true);
    let work = s.dir.path();
    let run = |env: &[(&str, &Path)], unset: &[&str]| {
        let mut c = Command::new(PROGRAM);
        c.arg("-q").arg("--store-dir").arg(&s.store).arg("--database").arg(s.database.as_ref().unwrap());
        c.arg("-o").arg(work.join("image.tar")).arg(&s.app);
        for (k, v) in env {
            c.env(k, v);
        }
        for k in unset {
            c.env_remove(k);
        }
        let out = c.output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    let xdg = work.join("xdg");
    let home = work.join("home");
    run(&[("XDG_CACHE_HOME", &xdg), ("HOME", &home)], &[]);
    assert_eq!(entries(&xdg.join("guix-docker-native")).len(), 1, "one layer, one entry");
    assert!(!home.exists());
    run(&[("HOME", &home)], &["XDG_CACHE_HOME"]);
    assert_eq!(entries(&home.join(".cache/guix-docker-native")).len(), 1);
    // --no-cache writes nothing anywhere.
    let other = work.join("other-home");
    let mut c = Command::new(PROGRAM);
    c.arg("-q").arg("--no-cache").arg("--store-dir").arg(&s.store).arg("--database").arg(s.database.as_ref().unwrap());
    c.arg("-o").arg(work.join("image.tar")).arg(&s.app).env("HOME", &other).env_remove("XDG_CACHE_HOME");
    assert!(c.output().unwrap().status.success());
    assert!(!other.exists());
}

fn registry_tools() -> bool {
    have("docker-registry") && have("skopeo") && have("strace")
}

/// The manifest `docker://HOST/REFERENCE` names, its bytes as the registry
/// serves them (`skopeo inspect --raw`).
fn manifest_bytes(registry: &Registry, reference: &str) -> Vec<u8> {
    let out = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{}/{reference}", registry.host))
        .output()
        .unwrap();
    assert!(out.status.success(), "skopeo inspect {reference}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// The files of the image `docker://HOST/REFERENCE`, copied out by skopeo
/// into an OCI layout under `work`.
fn pulled_files(registry: &Registry, reference: &str, work: &Path) -> BTreeMap<String, Vec<u8>> {
    let layout = tempfile::tempdir_in(work).unwrap();
    let out = Command::new("skopeo")
        .args(["copy", "--src-tls-verify=false"])
        .arg(format!("docker://{}/{reference}", registry.host))
        .arg(format!("oci:{}:pulled", layout.path().display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "skopeo copy {reference}: {}", String::from_utf8_lossy(&out.stderr));
    layout_files(layout.path(), "pulled")
}

fn push_dest(registry: &Registry, reference: &str) -> String {
    format!("docker://{}/{reference}", registry.host)
}

#[test]
fn a_warm_push_to_a_repository_with_every_blob_reads_no_store_file_and_pushes_the_same_manifest() {
    if !registry_tools() {
        return;
    }
    for compression in ["gzip", "zstd"] {
        for with_database in [false, true] {
            let what = format!("{compression}, database: {with_database}");
            let s = make_store(with_database);
            let work = s.dir.path();
            let registry = Registry::plain();
            let cache_arg = format!("--cache-dir={}", path_str(&work.join("cache")));
            let args = |extra: &[&str], dest: &str| {
                let mut v: Vec<String> = vec!["-C".into(), compression.into(), "--tls-verify=false".into(), "-o".into(), dest.into()];
                v.extend(extra.iter().map(|s| s.to_string()));
                v
            };
            let run = |extra: &[&str], dest: &str, trace: Option<&Path>| {
                let a = args(extra, dest);
                ok(gdn_with(&s, &a.iter().map(String::as_str).collect::<Vec<_>>(), trace))
            };
            run(&["--no-cache"], &push_dest(&registry, "reference:1"), None);
            let trace = work.join("trace");
            run(&[&cache_arg], &push_dest(&registry, "app:1"), Some(&trace));
            let mut cold = store_files_opened(&trace);
            cold.sort();
            assert_eq!(cold, ["cache-test-app", "cache-test-data", "cache-test-doc", "cache-test-lib.so"], "{what}");
            let uploads = registry.requests("POST", "app/blobs/uploads/");
            let lookups = registry.requests("HEAD", "app/blobs/");
            // Warm, the repository has every blob: no store file is read,
            // nothing is uploaded, the manifest is the same.  The
            // repository holds the manifest the push makes, so no layer is
            // even looked up (the config is, as always).
            run(&[&cache_arg], &push_dest(&registry, "app:1"), Some(&trace));
            assert_eq!(store_files_opened(&trace), Vec::<String>::new(), "{what}: warm");
            assert_eq!(registry.requests("POST", "app/blobs/uploads/"), uploads, "{what}: nothing uploaded\n{}", registry.log());
            assert_eq!(registry.requests("HEAD", "app/blobs/"), lookups + 1, "{what}: the config alone looked up\n{}", registry.log());
            // Under another tag (the same manifest, so again no lookup).
            run(&[&cache_arg], &push_dest(&registry, "app:2"), None);
            assert_eq!(registry.requests("HEAD", "app/blobs/"), lookups + 2);
            assert!(manifest_bytes(&registry, "app:2") == manifest_bytes(&registry, "reference:1"));
            assert!(manifest_bytes(&registry, "app:1") == manifest_bytes(&registry, "reference:1"), "{what}: the --no-cache push's manifest");
            assert_eq!(pulled_files(&registry, "app:1", work)[&format!("{}/bin/cache-test-app", archive_name(&s.app))], app_program('1'));
        }
    }
}

#[test]
fn a_warm_push_mounts_from_the_repositories_the_cache_knows_and_uploads_to_another_registry() {
    if !registry_tools() {
        return;
    }
    let s = make_store(true);
    let work = s.dir.path();
    let registry = Registry::plain();
    let cache_arg = format!("--cache-dir={}", path_str(&work.join("cache")));
    let push = |registry: &Registry, reference: &str, trace: Option<&Path>| {
        let dest = push_dest(registry, reference);
        ok(gdn_with(&s, &[&cache_arg, "-C", "zstd", "--tls-verify=false", "-o", &dest], trace))
    };
    push(&registry, "first:1", None);
    let reference = manifest_bytes(&registry, "first:1");
    let expected = pulled_files(&registry, "first:1", work);
    // Another repository of the registry: every layer mounted from the
    // first, no store file read, the same image.
    let trace = work.join("trace");
    push(&registry, "second:1", Some(&trace));
    assert_eq!(store_files_opened(&trace), Vec::<String>::new(), "mounted, not read");
    assert_eq!(registry.requests("POST", "second/blobs/uploads/?mount="), 4, "{}", registry.log());
    assert_eq!(registry.requests("PATCH", "second/blobs/uploads/"), 0);
    assert!(manifest_bytes(&registry, "second:1") == reference);
    assert!(pulled_files(&registry, "second:1", work) == expected);
    // Another registry, which has none of the blobs the cache knows: they
    // are produced and uploaded, and the image is whole there.
    let other = Registry::plain();
    push(&other, "first:1", Some(&trace));
    assert_eq!(store_files_opened(&trace).len(), 4, "every layer read again");
    assert!(manifest_bytes(&other, "first:1") == reference);
    assert!(pulled_files(&other, "first:1", work) == expected);
    // The cache now knows both registries: a third repository of the
    // second mounts from it.
    push(&other, "third:1", Some(&trace));
    assert_eq!(store_files_opened(&trace), Vec::<String>::new());
    assert_eq!(other.requests("POST", "third/blobs/uploads/?mount="), 4, "{}", other.log());
    for e in entries(&work.join("cache")) {
        assert_entry_valid(&e);
    }
}

#[test]
fn an_item_rebuilt_between_two_pushes_is_pushed_with_its_new_contents() {
    if !registry_tools() {
        return;
    }
    for with_database in [true, false] {
        let s = make_store(with_database);
        let work = s.dir.path();
        let registry = Registry::plain();
        let cache_arg = format!("--cache-dir={}", path_str(&work.join("cache")));
        let dest = push_dest(&registry, "app:1");
        let program = format!("{}/bin/cache-test-app", archive_name(&s.app));
        for _ in 0..2 {
            ok(gdn(&s, &[&cache_arg, "-C", "gzip", "--tls-verify=false", "-o", &dest]));
        }
        assert!(pulled_files(&registry, "app:1", work)[&program] == app_program('1'));
        // Deleted and built again with other contents of the same size
        // (and, with a database, registered again; without one, with the
        // old mtime put back: only the ctime and inode tell).
        let mtime = fs::metadata(s.app.join("bin/cache-test-app")).unwrap().modified().unwrap();
        fs::remove_dir_all(&s.app).unwrap();
        write_app(&s.app, &s.lib, '2');
        std::os::unix::fs::symlink(&s.doc, s.app.join("share/doc")).unwrap();
        fs::File::options().write(true).open(s.app.join("bin/cache-test-app")).unwrap().set_modified(mtime).unwrap();
        if with_database {
            s.reregister(&s.app, &format!("sha256:{:064x}", 7));
        }
        ok(gdn(&s, &[&cache_arg, "-C", "gzip", "--tls-verify=false", "-o", &dest]));
        let pulled = pulled_files(&registry, "app:1", work);
        assert!(pulled[&program] == app_program('2'), "database: {with_database}: the new program is pushed");
        ok(gdn(&s, &["--no-cache", "-C", "gzip", "--tls-verify=false", "-o", &push_dest(&registry, "reference:1")]));
        assert!(manifest_bytes(&registry, "app:1") == manifest_bytes(&registry, "reference:1"), "database: {with_database}");
    }
}

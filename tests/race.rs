//! Races the builder.  Over many runs, a thread replaces files, directories
//! and symlinks of a small store while the image is built: by symlinks
//! leading outside the store, FIFOs, directories, other files of the same
//! size, and files that grew or shrank.  Every run must end either in a
//! correct archive (each layer's SHA-256 is its diff_id, and the layers
//! hold exactly what the store held when it was measured) or in a clear
//! error naming a path of the store, with nothing left beside the output;
//! and within seconds, never hanging.
//!
//! Two kinds of runs:
//! - the racer starts when the writing pass does (at the first progress
//!   report, once everything is measured), so a correct archive must equal
//!   the store as it was before the build;
//! - the racer starts with the build, so it may change what is measured:
//!   with one atomic change, a correct archive equals the store before it
//!   or after it.
//!
//! Bounded in time (about 20 s at most), in debug or release builds.  The
//! seed is printed; `GDN_RACE_SEED=N` replays one.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use guix_docker_native::{build_docker_image, Compression, ErrorKind, ImageOptions, Output};
use serde_json::Value;
use sha2::{Digest, Sha256};

const HASH_A: &str = "0a1b2c3d4f5g6h7i8j9k0l1m2n3p4q5r";
const HASH_B: &str = "1zyxwvsrqpnmlkjihgfdcba987654321";
const TIME_BUDGET: Duration = Duration::from_secs(20);
const MAX_RUNS: usize = 400;

/// A small deterministic generator (xorshift64*), so a seed replays a run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What the store holds at a path, as the archive should show it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Dir,
    File { executable: bool, data: Vec<u8> },
    Symlink(Vec<u8>),
    /// Something no archive may hold (a FIFO).
    Other,
}

/// The store's contents by archive name (the path without its leading `/`).
fn snapshot(store: &Path) -> BTreeMap<String, Node> {
    fn add(path: &Path, out: &mut BTreeMap<String, Node>) {
        let name = path.to_str().unwrap().trim_start_matches('/').to_string();
        let meta = fs::symlink_metadata(path).unwrap();
        let t = meta.file_type();
        let node = if t.is_dir() {
            let mut children: Vec<_> = fs::read_dir(path).unwrap().map(|e| e.unwrap().path()).collect();
            children.sort();
            for c in children {
                add(&c, out);
            }
            Node::Dir
        } else if t.is_file() {
            Node::File { executable: meta.permissions().mode() & 0o111 != 0, data: fs::read(path).unwrap() }
        } else if t.is_symlink() {
            Node::Symlink(fs::read_link(path).unwrap().as_os_str().as_bytes().to_vec())
        } else {
            Node::Other
        };
        out.insert(name, node);
    }
    let mut out = BTreeMap::new();
    for item in fs::read_dir(store).unwrap() {
        add(&item.unwrap().path(), &mut out);
    }
    out
}

/// Checks the archive as a loader would and returns what its layers hold
/// below `store` (the parent directories of the store are left out).
fn archived(archive: &[u8], store: &Path) -> BTreeMap<String, Node> {
    let mut files = BTreeMap::new();
    for e in tar::Archive::new(archive).entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        files.insert(name, data);
    }
    let manifest: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    let config: Value = serde_json::from_slice(&files[manifest[0]["Config"].as_str().unwrap()]).unwrap();
    let layers = manifest[0]["Layers"].as_array().unwrap();
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    assert_eq!(layers.len(), diff_ids.len());
    let prefix = format!("{}/", store.to_str().unwrap().trim_start_matches('/'));
    let mut out = BTreeMap::new();
    for (layer, id) in layers.iter().zip(diff_ids) {
        let bytes = &files[layer.as_str().unwrap()];
        assert_eq!(id.as_str().unwrap(), format!("sha256:{}", hex::encode(Sha256::digest(bytes))), "a layer is not its diff_id");
        for e in tar::Archive::new(&bytes[..]).entries().unwrap() {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().trim_end_matches('/').to_string();
            if !name.starts_with(&prefix) {
                continue;
            }
            let h = e.header().clone();
            let node = match h.entry_type() {
                tar::EntryType::Directory => Node::Dir,
                tar::EntryType::Regular => {
                    let mut data = Vec::new();
                    e.read_to_end(&mut data).unwrap();
                    assert_eq!(data.len() as u64, h.size().unwrap());
                    Node::File { executable: h.mode().unwrap() & 0o111 != 0, data }
                }
                tar::EntryType::Symlink => Node::Symlink(e.link_name_bytes().unwrap().into_owned()),
                t => panic!("{name}: unexpected entry type {t:?}"),
            };
            assert!(out.insert(name.clone(), node).is_none(), "{name} twice");
        }
    }
    out
}

/// The store of one run, made afresh, and a place outside it for what the
/// racer swaps in.
struct World {
    dir: tempfile::TempDir,
    store: PathBuf,
    /// The paths the racer may replace.
    targets: Vec<PathBuf>,
}

impl World {
    fn new(rng: &mut Rng) -> World {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("gnu/store");
        let a = store.join(format!("{HASH_A}-app-1.0"));
        let b = store.join(format!("{HASH_B}-data"));
        let mut targets = Vec::new();
        for d in 0..3 {
            let sub = a.join(format!("d{d}"));
            fs::create_dir_all(&sub).unwrap();
            targets.push(sub.clone());
            for f in 0..4 {
                // Sizes from empty to 600 KiB: several chunks for a few.
                let size = [0, 100, 5000, 70_000, 600_000][rng.below(5) as usize];
                let file = sub.join(format!("f{f}"));
                fs::write(&file, pattern(size, d * 10 + f)).unwrap();
                if rng.below(3) == 0 {
                    fs::set_permissions(&file, fs::Permissions::from_mode(0o755)).unwrap();
                }
                targets.push(file);
            }
            let link = sub.join("link");
            symlink(format!("f{}", rng.below(4)), &link).unwrap();
            targets.push(link);
        }
        // A store item that is one file.
        fs::write(&b, pattern(3000, 99)).unwrap();
        targets.push(b);
        fs::create_dir(dir.path().join("staging")).unwrap();
        World { dir, store, targets }
    }

    fn items(&self) -> Vec<PathBuf> {
        let mut items: Vec<PathBuf> = fs::read_dir(&self.store).unwrap().map(|e| e.unwrap().path()).collect();
        items.sort();
        items
    }
}

fn pattern(size: usize, seed: usize) -> Vec<u8> {
    (0..size).map(|i| (i * 31 + seed * 7) as u8).collect()
}

/// One change the racer makes.  All but growing and shrinking swap the
/// target with an object made beside the store, atomically
/// (`renameat2(RENAME_EXCHANGE)`), so the store never shows a half-made
/// change.
#[derive(Debug, Clone, Copy)]
enum Change {
    SymlinkToOutsideFileOfSameSize,
    Fifo,
    Directory,
    OtherFileOfSameSize,
    Grow,
    Shrink,
    SymlinkToOutsideDirectory,
    OtherDirectory,
}

const CHANGES: [Change; 8] = [
    Change::SymlinkToOutsideFileOfSameSize,
    Change::Fifo,
    Change::Directory,
    Change::OtherFileOfSameSize,
    Change::Grow,
    Change::Shrink,
    Change::SymlinkToOutsideDirectory,
    Change::OtherDirectory,
];

fn exchange(a: &Path, b: &Path) {
    let (ca, cb) = (CString::new(a.as_os_str().as_bytes()).unwrap(), CString::new(b.as_os_str().as_bytes()).unwrap());
    let r = unsafe { libc::renameat2(libc::AT_FDCWD, ca.as_ptr(), libc::AT_FDCWD, cb.as_ptr(), libc::RENAME_EXCHANGE) };
    assert_eq!(r, 0, "renameat2({}, {}): {}", a.display(), b.display(), std::io::Error::last_os_error());
}

/// Applies `change` to `target`, as fits what it is now; `n` makes
/// staging names unique.
fn apply(change: Change, target: &Path, staging: &Path, n: usize) {
    let new = staging.join(format!("new{n}"));
    let meta = fs::symlink_metadata(target).unwrap();
    let (is_file, is_dir) = (meta.file_type().is_file(), meta.file_type().is_dir());
    match change {
        Change::Grow if is_file => {
            fs::File::options().append(true).open(target).unwrap().write_all(b"grown").unwrap();
            return;
        }
        Change::Shrink if is_file => {
            fs::File::options().write(true).open(target).unwrap().set_len(meta.len() / 2).unwrap();
            return;
        }
        Change::SymlinkToOutsideFileOfSameSize => {
            let outside = staging.join(format!("outside{n}"));
            fs::write(&outside, vec![b'!'; if is_file { meta.len() as usize } else { 10 }]).unwrap();
            symlink(&outside, &new).unwrap();
        }
        Change::Fifo => {
            let c = CString::new(new.as_os_str().as_bytes()).unwrap();
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        }
        Change::Directory => {
            fs::create_dir(&new).unwrap();
            fs::write(new.join("inside"), "inside").unwrap();
        }
        Change::SymlinkToOutsideDirectory if is_dir => {
            let outside = staging.join(format!("outside{n}"));
            fs::create_dir(&outside).unwrap();
            for e in fs::read_dir(target).unwrap() {
                fs::write(outside.join(e.unwrap().file_name()), "outside").unwrap();
            }
            symlink(&outside, &new).unwrap();
        }
        Change::OtherDirectory if is_dir => {
            // The same names, other contents.
            fs::create_dir(&new).unwrap();
            for e in fs::read_dir(target).unwrap() {
                fs::write(new.join(e.unwrap().file_name()), "other").unwrap();
            }
        }
        // Another file of the same size and mtime (or, for a directory or
        // symlink, a file).
        _ => {
            let size = if is_file { meta.len() as usize } else { 7 };
            fs::write(&new, vec![b'?'; size]).unwrap();
            if is_file {
                fs::File::options().write(true).open(&new).unwrap().set_modified(meta.modified().unwrap()).unwrap();
            }
        }
    }
    exchange(&new, target);
}

/// How a run goes.
struct Run {
    /// The racer starts at the first progress report (after measuring);
    /// else with the build.
    after_measuring: bool,
    /// (delay from the start, target index, change)
    changes: Vec<(Duration, usize, Change)>,
    threads: usize,
    max_layers: Option<u32>,
    compression: Compression,
}

enum Outcome {
    Archive,
    Refused(String),
}

/// Runs a build raced as `run` says; returns how it ended, and how long
/// the build and its writing pass took.
fn run_one(world: &World, run: &Run) -> (Outcome, Duration, Duration) {
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("image.tar");
    let before = snapshot(&world.store);
    let mut o = ImageOptions::new();
    o.set_store_dir(&world.store).unwrap();
    o.set_threads(run.threads).unwrap();
    if let Some(n) = run.max_layers {
        o.set_max_layers(n).unwrap();
    }
    o.set_compression(run.compression, None).unwrap();
    let (start_tx, start_rx) = mpsc::channel::<()>();
    let start_tx = Mutex::new(Some(start_tx));
    let writing_started: Arc<Mutex<Option<Instant>>> = Arc::default();
    let started = Instant::now();
    if !run.after_measuring {
        let _ = start_tx.lock().unwrap().take().unwrap().send(());
    }
    let first_report = Arc::clone(&writing_started);
    o.set_progress(Some(Arc::new(move |_| {
        first_report.lock().unwrap().get_or_insert_with(Instant::now);
        if let Some(tx) = start_tx.lock().unwrap().take() {
            let _ = tx.send(());
        }
    })));
    let items = world.items();
    let staging = world.dir.path().join("staging");
    let (changes, targets) = (run.changes.clone(), world.targets.clone());
    let built = std::thread::scope(|s| {
        let racer = s.spawn(move || {
            if start_rx.recv().is_err() {
                return; // measuring failed: nothing was written
            }
            let t0 = Instant::now();
            for (n, (at, target, change)) in changes.into_iter().enumerate() {
                while t0.elapsed() < at {
                    std::hint::spin_loop();
                }
                let path = &targets[target];
                // An earlier change may have moved a directory above it.
                if fs::symlink_metadata(path).is_ok() {
                    apply(change, path, &staging, n);
                }
            }
        });
        let (tx, rx) = mpsc::channel();
        let out2 = out.clone();
        std::thread::spawn(move || {
            let _ = tx.send(build_docker_image(&items, Some(&items), &Output::Path(out2), &o));
        });
        let built = rx.recv_timeout(Duration::from_secs(20)).expect("a build did not end within 20 seconds");
        let ended = Instant::now();
        racer.join().unwrap();
        let left: Vec<_> = fs::read_dir(out_dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        (built, left, ended)
    });
    let (built, output, ended) = (built.0, built.1, built.2);
    let writing = writing_started.lock().unwrap().map_or(Duration::ZERO, |t| ended - t);
    let took = ended - started;
    match built {
        Ok(()) => {
            assert_eq!(output.len(), 1, "{output:?}");
            let mut bytes = fs::read(&out).unwrap();
            if run.compression == Compression::Gzip {
                let mut plain = Vec::new();
                flate2::read::MultiGzDecoder::new(&bytes[..]).read_to_end(&mut plain).unwrap();
                bytes = plain;
            }
            let got = archived(&bytes, &world.store);
            if run.after_measuring {
                assert!(got == before, "the archive is not the store as measured:\n{}", diff(&before, &got));
            } else {
                let after = snapshot(&world.store);
                assert!(
                    got == before || got == after,
                    "the archive is neither the store before the change nor after it:\nbefore: {}\nafter: {}",
                    diff(&before, &got),
                    diff(&after, &got)
                );
            }
            (Outcome::Archive, took, writing)
        }
        Err(e) => {
            assert!(output.is_empty(), "left behind after '{}': {output:?}", e.message);
            let store = world.store.to_str().unwrap();
            assert!(e.message.starts_with(store), "the error names no path of the store: {}", e.message);
            let changed = e.kind == ErrorKind::Io && e.message.contains(": changed during the build (");
            // When the racer ran while measuring, the FIFO may be what was measured.
            let refused = !run.after_measuring && e.kind == ErrorKind::UnsupportedFile && e.message.ends_with("a FIFO; a Docker image cannot carry it");
            assert!(changed || refused, "not a clear error: {:?}: {}", e.kind, e.message);
            (Outcome::Refused(e.message), took, writing)
        }
    }
}

fn diff(want: &BTreeMap<String, Node>, got: &BTreeMap<String, Node>) -> String {
    let mut out = String::new();
    for (k, v) in want {
        match got.get(k) {
            None => out += &format!("  missing {k}\n"),
            Some(g) if g != v => out += &format!("  differs {k}\n"),
            _ => {}
        }
    }
    for k in got.keys().filter(|k| !want.contains_key(*k)) {
        out += &format!("  extra {k}\n");
    }
    out
}

#[test]
fn builds_raced_by_a_changing_store_end_in_a_correct_archive_or_a_clear_error() {
    let seed = std::env::var("GDN_RACE_SEED")
        .ok()
        .map(|s| s.parse().expect("GDN_RACE_SEED: a number"))
        .unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1);
    eprintln!("race seed {seed} (GDN_RACE_SEED={seed} replays it)");
    let mut rng = Rng(seed);

    // How long a build and its writing pass take here (the most of three
    // quiet builds), so that changes fall inside them.
    let (mut build_time, mut write_time) = (Duration::from_micros(100), Duration::from_micros(100));
    for _ in 0..3 {
        let world = World::new(&mut rng);
        let quiet = Run { after_measuring: true, changes: vec![], threads: 2, max_layers: None, compression: Compression::None };
        let (outcome, took, writing) = run_one(&world, &quiet);
        assert!(matches!(outcome, Outcome::Archive));
        build_time = build_time.max(took);
        write_time = write_time.max(writing);
    }

    let started = Instant::now();
    let (mut archives, mut refusals, mut runs) = (0, Vec::new(), 0);
    while runs < MAX_RUNS && started.elapsed() < TIME_BUDGET {
        let world = World::new(&mut rng);
        let after_measuring = rng.below(3) != 0;
        let count = if after_measuring { 1 + rng.below(3) as usize } else { 1 };
        let span = if after_measuring { write_time } else { build_time }.as_micros() as u64;
        let mut changes: Vec<(Duration, usize, Change)> = (0..count)
            .map(|_| {
                let at = Duration::from_micros(rng.below(span));
                (at, rng.below(world.targets.len() as u64) as usize, CHANGES[rng.below(CHANGES.len() as u64) as usize])
            })
            .collect();
        changes.sort_by_key(|c| c.0);
        let run = Run {
            after_measuring,
            changes,
            threads: [1, 2, 4][rng.below(3) as usize],
            max_layers: [None, Some(2), Some(4)][rng.below(3) as usize],
            compression: if rng.below(6) == 0 { Compression::Gzip } else { Compression::None },
        };
        match run_one(&world, &run).0 {
            Outcome::Archive => archives += 1,
            Outcome::Refused(message) => refusals.push(message),
        }
        runs += 1;
    }
    eprintln!(
        "{runs} runs in {:.1} s (a quiet build takes {build_time:?}, its writing {write_time:?}): {archives} correct archives, {} clear errors",
        started.elapsed().as_secs_f64(),
        refusals.len()
    );
    for m in refusals.iter().take(5) {
        eprintln!("  e.g. {m}");
    }
    assert!(runs >= 25, "only {runs} runs in the time budget");
    // The racer must have hit builds, and missed some: else it tested nothing.
    assert!(!refusals.is_empty() && archives > 0, "{archives} archives, {} errors", refusals.len());
}

//! What is archived is what was measured.  Each test changes the store
//! between the measuring pass and the writing pass, from the progress
//! callback (first called once every item is measured, before a byte is
//! written), and checks that the build ends, within seconds, in an error
//! naming the path that changed, with nothing left beside the output.

use std::fs;
use std::io::Write;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use guix_docker_native::{build_docker_image, Compression, Error, ErrorKind, ImageOptions, Output};

const HASH_A: &str = "0a1b2c3d4f5g6h7i8j9k0l1m2n3p4q5r";
const HASH_B: &str = "1zyxwvsrqpnmlkjihgfdcba987654321";

struct Store {
    dir: tempfile::TempDir,
    store: PathBuf,
    a: PathBuf,
    b: PathBuf,
}

impl Store {
    fn new() -> Store {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("gnu/store");
        let a = store.join(format!("{HASH_A}-app-1.0"));
        let b = store.join(format!("{HASH_B}-lib-2.0"));
        fs::create_dir_all(a.join("bin")).unwrap();
        fs::create_dir_all(a.join("share/doc")).unwrap();
        fs::write(a.join("bin/app"), "#!/bin/sh\necho app\n").unwrap();
        fs::write(a.join("share/doc/README"), "public text\n").unwrap();
        fs::write(a.join("share/big"), vec![b'b'; 700 << 10]).unwrap();
        fs::create_dir_all(b.join("lib")).unwrap();
        fs::write(b.join("lib/libx.so"), vec![b'l'; 40 << 10]).unwrap();
        symlink(b.join("lib/libx.so"), a.join("share/libx.so")).unwrap();
        // Outside the store: what a symlink put into it would lead to.
        let outside = dir.path().join("outside");
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("README"), "secret text\n").unwrap();
        Store { dir, store, a, b }
    }

    fn outside(&self) -> PathBuf {
        self.dir.path().join("outside")
    }

    fn readme(&self) -> PathBuf {
        self.a.join("share/doc/README")
    }

    /// Builds, calling `change` at the first progress report, on a thread
    /// of its own so that a hang fails the test instead of stalling it.
    fn build_changing(&self, how: &Setup, change: impl FnOnce() + Send + 'static) -> Result<(), Error> {
        let out_dir = tempfile::tempdir().unwrap();
        let out = out_dir.path().join("image.tar");
        let mut o = ImageOptions::new();
        o.set_store_dir(&self.store).unwrap();
        o.set_threads(how.threads).unwrap();
        if let Some(n) = how.max_layers {
            o.set_max_layers(n).unwrap();
        }
        o.set_compression(how.compression, None).unwrap();
        for (path, source) in &how.extra_files {
            o.add_file(path, source.clone()).unwrap();
        }
        let change: Mutex<Option<Box<dyn FnOnce() + Send>>> = Mutex::new(Some(Box::new(change)));
        o.set_progress(Some(Arc::new(move |_| {
            if let Some(change) = change.lock().unwrap().take() {
                change();
            }
        })));
        let (items, closure) = (vec![self.a.clone()], vec![self.a.clone(), self.b.clone()]);
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(build_docker_image(&items, Some(&closure), &Output::Path(out), &o));
        });
        let r = rx.recv_timeout(Duration::from_secs(20)).expect("the build did not end within 20 seconds");
        if r.is_err() {
            let left: Vec<_> = fs::read_dir(out_dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
            assert!(left.is_empty(), "left behind: {left:?}");
        }
        r
    }
}

/// How a build is made: each change is tried with each of these.
struct Setup {
    threads: usize,
    max_layers: Option<u32>,
    compression: Compression,
    extra_files: Vec<(String, PathBuf)>,
}

fn setups() -> Vec<Setup> {
    vec![
        // One layer to a file, hashed on a thread of its own.
        Setup { threads: 2, max_layers: None, compression: Compression::None, extra_files: vec![] },
        // Layers in parallel, hashed inline.
        Setup { threads: 1, max_layers: Some(3), compression: Compression::None, extra_files: vec![] },
        // One ordered stream through a compressor.
        Setup { threads: 2, max_layers: Some(2), compression: Compression::Gzip, extra_files: vec![] },
    ]
}

/// Runs `change` (given the store) mid-build with every setup, and checks
/// the error names `path(store)` as changed during the build and says
/// `what`.
fn refused(change: fn(&Store), path: fn(&Store) -> PathBuf, what: &str) {
    for how in setups() {
        let s = Arc::new(Store::new());
        let s2 = Arc::clone(&s);
        let err = s.build_changing(&how, move || change(&s2)).expect_err("the build succeeded");
        assert_eq!(err.kind, ErrorKind::Io, "{}", err.message);
        let expected = format!("{}: changed during the build (", path(&s).display());
        assert!(err.message.starts_with(&expected) && err.message.contains(what), "got: {}\nwanted: {expected}...{what}", err.message);
    }
}

fn replace_with_symlink(path: &Path, target: &Path) {
    let tmp = path.with_extension("new");
    symlink(target, &tmp).unwrap();
    fs::rename(&tmp, path).unwrap();
}

#[test]
fn the_progress_callback_runs_between_the_passes() {
    // The harness itself: without a change, every setup builds.
    for how in setups() {
        let s = Store::new();
        s.build_changing(&how, || {}).unwrap();
    }
}

#[test]
fn a_file_replaced_by_a_symlink_to_an_outside_file_of_the_same_size() {
    refused(
        |s| {
            assert_eq!(fs::metadata(s.outside().join("README")).unwrap().len(), fs::metadata(s.readme()).unwrap().len());
            replace_with_symlink(&s.readme(), &s.outside().join("README"));
        },
        Store::readme,
        "it is now a symlink to '",
    );
}

#[test]
fn a_directory_replaced_by_a_symlink_to_an_outside_directory() {
    refused(
        |s| {
            let doc = s.a.join("share/doc");
            fs::rename(&doc, s.dir.path().join("moved-doc")).unwrap();
            symlink(s.outside(), &doc).unwrap();
        },
        |s| s.a.join("share/doc"),
        "it is now a symlink to '",
    );
}

#[test]
fn a_file_replaced_by_a_fifo() {
    refused(
        |s| {
            fs::remove_file(s.readme()).unwrap();
            let c = std::ffi::CString::new(s.readme().to_str().unwrap()).unwrap();
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        },
        Store::readme,
        "it is now a FIFO",
    );
}

#[test]
fn a_file_replaced_by_a_directory() {
    refused(
        |s| {
            fs::remove_file(s.readme()).unwrap();
            fs::create_dir(s.readme()).unwrap();
        },
        Store::readme,
        "it is now a directory",
    );
}

#[test]
fn a_file_replaced_by_another_file_of_the_same_size_and_mtime() {
    refused(
        |s| {
            let mtime = fs::metadata(s.readme()).unwrap().modified().unwrap();
            let tmp = s.a.join("share/README.new");
            fs::write(&tmp, "other text\n!").unwrap();
            fs::File::options().write(true).open(&tmp).unwrap().set_modified(mtime).unwrap();
            fs::rename(&tmp, s.readme()).unwrap();
        },
        Store::readme,
        "it is now a regular file of 12 bytes, not what was measured",
    );
}

#[test]
fn a_file_that_grew() {
    refused(
        |s| fs::File::options().append(true).open(s.a.join("share/big")).unwrap().write_all(b"more").unwrap(),
        |s| s.a.join("share/big"),
        "not what was measured",
    );
}

#[test]
fn a_file_that_shrank() {
    refused(
        |s| fs::File::options().write(true).open(s.a.join("share/big")).unwrap().set_len(10).unwrap(),
        |s| s.a.join("share/big"),
        "it is now a regular file of 10 bytes",
    );
}

#[test]
fn a_file_removed_or_added() {
    refused(|s| fs::remove_file(s.readme()).unwrap(), |s| s.a.join("share/doc"), "a directory of 0 entries");
    refused(|s| fs::write(s.b.join("lib/new"), "").unwrap(), |s| s.b.join("lib"), "a directory of 2 entries");
}

#[test]
fn a_store_item_replaced_by_a_symlink() {
    refused(
        |s| {
            fs::rename(&s.b, s.dir.path().join("moved-b")).unwrap();
            symlink(s.dir.path().join("moved-b"), &s.b).unwrap();
        },
        |s| s.b.clone(),
        "it is now a symlink to '",
    );
}

/// A change to a file, and what the error says of it.
type FileChange = (fn(&Path), &'static str);

#[test]
fn an_extra_file_replaced_by_a_fifo_or_another_file() {
    let changes: [FileChange; 2] = [
        (
            |f: &Path| {
                fs::remove_file(f).unwrap();
                let c = std::ffi::CString::new(f.to_str().unwrap()).unwrap();
                assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
            },
            "it is now a FIFO",
        ),
        (
            |f: &Path| {
                let tmp = f.with_extension("new");
                fs::write(&tmp, "other").unwrap();
                fs::rename(&tmp, f).unwrap();
            },
            "it is not the file measured",
        ),
    ];
    for (change, what) in changes {
        let s = Store::new();
        let extra = s.dir.path().join("extra.conf");
        fs::write(&extra, "extra").unwrap();
        let how = Setup {
            threads: 2,
            max_layers: Some(2),
            compression: Compression::None,
            extra_files: vec![("/etc/extra.conf".into(), extra.clone())],
        };
        let f = extra.clone();
        let err = s.build_changing(&how, move || change(&f)).expect_err("the build succeeded");
        assert_eq!(err.message, format!("{}: changed during the build ({what})", extra.display()));
    }
}

#[test]
fn an_extra_file_that_is_a_fifo_is_refused_before_writing() {
    let s = Store::new();
    let fifo = s.dir.path().join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let how = Setup { threads: 2, max_layers: None, compression: Compression::None, extra_files: vec![("/etc/f".into(), fifo.clone())] };
    let err = s.build_changing(&how, || panic!("nothing is written")).unwrap_err();
    assert_eq!(err.kind, ErrorKind::UnsupportedFile);
    assert_eq!(err.message, format!("{}: not a regular file (a FIFO)", fifo.display()));
}

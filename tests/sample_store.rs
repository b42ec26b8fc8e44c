//! The sample store generator: the store it makes has the closure its
//! documentation promises, found alike from the database and by scanning,
//! and its hello program runs.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use guix_docker_native::closure::{compute_closure, Closure};
use guix_docker_native::store::{StoreDir, StoreItem};
use guix_docker_native::ErrorKind;

const HELLO_LINE: &str = "Hello from the guix-docker-native sample store!";

fn run_generator(dir: &Path, options: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gdn-sample-store"))
        .args(options)
        .arg(dir)
        .output()
        .expect("gdn-sample-store runs")
}

/// A sample store in a temporary directory.
struct Sample {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    store: StoreDir,
    profile: StoreItem,
}

fn sample(options: &[&str]) -> Sample {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sample");
    let output = run_generator(&dir, options);
    assert!(output.status.success(), "gdn-sample-store failed: {}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "stdout should be the main item's path alone: {stdout:?}");
    let store = StoreDir::new(&dir.join("gnu/store")).unwrap();
    let profile = store.parse_item(Path::new(lines[0])).unwrap();
    assert_eq!(profile.name(), "profile");
    assert!(profile.path.is_dir());
    Sample { _tmp: tmp, dir, store, profile }
}

impl Sample {
    fn database(&self) -> PathBuf {
        self.dir.join("var/guix/db/db.sqlite")
    }

    fn item(&self, name: &str) -> StoreItem {
        let mut found = std::fs::read_dir(self.store.path())
            .unwrap()
            .map(|entry| self.store.parse_item(&entry.unwrap().path()).unwrap())
            .filter(|item| item.name() == name);
        let item = found.next().unwrap_or_else(|| panic!("no item named {name}"));
        assert!(found.next().is_none());
        item
    }
}

fn names(closure: &Closure) -> Vec<&str> {
    let mut names: Vec<&str> = closure.items.iter().map(|item| item.name()).collect();
    names.sort();
    names
}

/// Checks the closure of the profile from the database and by scanning.
fn check_closures(sample: &Sample) {
    let roots = [sample.profile.clone()];
    let from_database = compute_closure(&sample.store, &roots, Some(&sample.database())).unwrap();
    let by_scanning = compute_closure(&sample.store, &roots, None).unwrap();
    assert_eq!(names(&from_database), ["glibc-sample-2.39", "greeting-data-1.0", "hello-2.12.1", "profile"]);
    assert_eq!(from_database, by_scanning, "the database and a scan disagree");
    assert!(!from_database.contains(&sample.item("unrelated-0.1")));

    let references = |name: &str| -> Vec<String> {
        let mut names: Vec<String> = from_database
            .references_of(&sample.item(name))
            .unwrap()
            .iter()
            .map(|item| item.name().to_string())
            .collect();
        names.sort();
        names
    };
    assert_eq!(references("profile"), ["hello-2.12.1"]);
    assert_eq!(references("hello-2.12.1"), ["glibc-sample-2.39", "greeting-data-1.0"]);
    assert!(references("glibc-sample-2.39").is_empty());

    // The unrelated item's closure, too, is the same both ways.
    let unrelated = [sample.item("unrelated-0.1")];
    let from_database = compute_closure(&sample.store, &unrelated, Some(&sample.database())).unwrap();
    assert_eq!(from_database, compute_closure(&sample.store, &unrelated, None).unwrap());
    assert_eq!(names(&from_database), ["glibc-sample-2.39", "unrelated-0.1"]);
}

/// Runs `<profile>/bin/hello` in an empty environment but `env`.
fn run_hello(sample: &Sample, args: &[&str], env: &[(&str, &str)]) -> String {
    let output = Command::new(sample.profile.path.join("bin/hello"))
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(output.status.success(), "hello failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

fn check_hello_runs(sample: &Sample) {
    assert_eq!(run_hello(sample, &[], &[]), format!("{HELLO_LINE}\n"));
    assert_eq!(
        run_hello(sample, &["one", "two words"], &[("GREETING", "good morning")]),
        format!("{HELLO_LINE}\nargument 1: one\nargument 2: two words\nGREETING=good morning\n")
    );
}

/// Is `data` an ELF file with a program interpreter (dynamically linked)?
fn has_interpreter(data: &[u8]) -> bool {
    let u16_at = |at: usize| u16::from_le_bytes(data[at..at + 2].try_into().unwrap()) as usize;
    let phoff = u64::from_le_bytes(data[0x20..0x28].try_into().unwrap()) as usize;
    (0..u16_at(0x38)).any(|i| {
        let at = phoff + i * u16_at(0x36);
        u32::from_le_bytes(data[at..at + 4].try_into().unwrap()) == 3
    })
}

/// bin/hello needs nothing outside the closure: a static ELF program, or a
/// script run by a static busybox in the hello item.
fn check_hello_is_self_contained(sample: &Sample) {
    let hello = sample.item("hello-2.12.1");
    let program = std::fs::read(hello.path.join("bin/hello")).unwrap();
    if program.starts_with(b"\x7fELF") {
        assert!(!has_interpreter(&program), "bin/hello is dynamically linked");
    } else {
        let first_line = program.split(|&b| b == b'\n').next().unwrap();
        let busybox = hello.path.join("bin/busybox");
        assert_eq!(first_line, format!("#!{} sh", busybox.display()).as_bytes());
        let busybox = std::fs::read(busybox).unwrap();
        assert!(busybox.starts_with(b"\x7fELF") && !has_interpreter(&busybox));
    }
}

#[test]
fn closure_from_database_equals_closure_by_scanning() {
    let sample = sample(&[]);
    check_closures(&sample);
}

#[test]
fn hello_runs_and_prints_its_line() {
    let sample = sample(&[]);
    check_hello_is_self_contained(&sample);
    check_hello_runs(&sample);
}

#[test]
fn busybox_variant_behaves_the_same() {
    if !Path::new("/bin/busybox").exists() {
        eprintln!("SKIPPED: /bin/busybox (Debian's busybox-static) is not installed");
        return;
    }
    let sample = sample(&["--use-busybox"]);
    let hello = sample.item("hello-2.12.1");
    assert!(hello.path.join("bin/busybox").is_file());
    check_hello_is_self_contained(&sample);
    check_closures(&sample);
    check_hello_runs(&sample);
}

#[test]
fn the_store_has_what_images_must_handle() {
    let sample = sample(&[]);
    let hello = sample.item("hello-2.12.1");
    let glibc = sample.item("glibc-sample-2.39");
    let greeting = sample.item("greeting-data-1.0");

    // A file name over 100 bytes, in a path over 200 bytes inside the item.
    let long = walk(&hello.path)
        .into_keys()
        .find(|path| path.file_name().unwrap().len() > 100)
        .expect("a file name over 100 bytes");
    assert!(long.as_os_str().len() > 200);

    // One file hard-linked across two items.
    let a = std::fs::metadata(glibc.path.join("share/doc/glibc-sample/COPYING")).unwrap();
    let b = std::fs::metadata(hello.path.join("share/doc/hello/COPYING")).unwrap();
    assert_eq!((a.dev(), a.ino()), (b.dev(), b.ino()));

    // An empty directory, a dangling symlink, symlinks within and across items.
    let empty = hello.path.join("share/hello/empty");
    assert!(empty.is_dir() && std::fs::read_dir(&empty).unwrap().next().is_none());
    let dangling = hello.path.join("share/hello/dangling");
    assert!(dangling.symlink_metadata().unwrap().file_type().is_symlink() && !dangling.exists());
    assert_eq!(std::fs::read_link(hello.path.join("bin/hi")).unwrap(), Path::new("hello"));
    assert_eq!(
        std::fs::read_link(hello.path.join("share/hello/greeting.txt")).unwrap(),
        greeting.path.join("share/greeting/message.txt")
    );
    assert_eq!(std::fs::read_link(sample.profile.path.join("bin")).unwrap(), hello.path.join("bin"));

    // Modes and mtimes as in a real store.
    for item in std::fs::read_dir(sample.store.path()).unwrap() {
        for (path, metadata) in walk(&item.unwrap().path()) {
            assert_eq!(metadata.mtime(), 1, "{}", path.display());
            let mode = metadata.permissions().mode() & 0o7777;
            if metadata.is_dir() {
                assert_eq!(mode, 0o555, "{}", path.display());
            } else if metadata.is_file() {
                assert!(mode == 0o444 || mode == 0o555, "{}: mode {mode:o}", path.display());
            }
        }
    }
    assert_eq!(std::fs::metadata(hello.path.join("bin/hello")).unwrap().permissions().mode() & 0o7777, 0o555);
}

/// Every path under `root` (itself included) with its metadata.
fn walk(root: &Path) -> BTreeMap<PathBuf, std::fs::Metadata> {
    let mut found = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(path) = pending.pop() {
        let metadata = path.symlink_metadata().unwrap();
        if metadata.is_dir() {
            pending.extend(std::fs::read_dir(&path).unwrap().map(|entry| entry.unwrap().path()));
        }
        found.insert(path, metadata);
    }
    found
}

/// What must not change when the store is made again: every path's type,
/// mode, mtime, contents or target, and the database file's bytes.
fn fingerprint(sample: &Sample) -> Vec<String> {
    let mut lines: Vec<String> = walk(&sample.dir.join("gnu/store"))
        .into_iter()
        .filter(|(path, _)| path != &sample.dir.join("gnu/store"))
        .map(|(path, metadata)| {
            let what = if metadata.file_type().is_symlink() {
                format!("-> {}", std::fs::read_link(&path).unwrap().display())
            } else if metadata.is_file() {
                format!("{:?}", std::fs::read(&path).unwrap())
            } else {
                "dir".to_string()
            };
            format!("{} {:o} {} {} {what}", path.display(), metadata.mode(), metadata.mtime(), metadata.nlink())
        })
        .collect();
    lines.push(format!("{:?}", std::fs::read(sample.database()).unwrap()));
    lines
}

#[test]
fn regenerating_with_force_gives_the_same_store() {
    let sample = sample(&[]);
    let before = fingerprint(&sample);

    // Without --force an existing store is refused and left alone.
    let refused = run_generator(&sample.dir, &[]);
    assert!(!refused.status.success());
    assert!(refused.stdout.is_empty());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains(&sample.store.path().display().to_string()) && message.contains("--force"), "{message}");
    assert_eq!(fingerprint(&sample), before);

    // Make the store look different, then regenerate it.
    let stray = sample.store.path().join("00000000000000000000000000000000-stray");
    std::fs::create_dir(&stray).unwrap();
    let again = run_generator(&sample.dir, &["--force"]);
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    assert_eq!(String::from_utf8(again.stdout).unwrap().trim_end(), sample.profile.path.to_str().unwrap());
    assert!(!stray.exists());
    assert_eq!(fingerprint(&sample), before);
}

#[test]
fn a_missing_root_is_an_error_naming_it() {
    let sample = sample(&[]);
    let ghost = sample
        .store
        .parse_item(&sample.store.path().join("00000000000000000000000000000000-ghost"))
        .unwrap();
    let err = compute_closure(&sample.store, std::slice::from_ref(&ghost), Some(&sample.database())).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Io);
    assert!(err.message.contains(ghost.path.to_str().unwrap()), "{}", err.message);
}

//! Closures of small stores made in temporary directories.

#![allow(clippy::cloned_ref_to_slice_refs)]

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;

use rusqlite::Connection;
use sha2::{Digest, Sha256};

use super::*;
use crate::store::nix_base32_encode;

/// A store in a temporary directory.
struct TestStore {
    _dir: tempfile::TempDir,
    root: PathBuf,
    store: StoreDir,
}

impl TestStore {
    fn new() -> TestStore {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        std::fs::create_dir_all(root.join("gnu/store")).unwrap();
        let store = StoreDir::new(&root.join("gnu/store")).unwrap();
        TestStore { _dir: dir, root, store }
    }

    /// The item called `name`, whose hash part derives from the name.
    fn item(&self, name: &str) -> StoreItem {
        let digest = Sha256::digest(name.as_bytes());
        let base = format!("{}-{name}", nix_base32_encode(&digest[..20]));
        self.store.parse_item(&self.store.path().join(base)).unwrap()
    }

    /// Makes item `name` a directory holding `files` (relative path, contents).
    fn dir_item(&self, name: &str, files: &[(&str, String)]) -> StoreItem {
        let item = self.item(name);
        std::fs::create_dir(&item.path).unwrap();
        for (path, contents) in files {
            let path = item.path.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, contents).unwrap();
        }
        item
    }

    fn path(item: &StoreItem) -> String {
        item.path.to_str().unwrap().to_string()
    }

    /// A database in Guix's schema listing `items` with their references.
    fn database(&self, items: &[(&StoreItem, &[&StoreItem])]) -> PathBuf {
        let file = self.root.join("db.sqlite");
        let connection = Connection::open(&file).unwrap();
        connection.execute_batch(STORE_DATABASE_SCHEMA).unwrap();
        for (item, _) in items {
            connection
                .execute(
                    "INSERT INTO ValidPaths (path, hash, registrationTime, narSize) VALUES (?1, 'sha256:00', 1, 100)",
                    [TestStore::path(item)],
                )
                .unwrap();
        }
        for (item, references) in items {
            for reference in *references {
                connection
                    .execute(
                        "INSERT INTO Refs (referrer, reference) SELECT a.id, b.id FROM ValidPaths a, ValidPaths b \
                         WHERE a.path = ?1 AND b.path = ?2",
                        [TestStore::path(item), TestStore::path(reference)],
                    )
                    .unwrap();
            }
        }
        file
    }
}

/// The names of `closure`'s items and, per item, the names it references,
/// sorted by name.
fn describe(closure: &Closure) -> Vec<(String, Vec<String>)> {
    let mut described: Vec<(String, Vec<String>)> = closure
        .items
        .iter()
        .map(|item| {
            let references = closure.references_of(item).map(|refs| refs.iter().map(|r| r.name().to_string()).collect());
            let mut references: Vec<String> = references.unwrap_or_else(|| vec!["?".to_string()]);
            references.sort();
            (item.name().to_string(), references)
        })
        .collect();
    described.sort();
    described
}

fn sorted(mut pairs: Vec<(&str, Vec<&str>)>) -> Vec<(String, Vec<String>)> {
    pairs.sort();
    pairs
        .into_iter()
        .map(|(name, refs)| {
            let mut refs: Vec<String> = refs.into_iter().map(String::from).collect();
            refs.sort();
            (name.to_string(), refs)
        })
        .collect()
}

/// A store where `app` refers to `lib` by an embedded path, `lib` to
/// `data` by a symlink and to `note` (a single-file item) by its bare hash
/// part, `data` to itself, and `other` refers to `app` but is not reachable.
struct Sample {
    t: TestStore,
    app: StoreItem,
    lib: StoreItem,
    data: StoreItem,
    note: StoreItem,
    other: StoreItem,
}

fn sample() -> Sample {
    let t = TestStore::new();
    let note = t.item("note.txt");
    std::fs::write(&note.path, "just a note\n").unwrap();
    let data = t.dir_item("data-1", &[]);
    std::fs::write(data.path.join("self"), format!("I am {}", TestStore::path(&data))).unwrap();
    let lib = t.dir_item("lib-1", &[("lib/libx.so", format!("\0\0rpath={}:x", note.hash()))]);
    symlink(data.path.join("self"), lib.path.join("lib/data")).unwrap();
    let app = t.dir_item("app-1", &[("bin/app", format!("#!/bin/sh\nexec {}/lib/libx.so\n", TestStore::path(&lib)))]);
    let other = t.dir_item("other-1", &[("x", TestStore::path(&app))]);
    // Leftovers of a build share the hash part of `lib` but are no candidates.
    std::fs::write(t.store.path().join(format!("{}.lock", lib.base_name())), "").unwrap();
    Sample { t, app, lib, data, note, other }
}

fn expected_sample() -> Vec<(String, Vec<String>)> {
    sorted(vec![
        ("app-1", vec!["lib-1"]),
        ("lib-1", vec!["data-1", "note.txt"]),
        ("data-1", vec![]),
        ("note.txt", vec![]),
    ])
}

#[test]
fn scanning_follows_embedded_paths_symlinks_and_bare_hashes() {
    let s = sample();
    let closure = compute_closure(&s.t.store, &[s.app.clone()], None).unwrap();
    assert_eq!(describe(&closure), expected_sample());
    assert!(!closure.contains(&s.other));
    // Items sorted by path.
    let mut items = closure.items.clone();
    items.sort_by(|a, b| a.path.cmp(&b.path));
    assert_eq!(items, closure.items);
}

#[test]
fn scanning_from_several_roots_merges_their_closures() {
    let s = sample();
    let closure = compute_closure(&s.t.store, &[s.data.clone(), s.other.clone(), s.data.clone()], None).unwrap();
    let mut expected = expected_sample();
    expected.push(("other-1".to_string(), vec!["app-1".to_string()]));
    expected.sort();
    assert_eq!(describe(&closure), expected);
}

#[test]
fn scanning_does_not_follow_symlinks_out_of_the_item() {
    let t = TestStore::new();
    let hidden = t.dir_item("hidden-1", &[]);
    let outside = t.root.join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("f"), TestStore::path(&hidden)).unwrap();
    let app = t.dir_item("app-1", &[]);
    symlink(&outside, app.path.join("out")).unwrap();
    symlink(outside.join("f"), app.path.join("f")).unwrap();
    let closure = compute_closure(&t.store, &[app.clone()], None).unwrap();
    assert_eq!(closure.items, vec![app]);
}

#[test]
fn database_closure_matches_the_references_it_lists() {
    let s = sample();
    let (app, lib, data, note, other) = (&s.app, &s.lib, &s.data, &s.note, &s.other);
    // `data` lists itself, as the daemon records self-references.
    let db = s.t.database(&[(app, &[lib]), (lib, &[data, note]), (data, &[data]), (note, &[]), (other, &[app])]);
    let closure = compute_closure(&s.t.store, &[app.clone()], Some(&db)).unwrap();
    assert_eq!(describe(&closure), expected_sample());
    // The database, not the contents, decides: drop a reference and it is gone.
    std::fs::remove_file(&db).unwrap();
    let db = s.t.database(&[(app, &[lib]), (lib, &[data]), (data, &[]), (note, &[])]);
    let closure = compute_closure(&s.t.store, &[app.clone()], Some(&db)).unwrap();
    assert!(!closure.contains(note));
    assert_eq!(closure.items.len(), 3);
}

#[test]
fn database_reads_while_a_writer_holds_it_in_wal_mode() {
    let s = sample();
    let (app, lib, data, note) = (&s.app, &s.lib, &s.data, &s.note);
    let db = s.t.database(&[(app, &[lib]), (lib, &[data, note]), (data, &[]), (note, &[])]);
    let writer = Connection::open(&db).unwrap();
    let mode: String = writer.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0)).unwrap();
    assert_eq!(mode, "wal");
    // The writer registers `other` as a reference of `app` but has not
    // committed yet: the reader must neither wait nor see it.
    writer.execute_batch("BEGIN IMMEDIATE").unwrap();
    writer
        .execute(
            "INSERT INTO ValidPaths (path, hash, registrationTime) VALUES (?1, 'sha256:00', 1)",
            [TestStore::path(&s.other)],
        )
        .unwrap();
    let inserted = writer
        .execute(
            "INSERT INTO Refs (referrer, reference) SELECT a.id, b.id FROM ValidPaths a, ValidPaths b \
             WHERE a.path = ?1 AND b.path = ?2",
            [TestStore::path(app), TestStore::path(&s.other)],
        )
        .unwrap();
    assert_eq!(inserted, 1);
    let closure = compute_closure(&s.t.store, &[app.clone()], Some(&db)).unwrap();
    assert_eq!(describe(&closure), expected_sample());
    writer.execute_batch("ROLLBACK").unwrap();
}

#[test]
fn database_errors_name_the_item_and_the_file() {
    let s = sample();
    let db = s.t.database(&[(&s.lib, &[])]);
    let err = compute_closure(&s.t.store, &[s.app.clone()], Some(&db)).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Database);
    assert!(err.message.contains(&TestStore::path(&s.app)), "{}", err.message);
    assert!(err.message.contains(db.to_str().unwrap()), "{}", err.message);

    let text = s.t.root.join("not-a-db");
    std::fs::write(&text, "this is not SQLite at all, just some text that is long enough ".repeat(20)).unwrap();
    let other_tables = s.t.root.join("other.sqlite");
    Connection::open(&other_tables).unwrap().execute_batch("CREATE TABLE t (x)").unwrap();
    let missing = s.t.root.join("missing.sqlite");
    for file in [&text, &other_tables, &missing] {
        let err = compute_closure(&s.t.store, &[s.app.clone()], Some(file)).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Database, "{}", err.message);
        assert!(err.message.contains(file.to_str().unwrap()), "{}", err.message);
    }
    assert!(!missing.exists(), "a read-only open must not create the database");
}

/// A reference to no row of ValidPaths (a database written without foreign
/// keys) is an error naming the item, not a reference silently dropped.
#[test]
fn a_reference_to_no_row_is_a_damaged_database() {
    let s = sample();
    let db = s.t.database(&[(&s.app, &[]), (&s.lib, &[])]);
    let connection = Connection::open(&db).unwrap();
    connection.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
    connection
        .execute(
            "INSERT INTO Refs (referrer, reference) SELECT id, 999 FROM ValidPaths WHERE path = ?1",
            [TestStore::path(&s.app)],
        )
        .unwrap();
    let err = compute_closure(&s.t.store, &[s.app.clone()], Some(&db)).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Database);
    assert_eq!(
        err.message,
        format!(
            "store database {}: {} refers to the row 999, which is not in ValidPaths: the database is damaged \
             (its references are incomplete)",
            db.display(),
            TestStore::path(&s.app)
        )
    );
}

#[test]
fn database_member_missing_from_the_store_is_named() {
    let s = sample();
    let ghost = s.t.item("ghost-1");
    let db = s.t.database(&[(&s.app, &[&ghost]), (&ghost, &[])]);
    let err = compute_closure(&s.t.store, &[s.app.clone()], Some(&db)).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Io);
    assert!(err.message.contains(&TestStore::path(&ghost)), "{}", err.message);
    assert!(err.message.contains(&TestStore::path(&s.app)), "{}", err.message);
}

#[test]
fn missing_or_foreign_roots_are_refused() {
    let s = sample();
    let ghost = s.t.item("ghost-1");
    let err = compute_closure(&s.t.store, &[ghost.clone()], None).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Io);
    assert!(err.message.contains(&TestStore::path(&ghost)) && err.message.contains("does not exist"), "{}", err.message);

    let elsewhere = StoreDir::new(Path::new("/gnu/store")).unwrap();
    let err = compute_closure(&elsewhere, &[s.app.clone()], None).unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidStorePath);
    assert!(err.message.contains("not under the store directory /gnu/store"), "{}", err.message);
}

#[test]
fn check_closure_accepts_a_complete_closure() {
    let s = sample();
    let (app, lib, data, note) = (&s.app, &s.lib, &s.data, &s.note);
    let given: Vec<PathBuf> = [note, app, lib, data, app].iter().map(|i| i.path.clone()).collect();
    let closure = check_closure(&s.t.store, &[app.clone()], &given, None).unwrap();
    let mut expected = vec![app.clone(), lib.clone(), data.clone(), note.clone()];
    expected.sort();
    assert_eq!(closure.items, expected);
    assert_eq!(closure.references, None);

    let db = s.t.database(&[(app, &[lib]), (lib, &[data, note]), (data, &[data]), (note, &[])]);
    let closure = check_closure(&s.t.store, &[app.clone()], &given, Some(&db)).unwrap();
    assert_eq!(describe(&closure), expected_sample());
}

#[test]
fn check_closure_refuses_an_incomplete_closure() {
    let s = sample();
    let (app, lib, data, note) = (&s.app, &s.lib, &s.data, &s.note);
    let db = s.t.database(&[(app, &[lib]), (lib, &[data, note]), (data, &[]), (note, &[])]);
    let without_note: Vec<PathBuf> = [app, lib, data].iter().map(|i| i.path.clone()).collect();
    let err = check_closure(&s.t.store, &[app.clone()], &without_note, Some(&db)).unwrap_err();
    assert_eq!(err.kind, ErrorKind::IncompleteClosure);
    assert!(err.message.contains(&TestStore::path(note)), "{}", err.message);
    assert!(err.message.contains(&TestStore::path(lib)), "{}", err.message);
    // Without a database the references are unknown: accepted.
    assert!(check_closure(&s.t.store, &[app.clone()], &without_note, None).is_ok());

    let without_root: Vec<PathBuf> = [lib, data, note].iter().map(|i| i.path.clone()).collect();
    let err = check_closure(&s.t.store, &[app.clone()], &without_root, None).unwrap_err();
    assert_eq!(err.kind, ErrorKind::IncompleteClosure);
    assert!(err.message.contains(&TestStore::path(app)), "{}", err.message);

    let unregistered: Vec<PathBuf> = [app, lib, data, note, &s.other].iter().map(|i| i.path.clone()).collect();
    let err = check_closure(&s.t.store, &[app.clone()], &unregistered, Some(&db)).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Database);
    assert!(err.message.contains(&TestStore::path(&s.other)), "{}", err.message);
}

#[test]
fn check_closure_refuses_bad_paths() {
    let s = sample();
    let ghost = s.t.item("ghost-1");
    let err = check_closure(&s.t.store, &[s.app.clone()], &[s.app.path.clone(), ghost.path.clone()], None).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Io);
    assert!(err.message.contains(&TestStore::path(&ghost)), "{}", err.message);

    let inside = s.app.path.join("bin/app");
    let err = check_closure(&s.t.store, &[s.app.clone()], &[s.app.path.clone(), inside.clone()], None).unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidStorePath);
    assert!(err.message.contains(inside.to_str().unwrap()), "{}", err.message);

    let err = check_closure(&s.t.store, &[s.app.clone()], &[PathBuf::from("relative")], None).unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidStorePath);
}

#[test]
fn closure_files() {
    let s = sample();
    let file = s.t.root.join("closure");
    let (app, lib) = (TestStore::path(&s.app), TestStore::path(&s.lib));
    std::fs::write(&file, format!("{app}\n\n  \n{lib}\r\n")).unwrap();
    let expected = vec![PathBuf::from(&app), PathBuf::from(&lib)];
    assert_eq!(read_closure_file(&file).unwrap(), expected);
    assert_eq!(read_closure_file_in(&s.t.store, &file).unwrap(), expected);

    std::fs::write(&file, format!("{app}\n\ngnu/store/x\n")).unwrap();
    let err = read_closure_file(&file).unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidStorePath);
    assert!(err.message.contains(&format!("{}, line 3", file.display())), "{}", err.message);

    std::fs::write(&file, format!("{app}\n{app}/bin/app\n")).unwrap();
    assert!(read_closure_file(&file).is_ok());
    let err = read_closure_file_in(&s.t.store, &file).unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidStorePath);
    assert!(err.message.contains(&format!("{}, line 2", file.display())), "{}", err.message);
    assert!(err.message.contains("a file inside the store item"), "{}", err.message);

    let missing = s.t.root.join("no-such-file");
    let err = read_closure_file(&missing).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Io);
    assert!(err.message.contains(missing.to_str().unwrap()), "{}", err.message);
}

#[test]
fn closure_file_lines_refused_name_the_file_and_the_line() {
    let s = sample();
    let file = s.t.root.join("closure");
    let (app, lib) = (TestStore::path(&s.app), TestStore::path(&s.lib));
    let refused = |contents: &[u8], line: usize, why: &str| {
        std::fs::write(&file, contents).unwrap();
        let err = read_closure_file_in(&s.t.store, &file).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidStorePath, "{}", err.message);
        let start = format!("closure file {}, line {line}: ", file.display());
        assert!(err.message.starts_with(&start), "{}", err.message);
        assert!(err.message.contains(why), "{}", err.message);
    };
    refused(format!("{app}\n{lib}\0x\n").as_bytes(), 2, "NUL byte");
    let mut latin1 = format!("{app}\n{lib}").into_bytes();
    latin1.extend_from_slice(b"\xe9\n");
    refused(&latin1, 2, "not valid UTF-8");
    refused(format!("{app}\nrelative/path\n").as_bytes(), 2, "'relative/path': relative path");
    refused(format!("{app}\n/elsewhere/{}\n", s.lib.base_name()).as_bytes(), 2, "not under the store directory");
    refused(format!("{app}\n{}/nothash-x\n", s.t.store.path().display()).as_bytes(), 2, "not a store item name");

    // Tolerated: blank lines, spaces, CRLF, the same item twice.
    std::fs::write(&file, format!("\n  {app}  \r\n{lib}\n{app}\n\n")).unwrap();
    let listed = read_closure_file_in(&s.t.store, &file).unwrap();
    assert_eq!(listed, vec![PathBuf::from(&app), PathBuf::from(&lib), PathBuf::from(&app)]);
    let closure = check_closure(&s.t.store, &[s.app.clone()], &listed, None).unwrap();
    assert_eq!(closure.items.len(), 2);
}

/// Runs `open` on another thread and fails if it takes more than 10 s.
fn within_seconds<T: Send + 'static>(open: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, result) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(open());
    });
    result.recv_timeout(std::time::Duration::from_secs(10)).expect("did not return within 10 s: it blocked")
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo {}", path.display());
}

#[test]
fn fifo_and_device_inputs_are_refused_at_once() {
    let s = sample();
    let fifo = s.t.root.join("fifo");
    mkfifo(&fifo);
    let (store, app) = (s.t.store.clone(), s.app.clone());
    let (f, f2) = (fifo.clone(), fifo.clone());
    let err = within_seconds(move || read_closure_file_in(&store, &f).unwrap_err());
    assert_eq!(err.kind, ErrorKind::Io);
    assert!(err.message.starts_with(&format!("closure file {}: is a pipe with no writer", fifo.display())), "{}", err.message);
    let store = s.t.store.clone();
    let err = within_seconds(move || compute_closure(&store, &[app], Some(&f2)).unwrap_err());
    assert_eq!(err.kind, ErrorKind::Database);
    assert!(err.message.starts_with(&format!("store database {}: is a FIFO", fifo.display())), "{}", err.message);

    let err = read_closure_file(Path::new("/dev/zero")).unwrap_err();
    assert!(err.message.starts_with("closure file /dev/zero: is a character device"), "{}", err.message);
    let err = compute_closure(&s.t.store, &[s.app.clone()], Some(Path::new("/dev/zero"))).unwrap_err();
    assert!(err.message.starts_with("store database /dev/zero: is a character device"), "{}", err.message);

    // A FIFO where SQLite would open the database's WAL.
    let db = s.t.database(&[(&s.app, &[])]);
    let wal = s.t.root.join("db.sqlite-wal");
    mkfifo(&wal);
    let store = s.t.store.clone();
    let (app, db2) = (s.app.clone(), db.clone());
    let err = within_seconds(move || compute_closure(&store, &[app], Some(&db2)).unwrap_err());
    assert_eq!(err.kind, ErrorKind::Database);
    assert!(err.message.contains(&format!("{}-wal is a FIFO", db.display())), "{}", err.message);
}

#[test]
fn database_paths_that_are_no_database_are_explained() {
    let s = sample();
    let dir = s.t.root.join("db-dir");
    std::fs::create_dir(&dir).unwrap();
    let err = compute_closure(&s.t.store, &[s.app.clone()], Some(&dir)).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Database);
    assert_eq!(err.message, format!("store database {}: is a directory, not a regular file", dir.display()));

    let text = s.t.root.join("not-a-db");
    std::fs::write(&text, "this is not SQLite at all, just some text that is long enough ".repeat(20)).unwrap();
    let err = compute_closure(&s.t.store, &[s.app.clone()], Some(&text)).unwrap_err();
    assert!(err.message.starts_with(&format!("store database {}: not an SQLite database", text.display())), "{}", err.message);

    let other_tables = s.t.root.join("other.sqlite");
    Connection::open(&other_tables).unwrap().execute_batch("CREATE TABLE ValidPaths (x)").unwrap();
    let err = compute_closure(&s.t.store, &[s.app.clone()], Some(&other_tables)).unwrap_err();
    assert!(err.message.contains("not a store database: it lacks the tables ValidPaths and Refs"), "{}", err.message);

    let missing = s.t.root.join("missing.sqlite");
    let err = compute_closure(&s.t.store, &[s.app.clone()], Some(&missing)).unwrap_err();
    assert_eq!(err.message, format!("store database {}: no such file", missing.display()));
}

/// A `sqlite3` process holding `BEGIN EXCLUSIVE` on `file` until dropped.
struct ExclusiveLock(std::process::Child);

impl ExclusiveLock {
    fn take(file: &Path) -> ExclusiveLock {
        use std::io::{BufRead, Write};
        let mut child = std::process::Command::new("sqlite3")
            .arg(file)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("the sqlite3 command (Debian package sqlite3) runs");
        let stdin = child.stdin.as_mut().unwrap();
        stdin.write_all(b"BEGIN EXCLUSIVE;\nDELETE FROM Refs;\nSELECT 'locked';\n").unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line, "locked\n");
        ExclusiveLock(child)
    }
}

impl Drop for ExclusiveLock {
    fn drop(&mut self) {
        // Rolled back and closed cleanly: no hot journal is left behind.
        if let Some(mut stdin) = self.0.stdin.take() {
            let _ = std::io::Write::write_all(&mut stdin, b"ROLLBACK;\n");
        }
        let _ = self.0.wait();
    }
}

#[test]
fn a_locked_database_is_waited_for_then_named_as_locked() {
    let s = sample();
    let db = s.t.database(&[(&s.app, &[])]);
    // Rollback-journal mode (the default of a new file): a write
    // transaction keeps readers out.
    let lock = ExclusiveLock::take(&db);
    let start = std::time::Instant::now();
    let err = database::StoreDatabase::open_waiting(&db, std::time::Duration::from_millis(300)).err().unwrap();
    assert!(start.elapsed() >= std::time::Duration::from_millis(300), "it waited for the lock");
    assert_eq!(err.kind, ErrorKind::Database);
    assert_eq!(
        err.message,
        format!(
            "store database {}: locked by another process that is writing to it (still locked after 0.3 s); \
             try again when it has finished",
            db.display()
        )
    );
    drop(lock);
    assert!(database::StoreDatabase::open_waiting(&db, std::time::Duration::from_millis(300)).is_ok());

    // In WAL mode the same transaction does not stop a reader.
    Connection::open(&db).unwrap().query_row("PRAGMA journal_mode = WAL", [], |_| Ok(())).unwrap();
    let _lock = ExclusiveLock::take(&db);
    let closure = compute_closure(&s.t.store, &[s.app.clone()], Some(&db)).unwrap();
    assert_eq!(closure.items, vec![s.app.clone()]);
}

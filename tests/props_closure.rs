//! Property-based tests of the closure's inputs: closure files (what
//! `--closure-file` reads) and store databases.  Random databases — random
//! rows, dangling references, cycles, duplicate paths, NULLs, values of the
//! wrong type, missing tables, files that are not databases — never panic,
//! and give either the closure a simple reference computation over the
//! tables' raw rows finds, or a clear error naming the database.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use guix_docker_native::closure::{
    check_closure, compute_closure, read_closure_file, read_closure_file_in, Closure, STORE_DATABASE_SCHEMA,
};
use guix_docker_native::store::{nix_base32_encode, StoreDir, StoreItem};
use guix_docker_native::ErrorKind;
use proptest::prelude::*;
use rusqlite::types::Value;
use rusqlite::Connection;
use sha2::{Digest, Sha256};

/// Items in the pool; the last one is listed but does not exist on disk.
const POOL: usize = 6;

/// A store in a temporary directory with the pool's items (directories).
struct TestStore {
    dir: tempfile::TempDir,
    store: StoreDir,
    items: Vec<StoreItem>,
}

fn test_store() -> TestStore {
    let dir = tempfile::tempdir().unwrap();
    let store_path = dir.path().join("gnu/store");
    std::fs::create_dir_all(&store_path).unwrap();
    let store = StoreDir::new(&store_path).unwrap();
    let items: Vec<StoreItem> = (0..POOL)
        .map(|i| {
            let name = format!("item{i}");
            let hash = nix_base32_encode(&Sha256::digest(name.as_bytes())[..20]);
            store.parse_item(&store_path.join(format!("{hash}-{name}"))).unwrap()
        })
        .collect();
    for item in &items[..POOL - 1] {
        std::fs::create_dir(&item.path).unwrap();
    }
    TestStore { dir, store, items }
}

fn text(item: &StoreItem) -> String {
    item.path.to_str().unwrap().to_string()
}

// ---------------------------------------------------------------------
// Closure files.
// ---------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Line {
    Item(usize),
    /// An item with whitespace around it (and a CR, as from a DOS editor).
    Padded(usize, String, String),
    Blank(String),
    Relative(usize),
    Elsewhere,
    Inside(usize),
    BadName(String),
    /// Any bytes but a newline.
    Bytes(Vec<u8>),
}

fn line() -> impl Strategy<Value = Line> {
    prop_oneof![
        4 => (0..POOL).prop_map(Line::Item),
        2 => (0..POOL, "[ \t\r\x0c]{0,3}", "[ \t\r\x0c]{0,3}").prop_map(|(i, a, b)| Line::Padded(i, a, b)),
        2 => "[ \t\r\x0c]{0,4}".prop_map(Line::Blank),
        1 => (0..POOL).prop_map(Line::Relative),
        1 => Just(Line::Elsewhere),
        1 => (0..POOL).prop_map(Line::Inside),
        1 => "[a-z0-9 .-]{1,40}".prop_map(Line::BadName),
        1 => proptest::collection::vec(any::<u8>().prop_filter("no newline", |b| *b != b'\n'), 0..50).prop_map(Line::Bytes),
    ]
}

fn line_bytes(s: &TestStore, line: &Line) -> Vec<u8> {
    let store = text_of(s.store.path());
    match line {
        Line::Item(i) => text(&s.items[*i]).into_bytes(),
        Line::Padded(i, a, b) => format!("{a}{}{b}", text(&s.items[*i])).into_bytes(),
        Line::Blank(w) => w.clone().into_bytes(),
        Line::Relative(i) => text(&s.items[*i]).trim_start_matches('/').as_bytes().to_vec(),
        Line::Elsewhere => b"/elsewhere/gnu/store/00000000000000000000000000000000-x".to_vec(),
        Line::Inside(i) => format!("{}/bin/x", text(&s.items[*i])).into_bytes(),
        Line::BadName(n) => format!("{store}/{n}").into_bytes(),
        Line::Bytes(b) => b.clone(),
    }
}

fn text_of(path: &Path) -> String {
    path.to_str().unwrap().to_string()
}

/// `guix gc -R`'s format, read by the rules: lines split at '\n', ASCII
/// whitespace around a line ignored, blank lines skipped, every other line
/// an absolute path of UTF-8 text without NUL (the first that is not is
/// the error, by line number).
fn reference_read(data: &[u8]) -> Result<Vec<(usize, PathBuf)>, usize> {
    let mut out = Vec::new();
    for (i, raw) in data.split(|&b| b == b'\n').enumerate() {
        let is_space = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\x0c');
        let start = raw.iter().position(|b| !is_space(b));
        let Some(start) = start else { continue };
        let end = raw.iter().rposition(|b| !is_space(b)).unwrap() + 1;
        let path = &raw[start..end];
        if path[0] != b'/' || path.contains(&0) || std::str::from_utf8(path).is_err() {
            return Err(i + 1);
        }
        out.push((i + 1, PathBuf::from(OsStr::from_bytes(path))));
    }
    Ok(out)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn closure_files_are_read_by_the_rules(lines in proptest::collection::vec(line(), 0..12), final_newline in any::<bool>(), roots in proptest::collection::btree_set(0..POOL - 1, 1..3)) {
        let s = test_store();
        let mut data = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            if i > 0 {
                data.push(b'\n');
            }
            data.extend(line_bytes(&s, l));
        }
        if final_newline {
            data.push(b'\n');
        }
        let file = s.dir.path().join("closure.txt");
        std::fs::write(&file, &data).unwrap();
        let named = |line: usize| format!("closure file {}, line {line}", file.display());

        let expected = reference_read(&data);
        match (read_closure_file(&file), &expected) {
            (Ok(paths), Ok(lines)) => prop_assert_eq!(paths, lines.iter().map(|(_, p)| p.clone()).collect::<Vec<_>>()),
            (Err(err), Err(line)) => {
                prop_assert_eq!(err.kind, ErrorKind::InvalidStorePath);
                prop_assert!(err.message.contains(&named(*line)), "{}", err.message);
            }
            (got, want) => prop_assert!(false, "read {:?}, expected {:?}", got, want),
        }

        // In a store: every path must be one of its items; the first that
        // is not is the error, named by file and line.
        let in_store = expected.clone().map_err(|l| (l, ErrorKind::InvalidStorePath)).and_then(|lines| {
            let mut items = Vec::new();
            for (n, path) in lines {
                match s.store.parse_item(&path) {
                    Ok(item) => items.push(item.path),
                    Err(err) => return Err((n, err.kind)),
                }
            }
            Ok(items)
        });
        match (read_closure_file_in(&s.store, &file), &in_store) {
            (Ok(items), Ok(want)) => prop_assert_eq!(&items, want),
            (Err(err), Err((line, kind))) => {
                prop_assert_eq!(err.kind, *kind);
                prop_assert!(err.message.contains(&named(*line)), "{}", err.message);
            }
            (got, want) => prop_assert!(false, "read {:?}, expected {:?}", got, want),
        }

        // Checked as a closure without a database: the set of its items,
        // sorted, when all exist and the roots are in it.
        if let Ok(items) = in_store {
            let roots: Vec<StoreItem> = roots.iter().map(|&i| s.items[i].clone()).collect();
            let set: BTreeSet<PathBuf> = items.iter().cloned().collect();
            let missing = set.iter().any(|p| !p.exists());
            let lacks_root = roots.iter().any(|r| !set.contains(&r.path));
            match check_closure(&s.store, &roots, &items, None) {
                Ok(closure) => {
                    prop_assert!(!missing && !lacks_root);
                    prop_assert_eq!(closure.items.iter().map(|i| i.path.clone()).collect::<Vec<_>>(), set.into_iter().collect::<Vec<_>>());
                    prop_assert!(closure.references.is_none());
                }
                Err(err) if missing => {
                    prop_assert_eq!(err.kind, ErrorKind::Io);
                    prop_assert!(err.message.contains(&text(&s.items[POOL - 1])) && err.message.contains("does not exist"), "{}", err.message);
                }
                Err(err) => {
                    prop_assert!(lacks_root, "{}", err.message);
                    prop_assert_eq!(err.kind, ErrorKind::IncompleteClosure);
                    prop_assert!(roots.iter().any(|r| err.message.contains(&text(r))), "{}", err.message);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------
// Store databases.
// ---------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
enum Schema {
    /// Guix's schema, constraints and all.
    Guix,
    /// The same tables without types or constraints: anything goes.
    Loose,
    NoRefs,
    NoValidPaths,
    NotADatabase,
    EmptyFile,
}

#[derive(Debug, Clone)]
enum PathValue {
    Item(usize),
    Elsewhere,
    Inside(usize),
    Relative(usize),
    Null,
    Integer(i64),
    Blob(usize),
}

#[derive(Debug, Clone)]
enum IdValue {
    Integer(i64),
    Text(String),
    Null,
}

#[derive(Debug, Clone)]
struct DbCase {
    schema: Schema,
    rows: Vec<(IdValue, PathValue)>,
    refs: Vec<(IdValue, IdValue)>,
    roots: BTreeSet<usize>,
    garbage: Vec<u8>,
}

fn id_value(loose: bool) -> BoxedStrategy<IdValue> {
    if loose {
        prop_oneof![
            8 => (1i64..12).prop_map(IdValue::Integer),
            1 => "[0-9a-z]{1,2}".prop_map(IdValue::Text),
            1 => Just(IdValue::Null),
        ]
        .boxed()
    } else {
        prop_oneof![
            9 => (1i64..12).prop_map(IdValue::Integer),
            1 => "[0-9a-z]{1,2}".prop_map(IdValue::Text),
        ]
        .boxed()
    }
}

fn path_value() -> impl Strategy<Value = PathValue> {
    prop_oneof![
        12 => (0..POOL).prop_map(PathValue::Item),
        1 => Just(PathValue::Elsewhere),
        1 => (0..POOL).prop_map(PathValue::Inside),
        1 => (0..POOL).prop_map(PathValue::Relative),
        1 => Just(PathValue::Null),
        1 => any::<i64>().prop_map(PathValue::Integer),
        1 => (0..POOL).prop_map(PathValue::Blob),
    ]
}

fn db_case() -> impl Strategy<Value = DbCase> {
    prop_oneof![
        6 => Just(Schema::Guix),
        4 => Just(Schema::Loose),
        1 => Just(Schema::NoRefs),
        1 => Just(Schema::NoValidPaths),
        1 => Just(Schema::NotADatabase),
        1 => Just(Schema::EmptyFile),
    ]
    .prop_flat_map(|schema| {
        let loose = schema == Schema::Loose;
        // Mostly a well-formed row per item (id = index + 1, so that random
        // references mostly land), then random rows of any kind.
        let listed = proptest::collection::vec(proptest::bool::weighted(0.85), POOL);
        let reference = prop_oneof![8 => (1i64..=POOL as i64).prop_map(IdValue::Integer), 2 => id_value(loose)];
        (
            Just(schema),
            listed,
            proptest::collection::vec((id_value(loose), path_value()), 0..4),
            proptest::collection::vec((reference.clone(), reference), 0..16),
            proptest::collection::btree_set(0..POOL - 1, 1..3),
            proptest::collection::vec(any::<u8>(), 0..600),
        )
            .prop_map(|(schema, listed, extra, refs, roots, garbage)| {
                let mut rows: Vec<(IdValue, PathValue)> = (0..POOL)
                    .filter(|&i| listed[i])
                    .map(|i| (IdValue::Integer(i as i64 + 1), PathValue::Item(i)))
                    .collect();
                rows.extend(extra);
                DbCase { schema, rows, refs, roots, garbage }
            })
    })
}

fn sql_id(v: &IdValue) -> Value {
    match v {
        IdValue::Integer(i) => Value::Integer(*i),
        IdValue::Text(t) => Value::Text(t.clone()),
        IdValue::Null => Value::Null,
    }
}

fn sql_path(s: &TestStore, v: &PathValue) -> Value {
    match v {
        PathValue::Item(i) => Value::Text(text(&s.items[*i])),
        PathValue::Elsewhere => Value::Text("/elsewhere/00000000000000000000000000000000-x".into()),
        PathValue::Inside(i) => Value::Text(format!("{}/bin", text(&s.items[*i]))),
        PathValue::Relative(i) => Value::Text(text(&s.items[*i]).trim_start_matches('/').into()),
        PathValue::Null => Value::Null,
        PathValue::Integer(n) => Value::Integer(*n),
        PathValue::Blob(i) => Value::Blob(text(&s.items[*i]).into_bytes()),
    }
}

const LOOSE_SCHEMA: &str = "
create table ValidPaths (id, path, hash, registrationTime, deriver, narSize);
create table Refs (referrer, reference);
";

/// Writes the database of `case`; returns its raw rows, as stored (after
/// SQLite's type affinities and constraints), in rowid order.
#[allow(clippy::type_complexity)]
fn make_database(s: &TestStore, case: &DbCase, file: &Path) -> Option<(Vec<(Value, Value)>, Vec<(Value, Value)>)> {
    match case.schema {
        Schema::NotADatabase => {
            // Not an SQLite header, whatever the random bytes.
            let mut data = b"not a database: ".to_vec();
            data.extend(&case.garbage);
            std::fs::write(file, data).unwrap();
            return None;
        }
        Schema::EmptyFile => {
            std::fs::write(file, b"").unwrap();
            return None;
        }
        _ => {}
    }
    let db = Connection::open(file).unwrap();
    // As a database written without enforcing them: dangling references.
    db.execute_batch("PRAGMA foreign_keys = OFF; PRAGMA synchronous = OFF; PRAGMA journal_mode = MEMORY").unwrap();
    let schema = match case.schema {
        Schema::Guix | Schema::NoRefs | Schema::NoValidPaths => STORE_DATABASE_SCHEMA,
        _ => LOOSE_SCHEMA,
    };
    db.execute_batch(schema).unwrap();
    db.execute_batch("BEGIN").unwrap();
    for (id, path) in &case.rows {
        // Rows the constraints refuse are simply not there.
        let _ = db.execute(
            "INSERT OR IGNORE INTO ValidPaths (id, path, hash, registrationTime) VALUES (?1, ?2, 'sha256:00', 1)",
            [sql_id(id), sql_path(s, path)],
        );
    }
    for (referrer, reference) in &case.refs {
        let _ = db.execute("INSERT OR IGNORE INTO Refs (referrer, reference) VALUES (?1, ?2)", [sql_id(referrer), sql_id(reference)]);
    }
    db.execute_batch("COMMIT").unwrap();
    let read = |sql: &str| -> Vec<(Value, Value)> {
        let mut statement = db.prepare(sql).unwrap();
        let rows = statement.query_map([], |row| Ok((row.get::<_, Value>(0)?, row.get::<_, Value>(1)?))).unwrap();
        rows.collect::<rusqlite::Result<_>>().unwrap()
    };
    let tables = (read("SELECT id, path FROM ValidPaths ORDER BY rowid"), read("SELECT referrer, reference FROM Refs ORDER BY rowid"));
    match case.schema {
        Schema::NoRefs => db.execute_batch("DROP TABLE Refs").unwrap(),
        Schema::NoValidPaths => db.execute_batch("DROP TRIGGER DeleteSelfRefs; DROP TABLE ValidPaths").unwrap(),
        _ => {}
    }
    Some(tables)
}

/// What reading the closure must give.
#[derive(Debug)]
enum Expected {
    Closure(BTreeMap<PathBuf, BTreeSet<PathBuf>>),
    /// The database is broken in a way that has no right closure, but a
    /// closure can be read from it by a reasonable rule (a dangling
    /// reference dropped, the first of duplicate paths): either that
    /// closure or a database error.
    ClosureOrError(BTreeMap<PathBuf, BTreeSet<PathBuf>>, String),
    DatabaseError(String),
    /// A member missing from the store, named (or, when the database is
    /// also in doubt as above, a database error).
    Missing(Vec<PathBuf>, bool),
}

/// SQLite's `=` on values of columns without conversions: same storage
/// class and value; NULL equals nothing.
fn sql_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Integer(x), Value::Integer(y)) => x == y,
        (Value::Text(x), Value::Text(y)) => x == y,
        (Value::Blob(x), Value::Blob(y)) => x == y,
        _ => false,
    }
}

/// The closure by the tables' meaning: an item's id is that of its
/// ValidPaths row, its references the paths of the rows whose ids its Refs
/// rows name; followed from the roots, breadth first.
fn reference_closure(store: &StoreDir, roots: &[&StoreItem], valid: &[(Value, Value)], refs: &[(Value, Value)]) -> Expected {
    let mut closure: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    let mut queue: VecDeque<PathBuf> = roots.iter().map(|r| r.path.clone()).collect();
    let mut seen: BTreeSet<PathBuf> = queue.iter().cloned().collect();
    let mut doubt: Option<String> = None;
    while let Some(item) = queue.pop_front() {
        let key = Value::Text(item.to_str().unwrap().to_string());
        let rows: Vec<&(Value, Value)> = valid.iter().filter(|(_, p)| sql_equal(p, &key)).collect();
        let Some((id, _)) = rows.first() else { return Expected::DatabaseError(format!("{} is not valid", item.display())) };
        if rows.len() > 1 {
            doubt = Some(format!("{} is listed {} times", item.display(), rows.len()));
        }
        let Value::Integer(_) = id else { return Expected::DatabaseError(format!("the id of {} is {id:?}", item.display())) };
        let mut referenced = BTreeSet::new();
        for (_, reference) in refs.iter().filter(|(referrer, _)| sql_equal(referrer, id)) {
            let targets: Vec<&Value> = valid.iter().filter(|(i, _)| sql_equal(i, reference)).map(|(_, p)| p).collect();
            if targets.is_empty() {
                doubt = Some(format!("{} references {reference:?}, which is not in ValidPaths", item.display()));
            }
            for target in targets {
                let Value::Text(path) = target else { return Expected::DatabaseError(format!("a reference's path is {target:?}")) };
                let Ok(parsed) = store.parse_item(Path::new(path)) else {
                    return Expected::DatabaseError(format!("the reference {path} is not a store item"));
                };
                if parsed.path != item {
                    referenced.insert(parsed.path.clone());
                    if seen.insert(parsed.path.clone()) {
                        queue.push_back(parsed.path);
                    }
                }
            }
        }
        closure.insert(item, referenced);
    }
    let missing: Vec<PathBuf> = closure.keys().filter(|p| !p.exists()).cloned().collect();
    if !missing.is_empty() {
        return Expected::Missing(missing, doubt.is_some());
    }
    match doubt {
        Some(why) => Expected::ClosureOrError(closure, why),
        None => Expected::Closure(closure),
    }
}

fn closure_map(closure: &Closure) -> BTreeMap<PathBuf, BTreeSet<PathBuf>> {
    closure
        .items
        .iter()
        .map(|item| {
            let references = closure.references_of(item).expect("references from a database");
            (item.path.clone(), references.into_iter().map(|r| r.path.clone()).collect())
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(160))]

    #[test]
    fn random_databases_give_the_closure_or_a_clear_error(case in db_case()) {
        let s = test_store();
        let file = s.dir.path().join("db.sqlite");
        let tables = make_database(&s, &case, &file);
        let roots: Vec<StoreItem> = case.roots.iter().map(|&i| s.items[i].clone()).collect();
        let expected = match (&tables, case.schema) {
            (Some(_), Schema::NoRefs | Schema::NoValidPaths) | (None, _) => Expected::DatabaseError("not a store database".into()),
            (Some((valid, refs)), _) => reference_closure(&s.store, &roots.iter().collect::<Vec<_>>(), valid, refs),
        };
        let shown = file.display().to_string();
        let result = compute_closure(&s.store, &roots, Some(&file));
        match (&expected, &result) {
            (Expected::Closure(want), Ok(got)) => prop_assert_eq!(want, &closure_map(got)),
            (Expected::ClosureOrError(want, why), Ok(got)) => prop_assert_eq!(want, &closure_map(got), "{}", why),
            (Expected::ClosureOrError(_, why) | Expected::DatabaseError(why), Err(err)) => {
                prop_assert_eq!(err.kind, ErrorKind::Database, "{}: {}", why, err.message);
                prop_assert!(err.message.contains(&shown), "{:?} does not name the database", err.message);
            }
            (Expected::Missing(_, true), Err(err)) if err.kind == ErrorKind::Database => {
                prop_assert!(err.message.contains(&shown), "{:?} does not name the database", err.message);
            }
            (Expected::Missing(missing, _), Err(err)) => {
                prop_assert_eq!(err.kind, ErrorKind::Io, "{}", err.message);
                prop_assert!(missing.iter().any(|m| err.message.contains(&m.display().to_string())), "{}", err.message);
                prop_assert!(err.message.contains(&shown) && err.message.contains("does not exist"), "{}", err.message);
            }
            (want, got) => prop_assert!(false, "expected {:?}, got {:?}", want, got),
        }

        // The closure read back, given as the caller's closure in any order
        // and with repetitions, checks against the same database; without
        // a member some other member references, it is incomplete.
        if let (Expected::Closure(want), Ok(got)) = (&expected, &result) {
            let mut given: Vec<PathBuf> = want.keys().rev().cloned().collect();
            given.extend(want.keys().take(2).cloned());
            let checked = check_closure(&s.store, &roots, &given, Some(&file)).map_err(|e| TestCaseError::fail(e.message))?;
            prop_assert_eq!(&checked, got);
            let referenced: BTreeSet<&PathBuf> = want.values().flatten().collect();
            if let Some(dropped) = referenced.iter().find(|p| !roots.iter().any(|r| &r.path == **p)) {
                let fewer: Vec<PathBuf> = want.keys().filter(|p| p != dropped).cloned().collect();
                let err = check_closure(&s.store, &roots, &fewer, Some(&file)).unwrap_err();
                prop_assert_eq!(err.kind, ErrorKind::IncompleteClosure, "{}", err.message);
                prop_assert!(err.message.contains(&dropped.display().to_string()), "{}", err.message);
            }
        }
    }
}

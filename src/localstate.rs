//! The store database in the image, as `guix pack --localstatedir` puts it
//! there: `/var/guix/db/db.sqlite` registering exactly the closure, and the
//! GC roots Guix installs beside it, so that `guix gc` and `guix` work in a
//! container.
//!
//! Guix registers the items it copies with their NAR hash, NAR size,
//! references and deriver.  Those are facts about the items that only the
//! store database knows (computing a NAR hash means reading every byte
//! again), so the rows are copied from the source database: without one the
//! build fails rather than register invented hashes.
//!
//! The database is written to a temporary file that lives as long as the
//! [`ImageDatabase`] (it is removed when that is dropped, whatever happened),
//! in one transaction, rows in path order, so the same closure and rows give
//! the same bytes.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::closure::{Closure, STORE_DATABASE_SCHEMA};
use crate::error::{Error, ErrorKind, Result};
use crate::layers::{archive_name, Unit};
use crate::store::StoreItem;

/// Where the database goes in the image.
pub const DATABASE_PATH: &str = "/var/guix/db/db.sqlite";

/// Root's profiles; a profile there is a GC root.
const ROOT_PROFILES: &str = "/var/guix/profiles/per-user/root";

/// The profile name `guix pack` gives the main item.
const PROFILE_NAME: &str = "guix-profile";

/// Mode of the directories under `/var/guix` (Guix makes them with
/// `mkdir-p`, and `tar` records them as 0755 under the usual umask).
const DIRECTORY_MODE: u32 = 0o755;

/// How long to wait for a lock the daemon holds on the source database.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The columns of `ValidPaths` copied for each item, after its path.
const COPIED_COLUMNS: [&str; 4] = ["hash", "registrationTime", "deriver", "narSize"];

/// A store database holding exactly a closure, in a temporary file that is
/// removed when this is dropped.
pub struct ImageDatabase {
    file: tempfile::NamedTempFile,
}

impl ImageDatabase {
    /// Writes the database of `closure`, its rows and references copied
    /// from the store database `source`.
    ///
    /// Errors: a source that cannot be read or is not a store database, or
    /// that does not list a member as valid (`Database`); a member
    /// referring to an item outside the closure (`IncompleteClosure`); a
    /// temporary file that cannot be written (`Io`).
    pub fn build(closure: &Closure, source: &Path) -> Result<ImageDatabase> {
        let rows = read_rows(closure, source)?;
        let dir = std::env::temp_dir();
        let file = tempfile::Builder::new()
            .prefix(".gdn-db-")
            .suffix(".sqlite")
            .tempfile_in(&dir)
            .map_err(|err| Error::io(&dir, "creating the image's store database in", &err))?;
        write_database(file.path(), &rows)?;
        Ok(ImageDatabase { file })
    }

    /// The file holding the database.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// What the image gets, as Guix's `install-database-and-gc-roots`
    /// makes it: the database, `/var/guix/profiles` and `/var/guix/gcroots`
    /// with `gcroots/profiles` pointing to the profiles, and root's
    /// `guix-profile` (through `guix-profile-1-link`) pointing to `main`,
    /// which makes it a GC root.
    pub fn units(&self, main: &StoreItem, transformations: &[(String, String)]) -> Result<Vec<Unit>> {
        let name = |path: &str| archive_name(path, transformations);
        let dir = |path: &str| -> Result<Unit> { Ok(Unit::Dir { name: name(path)?, mode: DIRECTORY_MODE, uid: 0, gid: 0 }) };
        let link = |path: &str, target: &[u8]| -> Result<Unit> { Ok(Unit::Symlink { name: name(path)?, target: target.to_vec() }) };
        let main = main.path.to_str().ok_or_else(|| {
            Error::invalid_argument(format!("{}: not valid UTF-8", main.path.display()))
        })?;
        let generation = format!("{PROFILE_NAME}-1-link");
        Ok(vec![
            dir("/var/guix/db")?,
            Unit::File { name: name(DATABASE_PATH)?, source: self.path().to_path_buf() },
            dir("/var/guix/profiles")?,
            dir("/var/guix/profiles/per-user")?,
            dir(ROOT_PROFILES)?,
            link(&format!("{ROOT_PROFILES}/{generation}"), main.as_bytes())?,
            link(&format!("{ROOT_PROFILES}/{PROFILE_NAME}"), generation.as_bytes())?,
            dir("/var/guix/gcroots")?,
            link("/var/guix/gcroots/profiles", b"/var/guix/profiles")?,
        ])
    }
}

/// One item's registration: its path, the copied columns, and the
/// positions (in the closure) of the items it references, itself included
/// when the source says so.
struct Row {
    path: String,
    values: Vec<Value>,
    references: Vec<usize>,
}

fn database_error(file: &Path, what: &str, err: &rusqlite::Error) -> Error {
    Error::new(ErrorKind::Database, format!("store database {}: {what}: {err}", file.display()))
}

/// Reads the rows of every closure member from `source`, in one read
/// transaction (one consistent snapshot, while the daemon may write).
fn read_rows(closure: &Closure, source: &Path) -> Result<Vec<Row>> {
    if let Err(err) = std::fs::metadata(source) {
        return Err(Error::new(ErrorKind::Database, format!("store database {}: cannot open: {err}", source.display())));
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = Connection::open_with_flags(source, flags).map_err(|err| database_error(source, "cannot open", &err))?;
    connection.busy_timeout(BUSY_TIMEOUT).map_err(|err| database_error(source, "cannot set a busy timeout", &err))?;
    let transaction =
        connection.unchecked_transaction().map_err(|err| database_error(source, "cannot begin a read transaction", &err))?;
    let query = |err: rusqlite::Error| database_error(source, "not a store database, or cannot query it", &err);
    let mut find = transaction
        .prepare(&format!("SELECT id, {} FROM ValidPaths WHERE path = ?1", COPIED_COLUMNS.join(", ")))
        .map_err(query)?;
    let mut references = transaction
        .prepare("SELECT v.path FROM Refs r JOIN ValidPaths v ON v.id = r.reference WHERE r.referrer = ?1 ORDER BY v.path")
        .map_err(query)?;
    let positions: HashMap<&Path, usize> =
        closure.items.iter().enumerate().map(|(i, member)| (member.path.as_path(), i)).collect();
    let mut rows = Vec::with_capacity(closure.items.len());
    for item in &closure.items {
        let path = item.path.to_str().ok_or_else(|| {
            Error::new(ErrorKind::InvalidStorePath, format!("{}: not UTF-8, cannot be registered", item.path.display()))
        })?;
        let found = find
            .query_row([path], |row| {
                let id: i64 = row.get(0)?;
                let values = (1..=COPIED_COLUMNS.len()).map(|i| row.get::<_, Value>(i)).collect::<rusqlite::Result<Vec<_>>>()?;
                Ok((id, values))
            })
            .optional()
            .map_err(query)?;
        let Some((id, values)) = found else {
            return Err(Error::new(
                ErrorKind::Database,
                format!(
                    "{path}: not a valid item in the store database {}; the image's database needs its hash, size and references",
                    source.display()
                ),
            ));
        };
        let referenced: Vec<String> = references
            .query_map([id], |row| row.get(0))
            .and_then(|rows| rows.collect())
            .map_err(query)?;
        let mut referenced_positions = Vec::with_capacity(referenced.len());
        for reference in referenced {
            match positions.get(Path::new(&reference)) {
                Some(&p) => referenced_positions.push(p),
                None => {
                    return Err(Error::new(
                        ErrorKind::IncompleteClosure,
                        format!(
                            "the closure lacks {reference}, which {path} references (according to the store database {})",
                            source.display()
                        ),
                    ))
                }
            }
        }
        rows.push(Row { path: path.to_string(), values, references: referenced_positions });
    }
    Ok(rows)
}

/// Writes `rows` into a new database at `file`, in Guix's schema.  Item
/// `i` gets id `i + 1`.
fn write_database(file: &Path, rows: &[Row]) -> Result<()> {
    let failed = |err: rusqlite::Error| {
        Error::new(ErrorKind::Io, format!("{}: writing the image's store database: {err}", file.display()))
    };
    let mut connection = Connection::open(file).map_err(failed)?;
    // No journal file beside the database (the temporary file is the only
    // thing to clean up), and a fixed page size: the bytes depend on the
    // rows alone.
    connection.execute_batch("PRAGMA journal_mode = MEMORY; PRAGMA page_size = 4096;").map_err(failed)?;
    let transaction = connection.transaction().map_err(failed)?;
    transaction.execute_batch(STORE_DATABASE_SCHEMA).map_err(failed)?;
    {
        let mut insert_path = transaction
            .prepare(&format!(
                "INSERT INTO ValidPaths (id, path, {}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                COPIED_COLUMNS.join(", ")
            ))
            .map_err(failed)?;
        for (i, row) in rows.iter().enumerate() {
            let id = i as i64 + 1;
            let v = &row.values;
            insert_path.execute(rusqlite::params![id, row.path, v[0], v[1], v[2], v[3]]).map_err(failed)?;
        }
        let mut insert_reference =
            transaction.prepare("INSERT INTO Refs (referrer, reference) VALUES (?1, ?2)").map_err(failed)?;
        for (i, row) in rows.iter().enumerate() {
            for &reference in &row.references {
                insert_reference.execute([i as i64 + 1, reference as i64 + 1]).map_err(failed)?;
            }
        }
    }
    transaction.commit().map_err(failed)?;
    connection.close().map_err(|(_, err)| failed(err))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreDir;

    const HASHES: [&str; 3] =
        ["00000000000000000000000000000000", "11111111111111111111111111111111", "22222222222222222222222222222222"];

    /// A source database with three items: a -> b, a -> a, b, and c
    /// (outside the closure of a); returns the closure {a, b}.
    fn source(dir: &Path) -> (std::path::PathBuf, Closure) {
        let store = StoreDir::new(Path::new("/gnu/store")).unwrap();
        let paths: Vec<String> = ["a", "b", "c"].iter().zip(HASHES).map(|(n, h)| format!("/gnu/store/{h}-{n}")).collect();
        let file = dir.join("source.sqlite");
        let c = Connection::open(&file).unwrap();
        c.execute_batch(STORE_DATABASE_SCHEMA).unwrap();
        // Ids deliberately not in path order.
        for (id, (path, size)) in [(7, (&paths[2], 30)), (3, (&paths[1], 20)), (5, (&paths[0], 10))] {
            c.execute(
                "INSERT INTO ValidPaths (id, path, hash, registrationTime, deriver, narSize) VALUES (?1, ?2, ?3, 42, ?4, ?5)",
                rusqlite::params![id, path, format!("sha256:{size:064}"), format!("{path}.drv"), size],
            )
            .unwrap();
        }
        c.execute_batch("INSERT INTO Refs VALUES (5, 3); INSERT INTO Refs VALUES (5, 5); INSERT INTO Refs VALUES (7, 3);").unwrap();
        let items: Vec<StoreItem> = paths[..2].iter().map(|p| store.parse_item(Path::new(p)).unwrap()).collect();
        (file, Closure { items, references: None })
    }

    fn dump(file: &Path) -> (Vec<(i64, String, String, i64, Option<String>, i64)>, Vec<(i64, i64)>) {
        let c = Connection::open(file).unwrap();
        let paths = c
            .prepare("SELECT id, path, hash, registrationTime, deriver, narSize FROM ValidPaths ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))
            .unwrap()
            .collect::<rusqlite::Result<Vec<_>>>()
            .unwrap();
        let refs = c
            .prepare("SELECT referrer, reference FROM Refs ORDER BY referrer, reference")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<Vec<_>>>()
            .unwrap();
        (paths, refs)
    }

    #[test]
    fn exactly_the_closure_with_the_source_rows() {
        let dir = tempfile::tempdir().unwrap();
        let (file, closure) = source(dir.path());
        let db = ImageDatabase::build(&closure, &file).unwrap();
        let (paths, refs) = dump(db.path());
        let a = format!("/gnu/store/{}-a", HASHES[0]);
        let b = format!("/gnu/store/{}-b", HASHES[1]);
        assert_eq!(
            paths,
            [
                (1, a.clone(), format!("sha256:{:064}", 10), 42, Some(format!("{a}.drv")), 10),
                (2, b.clone(), format!("sha256:{:064}", 20), 42, Some(format!("{b}.drv")), 20),
            ]
        );
        assert_eq!(refs, [(1, 1), (1, 2)]);
    }

    #[test]
    fn same_rows_same_bytes_and_the_file_goes_away() {
        let dir = tempfile::tempdir().unwrap();
        let (file, closure) = source(dir.path());
        let first = ImageDatabase::build(&closure, &file).unwrap();
        let second = ImageDatabase::build(&closure, &file).unwrap();
        assert_ne!(first.path(), second.path());
        assert!(std::fs::read(first.path()).unwrap() == std::fs::read(second.path()).unwrap());
        let path = first.path().to_path_buf();
        drop(first);
        assert!(!path.exists(), "the temporary database is removed");
    }

    #[test]
    fn missing_rows_and_references_outside_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let (file, mut closure) = source(dir.path());
        let store = StoreDir::new(Path::new("/gnu/store")).unwrap();
        let unknown = store.parse_item(Path::new("/gnu/store/33333333333333333333333333333333-d")).unwrap();
        closure.items.push(unknown);
        let err = ImageDatabase::build(&closure, &file).err().unwrap();
        assert_eq!(err.kind, ErrorKind::Database);
        assert!(err.message.contains("-d: not a valid item in the store database"), "{}", err.message);

        closure.items.truncate(1);
        let err = ImageDatabase::build(&closure, &file).err().unwrap();
        assert_eq!(err.kind, ErrorKind::IncompleteClosure);
        assert!(err.message.contains("-b, which") && err.message.contains("-a references"), "{}", err.message);

        let not_db = dir.path().join("not.sqlite");
        std::fs::write(&not_db, "not SQLite at all, but long enough to be read as a header.....................................").unwrap();
        let err = ImageDatabase::build(&closure, &not_db).err().unwrap();
        assert_eq!(err.kind, ErrorKind::Database);
        assert!(err.message.contains("not.sqlite"), "{}", err.message);
    }
}

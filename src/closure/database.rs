//! Reading references from the store database, Guix's (and Nix's) SQLite
//! file with the tables `ValidPaths(id, path, ...)` and `Refs(referrer,
//! reference)`.
//!
//! The file is opened read-only, with a busy timeout, so it is safe to read
//! while the daemon holds it open and writes to it.  It is not opened as
//! `immutable`: the daemon may be writing to it in WAL mode, and SQLite must
//! see its WAL.  All reads happen in one read transaction, so they see one
//! consistent snapshot.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::error::{Error, ErrorKind, Result};
use crate::store::{StoreDir, StoreItem};

/// How long to wait for a lock the daemon holds before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// A store database opened read-only.
pub struct StoreDatabase {
    connection: Connection,
    file: PathBuf,
}

impl StoreDatabase {
    /// Opens `file` read-only and checks that it is a store database.
    pub fn open(file: &Path) -> Result<StoreDatabase> {
        if let Err(err) = std::fs::metadata(file) {
            return Err(Error::new(
                ErrorKind::Database,
                format!("store database {}: cannot open: {err}", file.display()),
            ));
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let connection = Connection::open_with_flags(file, flags)
            .map_err(|err| database_error(file, "cannot open", &err))?;
        connection
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(|err| database_error(file, "cannot set a busy timeout", &err))?;
        // The first read finds out whether the file is an SQLite database at all.
        let tables: i64 = connection
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('ValidPaths', 'Refs')",
                [],
                |row| row.get(0),
            )
            .map_err(|err| database_error(file, "not a store database", &err))?;
        if tables != 2 {
            return Err(Error::new(
                ErrorKind::Database,
                format!("store database {}: not a store database: it lacks the tables ValidPaths and Refs", file.display()),
            ));
        }
        Ok(StoreDatabase { connection, file: file.to_path_buf() })
    }

    /// Runs `read` in one read transaction, on a consistent snapshot.
    pub fn snapshot<T>(&self, read: impl FnOnce(&mut Snapshot) -> Result<T>) -> Result<T> {
        let transaction = self
            .connection
            .unchecked_transaction()
            .map_err(|err| database_error(&self.file, "cannot begin a read transaction", &err))?;
        let mut snapshot = Snapshot {
            database: self,
            find_id: self.prepare("SELECT id FROM ValidPaths WHERE path = ?1")?,
            find_references: self.prepare(
                "SELECT v.path FROM Refs r JOIN ValidPaths v ON v.id = r.reference \
                 WHERE r.referrer = ?1 ORDER BY v.path",
            )?,
        };
        let result = read(&mut snapshot);
        drop(snapshot);
        // Only read: ending the transaction by rolling back is enough.
        drop(transaction);
        result
    }

    fn prepare(&self, sql: &str) -> Result<rusqlite::CachedStatement<'_>> {
        self.connection
            .prepare_cached(sql)
            .map_err(|err| database_error(&self.file, "cannot query", &err))
    }
}

/// Queries on one consistent snapshot of the database.
pub struct Snapshot<'a> {
    database: &'a StoreDatabase,
    find_id: rusqlite::CachedStatement<'a>,
    find_references: rusqlite::CachedStatement<'a>,
}

impl Snapshot<'_> {
    /// The items `item` references (without itself), or `None` when the
    /// database does not list `item` as a valid item.
    pub fn references(&mut self, store: &StoreDir, item: &StoreItem) -> Result<Option<Vec<StoreItem>>> {
        let file = &self.database.file;
        let path = item.path.to_str().ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidStorePath,
                format!("{}: not UTF-8, cannot be looked up in the store database", item.path.display()),
            )
        })?;
        let id: Option<i64> = self
            .find_id
            .query_row([path], |row| row.get(0))
            .optional()
            .map_err(|err| database_error(file, "cannot query", &err))?;
        let Some(id) = id else { return Ok(None) };
        let paths = self
            .find_references
            .query_map([id], |row| row.get::<_, String>(0))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<String>>>())
            .map_err(|err| database_error(file, "cannot query", &err))?;
        let mut references = Vec::with_capacity(paths.len());
        for reference in paths {
            let reference = store.parse_item(Path::new(&reference)).map_err(|err| {
                Error::new(
                    ErrorKind::Database,
                    format!(
                        "store database {}: the reference '{reference}' of {} is not a store item: {}",
                        file.display(),
                        item.path.display(),
                        err.message
                    ),
                )
            })?;
            if reference != *item {
                references.push(reference);
            }
        }
        Ok(Some(references))
    }
}

fn database_error(file: &Path, what: &str, err: &rusqlite::Error) -> Error {
    Error::new(ErrorKind::Database, format!("store database {}: {what}: {err}", file.display()))
}

//! Reading references from the store database, Guix's (and Nix's) SQLite
//! file with the tables `ValidPaths(id, path, hash, registrationTime, ...)`
//! and `Refs(referrer, reference)`; and each item's registration (its NAR
//! hash as written, and when it was registered).
//!
//! The file is opened read-only, with a busy timeout, so it is safe to read
//! while the daemon holds it open and writes to it.  It is not opened as
//! `immutable`: the daemon may be writing to it in WAL mode, and SQLite must
//! see its WAL.  All reads happen in one read transaction, so they see one
//! consistent snapshot.
//!
//! What a reader meets: in WAL mode (Guix's default) a writer never blocks
//! it; in rollback-journal mode a write transaction holds a lock that
//! readers wait for, here at most [`BUSY_TIMEOUT`], and then the error says
//! the database is locked.  A WAL-mode database can be read only when its
//! `-wal` and `-shm` files exist or can be created: in a directory this
//! user cannot write to, SQLite refuses, and the error says why.  The path
//! must be a regular file (a FIFO would block SQLite's `open` forever).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::input;
use crate::error::{Error, ErrorKind, Result};
use crate::store::{StoreDir, StoreItem};

/// How long to wait for a lock the daemon holds before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// A store database opened read-only.
pub struct StoreDatabase {
    connection: Connection,
    file: PathBuf,
    /// What the file's header says, for the messages of failed reads.
    wal: bool,
    busy_timeout: Duration,
}

impl StoreDatabase {
    /// Opens `file` read-only and checks that it is a store database.
    pub fn open(file: &Path) -> Result<StoreDatabase> {
        StoreDatabase::open_waiting(file, BUSY_TIMEOUT)
    }

    /// [`StoreDatabase::open`], waiting at most `busy_timeout` for a lock
    /// another process holds.
    pub(super) fn open_waiting(file: &Path, busy_timeout: Duration) -> Result<StoreDatabase> {
        // SQLite opens files with a blocking `open`: make sure first that
        // neither the database nor the files SQLite opens beside it could
        // make it wait forever.
        let (header_file, _) = input::open_regular_file(file, "store database", ErrorKind::Database)?;
        for suffix in ["-wal", "-shm", "-journal"] {
            let mut companion = file.as_os_str().to_owned();
            companion.push(suffix);
            let companion = PathBuf::from(companion);
            if let Some(kind) = std::fs::metadata(&companion).ok().as_ref().and_then(input::not_a_regular_file) {
                return Err(Error::new(
                    ErrorKind::Database,
                    format!(
                        "store database {}: {} is {kind}, not a regular file, so SQLite cannot read the database",
                        file.display(),
                        companion.display()
                    ),
                ));
            }
        }
        let wal = is_wal_mode(&header_file);
        drop(header_file);
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let connection = Connection::open_with_flags(file, flags)
            .map_err(|err| database_error(file, "cannot be opened", &err))?;
        connection
            .busy_timeout(busy_timeout)
            .map_err(|err| database_error(file, "cannot set a busy timeout", &err))?;
        let database = StoreDatabase { connection, file: file.to_path_buf(), wal, busy_timeout };
        // The first read finds out whether the file is an SQLite database at all.
        let tables: i64 = database
            .connection
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('ValidPaths', 'Refs')",
                [],
                |row| row.get(0),
            )
            .map_err(|err| database.error("cannot be read", &err))?;
        if tables != 2 {
            return Err(Error::new(
                ErrorKind::Database,
                format!("store database {}: not a store database: it lacks the tables ValidPaths and Refs", file.display()),
            ));
        }
        Ok(database)
    }

    /// The error of a failed read, in the user's terms where SQLite's
    /// message would not say what to do.
    fn error(&self, what: &str, err: &rusqlite::Error) -> Error {
        let file = self.file.display();
        let code = err.sqlite_error_code();
        let message = match code {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => format!(
                "store database {file}: locked by another process that is writing to it (still locked after {} s); \
                 try again when it has finished",
                self.busy_timeout.as_secs_f64()
            ),
            Some(rusqlite::ErrorCode::NotADatabase) => {
                format!("store database {file}: not an SQLite database (SQLite: {err})")
            }
            Some(rusqlite::ErrorCode::DatabaseCorrupt) => {
                format!("store database {file}: damaged, SQLite cannot read it ({err})")
            }
            Some(rusqlite::ErrorCode::ReadOnly | rusqlite::ErrorCode::CannotOpen) if self.wal => {
                let dir = self.file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
                format!(
                    "store database {file}: in WAL mode, which SQLite reads only with the files {file}-wal and \
                     {file}-shm beside it; they are missing or unreadable and cannot be made, since this user \
                     cannot write to {}; read it as a user who can (the Guix daemon's user), or give \
                     --closure-file instead (SQLite: {err})",
                    dir.display()
                )
            }
            _ => return database_error(&self.file, what, err),
        };
        Error::new(ErrorKind::Database, message)
    }

    /// Runs `read` in one read transaction, on a consistent snapshot.
    pub fn snapshot<T>(&self, read: impl FnOnce(&mut Snapshot) -> Result<T>) -> Result<T> {
        let transaction = self
            .connection
            .unchecked_transaction()
            .map_err(|err| self.error("cannot begin a read transaction", &err))?;
        let mut snapshot = Snapshot {
            database: self,
            find_id: self.prepare("SELECT id FROM ValidPaths WHERE path = ?1")?,
            find_references: self.prepare(
                // A LEFT JOIN, so that a reference to no row (a damaged
                // database, written without foreign keys) is seen, not dropped.
                "SELECT r.reference, v.path FROM Refs r LEFT JOIN ValidPaths v ON v.id = r.reference \
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
            .map_err(|err| self.error("cannot be queried", &err))
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
        let database = self.database;
        let file = &database.file;
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
            .map_err(|err| database.error("cannot be queried", &err))?;
        let Some(id) = id else { return Ok(None) };
        let rows = self
            .find_references
            .query_map([id], |row| Ok((row.get::<_, i64>(0)?, row.get::<_, Option<String>>(1)?)))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<(i64, Option<String>)>>>())
            .map_err(|err| database.error("cannot be queried", &err))?;
        let mut references = Vec::with_capacity(rows.len());
        for (reference_id, reference) in rows {
            let Some(reference) = reference else {
                return Err(Error::new(
                    ErrorKind::Database,
                    format!(
                        "store database {}: {} refers to the row {reference_id}, which is not in ValidPaths: \
                         the database is damaged (its references are incomplete)",
                        file.display(),
                        item.path.display()
                    ),
                ));
            };
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

/// What `ValidPaths` says of an item besides its references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The `hash` column as written: `sha256:` and base16 (Guix) or
    /// nix-base32 (Nix); not checked here.  `None` when the column is not
    /// text (a damaged row).
    pub hash: Option<String>,
    /// Seconds since the epoch.
    pub registration_time: i64,
}

impl Snapshot<'_> {
    /// The registration of `item`, or `None` when the database does not
    /// list it as a valid item.
    pub fn registration(&mut self, item: &StoreItem) -> Result<Option<Registration>> {
        let database = self.database;
        let Some(path) = item.path.to_str() else { return Ok(None) };
        let mut statement = database.prepare("SELECT hash, registrationTime FROM ValidPaths WHERE path = ?1")?;
        statement
            .query_row([path], |row| {
                let hash = match row.get_ref(0)? {
                    rusqlite::types::ValueRef::Text(text) => std::str::from_utf8(text).ok().map(str::to_owned),
                    _ => None,
                };
                let registration_time = row.get::<_, Option<i64>>(1)?.unwrap_or(0);
                Ok(Registration { hash, registration_time })
            })
            .optional()
            .map_err(|err| database.error("cannot be queried", &err))
    }
}

/// The registrations of `items`, in one snapshot of the database `file`;
/// an item it does not list is an error naming it.
pub fn registrations(file: &Path, items: &[StoreItem]) -> Result<Vec<Registration>> {
    let database = StoreDatabase::open(file)?;
    database.snapshot(|snapshot| {
        items
            .iter()
            .map(|item| {
                snapshot.registration(item)?.ok_or_else(|| {
                    Error::new(
                        ErrorKind::Database,
                        format!("{}: not a valid item in the store database {}", item.path.display(), file.display()),
                    )
                })
            })
            .collect()
    })
}

fn database_error(file: &Path, what: &str, err: &rusqlite::Error) -> Error {
    Error::new(ErrorKind::Database, format!("store database {}: {what}: {err}", file.display()))
}

/// Does the SQLite header of `file` mark a WAL-mode database?  (Bytes 18
/// and 19, the write and read format versions, are 2 in WAL mode.)  A file
/// too short or unreadable is not: SQLite's own open says what is wrong.
fn is_wal_mode(file: &File) -> bool {
    let mut header = [0u8; 20];
    matches!(file.read_at(&mut header, 0), Ok(20)) && header.starts_with(b"SQLite format 3\0") && header[18] == 2
}

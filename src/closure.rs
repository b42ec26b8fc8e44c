//! The closure of store items: every item the roots reference, transitively.
//!
//! Three sources: a list the caller gives (checked), the store database
//! (Guix's `ValidPaths`/`Refs` schema, opened read-only), or, with no
//! database, a scan of file contents for the hash parts of store items, as
//! the daemon does when it registers an item.

pub(crate) mod database;
mod input;
mod scan;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use crate::error::{Error, ErrorKind, Result};
use crate::store::{StoreDir, StoreItem};

use database::StoreDatabase;

/// The tables of a store database as the Guix daemon creates them (its
/// `schema.sql`), from `src/closure/schema.sql`.  This crate reads them
/// (and writes them into an image with `--localstatedir`); the sample store
/// generators, `bench/make-store.sh` and the tests create databases with it.
pub const STORE_DATABASE_SCHEMA: &str = include_str!("closure/schema.sql");

/// A closure: its items sorted by path, and, where known, what each
/// references (indices into `items`, sorted, without the item itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closure {
    /// The items, sorted by path.
    pub items: Vec<StoreItem>,
    /// For each item, the indices of the items it references; `None` when
    /// the references are not known (a closure file without a database).
    pub references: Option<Vec<Vec<usize>>>,
}

impl Closure {
    /// The closure made of `references`' keys, each referencing its set.
    /// Every referenced item must be a key.
    fn from_references(references: BTreeMap<StoreItem, BTreeSet<StoreItem>>) -> Closure {
        let items: Vec<StoreItem> = references.keys().cloned().collect();
        let index = |item: &StoreItem| items.binary_search(item).expect("references within the closure");
        let indices = references.values().map(|set| set.iter().map(index).collect()).collect();
        Closure { items, references: Some(indices) }
    }

    /// The closure of `items` (distinct, in any order), `references[i]`
    /// listing what `items[i]` refers to as indices into `items`.
    fn from_graph(items: Vec<StoreItem>, references: Vec<Vec<usize>>) -> Closure {
        let mut order: Vec<usize> = (0..items.len()).collect();
        order.sort_unstable_by(|&a, &b| items[a].cmp(&items[b]));
        let mut position = vec![0; items.len()];
        for (rank, &i) in order.iter().enumerate() {
            position[i] = rank;
        }
        let mut items: Vec<Option<StoreItem>> = items.into_iter().map(Some).collect();
        let mut references: Vec<Option<Vec<usize>>> = references.into_iter().map(Some).collect();
        let sorted_items = order.iter().map(|&i| items[i].take().expect("each item once")).collect();
        let sorted_references = order
            .iter()
            .map(|&i| {
                let mut list: Vec<usize> = references[i].take().expect("each item once").iter().map(|&j| position[j]).collect();
                list.sort_unstable();
                list.dedup();
                list
            })
            .collect();
        Closure { items: sorted_items, references: Some(sorted_references) }
    }

    /// The position of `item` in `items`, if it is a member.
    pub fn index_of(&self, item: &StoreItem) -> Option<usize> {
        self.items.binary_search(item).ok()
    }

    /// Is `item` a member?
    pub fn contains(&self, item: &StoreItem) -> bool {
        self.index_of(item).is_some()
    }

    /// The items `item` references (without itself), when references are known.
    pub fn references_of(&self, item: &StoreItem) -> Option<Vec<&StoreItem>> {
        let references = self.references.as_ref()?;
        let index = self.index_of(item)?;
        Some(references[index].iter().map(|&i| &self.items[i]).collect())
    }
}

/// Computes the closure of `roots`: from `database` when given, else by
/// scanning the store.  Every root must exist.
///
/// Errors: a root outside `store` (`InvalidStorePath`); a root or member
/// missing from the store (`Io`); a database that cannot be read, is not a
/// store database or does not list a root as valid (`Database`).
pub fn compute_closure(store: &StoreDir, roots: &[StoreItem], database: Option<&Path>) -> Result<Closure> {
    for root in roots {
        check_in_store(store, root)?;
        check_exists(root, String::new)?;
    }
    match database {
        Some(file) => closure_from_database(store, roots, file),
        None => {
            let candidates = scan::Candidates::list(store)?;
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
            Ok(Closure::from_references(scan::scan_closure(roots, &candidates, threads)?))
        }
    }
}

/// Checks a closure the caller gave: every path is a store item that
/// exists, every root is in it, and, when `database` is given, every
/// reference of every member is in it too.
///
/// Duplicates are dropped; the items come back sorted, with their
/// references when `database` is given.  Errors: a path that is not a store
/// item (`InvalidStorePath`); a member that does not exist (`Io`, like any
/// other file the build cannot read); a root, or a reference of a member,
/// missing from the closure (`IncompleteClosure`); a member the database
/// does not list as valid (`Database`).
pub fn check_closure(store: &StoreDir, roots: &[StoreItem], given: &[PathBuf], database: Option<&Path>) -> Result<Closure> {
    let mut items = BTreeSet::new();
    for path in given {
        items.insert(store.parse_item(path)?);
    }
    for item in &items {
        check_exists(item, || " (listed in the closure)".to_string())?;
    }
    for root in roots {
        check_in_store(store, root)?;
        if !items.contains(root) {
            return Err(Error::new(
                ErrorKind::IncompleteClosure,
                format!("the closure does not contain the item {} itself", root.path.display()),
            ));
        }
    }
    let Some(file) = database else {
        return Ok(Closure { items: items.into_iter().collect(), references: None });
    };
    let items: Vec<StoreItem> = items.into_iter().collect();
    let database = StoreDatabase::open(file)?;
    let references = database.snapshot(|snapshot| {
        let mut references = Vec::with_capacity(items.len());
        for item in &items {
            let Some(referenced) = snapshot.references(store, item)? else {
                return Err(not_in_database(item, file));
            };
            let mut indices = Vec::with_capacity(referenced.len());
            for r in &referenced {
                let Ok(index) = items.binary_search(r) else {
                    return Err(Error::new(
                        ErrorKind::IncompleteClosure,
                        format!(
                            "the closure lacks {}, which {} references (according to the store database {})",
                            r.path.display(),
                            item.path.display(),
                            file.display()
                        ),
                    ));
                };
                indices.push(index);
            }
            references.push(indices);
        }
        Ok(references)
    })?;
    Ok(Closure::from_graph(items, references))
}

/// Reads a closure file: one store path a line, as `guix gc -R` prints.
///
/// Tolerated: blank lines, spaces around a path, `\r\n` line ends, and
/// the same item listed twice (the closure is a set).  Refused, naming the
/// file and the line: a relative path, a NUL byte, a line that is not
/// UTF-8.  The file is a regular file, or a pipe with a writer (`<(guix gc
/// -R ITEM)`); a pipe without one, a device or a directory is refused at
/// once rather than waited on.
pub fn read_closure_file(path: &Path) -> Result<Vec<PathBuf>> {
    Ok(closure_file_lines(path, None)?.into_iter().map(|(_, item)| item).collect())
}

/// Reads a closure file like [`read_closure_file`] and checks that every
/// line is an item of `store` (not outside it, not a file inside an item,
/// named `<hash>-<name>`); an error names the file and the line.
pub fn read_closure_file_in(store: &StoreDir, path: &Path) -> Result<Vec<PathBuf>> {
    read_closure_file_cancellable(store, path, None)
}

/// [`read_closure_file_in`], where waiting for a pipe's writer stops with
/// a "cancelled" error once `cancel` is set (a signal, in the CLI).
pub fn read_closure_file_cancellable(store: &StoreDir, path: &Path, cancel: Option<&AtomicBool>) -> Result<Vec<PathBuf>> {
    let mut items = Vec::new();
    for (line, item) in closure_file_lines(path, cancel)? {
        let item = store.parse_item(&item).map_err(|err| {
            Error::new(err.kind, format!("closure file {}, line {line}: {}", path.display(), err.message))
        })?;
        items.push(item.path);
    }
    Ok(items)
}

/// The non-blank lines of a closure file, with their numbers.
fn closure_file_lines(path: &Path, cancel: Option<&AtomicBool>) -> Result<Vec<(usize, PathBuf)>> {
    let data = input::read_input(path, "closure file", ErrorKind::Io, cancel)?;
    let mut items = Vec::new();
    for (index, line) in data.split(|&b| b == b'\n').enumerate() {
        let refuse = |why: String| {
            Error::new(ErrorKind::InvalidStorePath, format!("closure file {}, line {}: {why}", path.display(), index + 1))
        };
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        if line.contains(&0) {
            return Err(refuse(
                "holds a NUL byte; a closure file is text, one store path a line (is it a binary file?)".to_string(),
            ));
        }
        let Ok(text) = std::str::from_utf8(line) else {
            return Err(refuse(format!(
                "'{}': not valid UTF-8; store paths are ASCII",
                String::from_utf8_lossy(line)
            )));
        };
        let item = PathBuf::from(text);
        if !item.is_absolute() {
            return Err(refuse(format!("'{text}': relative path; a store item path must be absolute")));
        }
        items.push((index + 1, item));
    }
    Ok(items)
}

/// Follows the references the database lists, from `roots`.
fn closure_from_database(store: &StoreDir, roots: &[StoreItem], file: &Path) -> Result<Closure> {
    let database = StoreDatabase::open(file)?;
    let (items, references) = database.snapshot(|snapshot| {
        // Items by first sight, breadth first from the sorted roots; each
        // item's references as indices into `items`.
        let mut items: Vec<StoreItem> = roots.iter().cloned().collect::<BTreeSet<_>>().into_iter().collect();
        let mut index: HashMap<StoreItem, usize> = items.iter().cloned().enumerate().map(|(i, item)| (item, i)).collect();
        let mut references: Vec<Vec<usize>> = Vec::new();
        while references.len() < items.len() {
            let item = &items[references.len()];
            // Refs' foreign keys point into ValidPaths, so only a root can
            // be missing here.
            let Some(referenced) = snapshot.references(store, item)? else {
                return Err(not_in_database(item, file));
            };
            let mut indices = Vec::with_capacity(referenced.len());
            for reference in referenced {
                let next = items.len();
                let i = *index.entry(reference).or_insert_with_key(|reference| {
                    items.push(reference.clone());
                    next
                });
                indices.push(i);
            }
            references.push(indices);
        }
        Ok((items, references))
    })?;
    let closure = Closure::from_graph(items, references);
    // A member the database lists but the store lacks would only fail
    // later, when the image is written; say now where it came from: each
    // once, named with its first referrer in path order.
    let references = closure.references.as_deref().unwrap_or_default();
    let mut checked = vec![false; closure.items.len()];
    for (referrer, referenced) in closure.items.iter().zip(references) {
        for &i in referenced {
            if std::mem::replace(&mut checked[i], true) {
                continue;
            }
            check_exists(&closure.items[i], || {
                format!(
                    " (referenced by {} according to the store database {})",
                    referrer.path.display(),
                    file.display()
                )
            })?;
        }
    }
    Ok(closure)
}

fn not_in_database(item: &StoreItem, file: &Path) -> Error {
    Error::new(
        ErrorKind::Database,
        format!("{}: not a valid item in the store database {}", item.path.display(), file.display()),
    )
}

/// Is `item` directly under `store`?  (An item parsed for another store
/// directory is not.)
fn check_in_store(store: &StoreDir, item: &StoreItem) -> Result<()> {
    if item.path.parent() == Some(store.path()) {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::InvalidStorePath,
            format!("'{}': not under the store directory {}", item.path.display(), store.path().display()),
        ))
    }
}

/// Does `item` exist (as a directory, file or symlink)?  `context()` ends
/// the message when it does not.
fn check_exists(item: &StoreItem, context: impl FnOnce() -> String) -> Result<()> {
    match std::fs::symlink_metadata(&item.path) {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Err(Error::new(
            ErrorKind::Io,
            format!("{}: store item does not exist{}", item.path.display(), context()),
        )),
        Err(err) => Err(Error::io(&item.path, "looking up the store item", &err)),
    }
}

#[cfg(test)]
mod tests;

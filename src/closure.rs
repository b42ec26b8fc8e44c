//! The closure of store items: every item the roots reference, transitively.
//!
//! Three sources: a list the caller gives (checked), the store database
//! (Guix's `ValidPaths`/`Refs` schema, opened read-only), or, with no
//! database, a scan of file contents for the hash parts of store items, as
//! the daemon does when it registers an item.

use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::store::{StoreDir, StoreItem};

/// A closure: its items sorted by path, and, where known, what each
/// references (indices into `items`, sorted, without the item itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closure {
    pub items: Vec<StoreItem>,
    pub references: Option<Vec<Vec<usize>>>,
}

/// Computes the closure of `roots`: from `database` when given, else by
/// scanning the store.  Every root must exist.
pub fn compute_closure(store: &StoreDir, roots: &[StoreItem], database: Option<&Path>) -> Result<Closure> {
    todo!("{store:?} {roots:?} {database:?}")
}

/// Checks a closure the caller gave: every path is a store item that
/// exists, every root is in it, and, when `database` is given, every
/// reference of every member is in it too.
pub fn check_closure(store: &StoreDir, roots: &[StoreItem], given: &[PathBuf], database: Option<&Path>) -> Result<Closure> {
    todo!("{store:?} {roots:?} {given:?} {database:?}")
}

/// Reads a closure file: one store path a line, as `guix gc -R` prints.
/// Blank lines are ignored.
pub fn read_closure_file(path: &Path) -> Result<Vec<PathBuf>> {
    todo!("{}", path.display())
}

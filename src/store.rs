//! The store directory and the names of the items in it.
//!
//! A store item is `<store-dir>/<hash>-<name>`, where `<hash>` is 32
//! characters of Nix's base32 alphabet and `<name>` is a non-empty run of
//! `[A-Za-z0-9+-._?=]` not starting with a dot.

use std::path::{Path, PathBuf};

use crate::error::{Error, ErrorKind, Result};

/// Nix's base32 alphabet: the digits and the lowercase letters but e, o, t, u.
pub const NIX_BASE32: &[u8; 32] = b"0123456789abcdfghijklmnpqrsvwxyz";

/// Length of the hash part of a store item's name.
pub const HASH_LEN: usize = 32;

/// A store directory such as `/gnu/store`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreDir {
    path: PathBuf,
}

/// One validated store item.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StoreItem {
    /// The full path, `<store-dir>/<hash>-<name>`.
    pub path: PathBuf,
}

impl StoreItem {
    /// The 32-character hash part.
    pub fn hash(&self) -> &str {
        &self.base_name()[..HASH_LEN]
    }

    /// The name after the hash and its dash.
    pub fn name(&self) -> &str {
        &self.base_name()[HASH_LEN + 1..]
    }

    /// `<hash>-<name>`.
    pub fn base_name(&self) -> &str {
        self.path.file_name().and_then(|n| n.to_str()).expect("validated store item")
    }
}

impl StoreDir {
    /// A store directory at `path`, which must be absolute.  Trailing
    /// slashes and `.` components are dropped; `..` is refused.
    pub fn new(path: &Path) -> Result<StoreDir> {
        todo!("store dir {}", path.display())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Checks that `path` names a store item directly under this store
    /// (absolute, no `..`, not a file inside an item) and returns it.
    /// The item need not exist; the error names `path` and says what is wrong.
    pub fn parse_item(&self, path: &Path) -> Result<StoreItem> {
        let _ = ErrorKind::InvalidStorePath;
        todo!("{}", path.display())
    }

    /// Does `base_name` look like `<hash>-<name>`?
    pub fn is_item_name(base_name: &str) -> bool {
        todo!("{base_name}")
    }
}

//! The store directory and the names of the items in it.
//!
//! A store item is `<store-dir>/<hash>-<name>`, where `<hash>` is 32
//! characters of Nix's base32 alphabet and `<name>` is a non-empty run of
//! `[A-Za-z0-9+-._?=]` not starting with a dot.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

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
///
/// Items compare, sort and hash by the bytes of their path.  Their paths
/// are normal (no `.`, no repeated or trailing slash), so this is the order
/// of `Path`'s component-wise comparison for the items of one store, at a
/// fraction of its cost: closures of 100,000 items sort and look up their
/// members many times.
#[derive(Debug, Clone)]
pub struct StoreItem {
    /// The full path, `<store-dir>/<hash>-<name>`.
    pub path: PathBuf,
}

impl StoreItem {
    fn bytes(&self) -> &[u8] {
        self.path.as_os_str().as_bytes()
    }
}

impl PartialEq for StoreItem {
    fn eq(&self, other: &StoreItem) -> bool {
        self.bytes() == other.bytes()
    }
}

impl Eq for StoreItem {}

impl PartialOrd for StoreItem {
    fn partial_cmp(&self, other: &StoreItem) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for StoreItem {
    fn cmp(&self, other: &StoreItem) -> std::cmp::Ordering {
        self.bytes().cmp(other.bytes())
    }
}

impl std::hash::Hash for StoreItem {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.bytes().hash(state);
    }
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
        if !path.is_absolute() {
            return Err(invalid(format!(
                "store directory '{}': relative path; the store directory must be absolute",
                path.display()
            )));
        }
        let mut normal = PathBuf::from("/");
        for component in path.components() {
            match component {
                Component::RootDir | Component::CurDir => {}
                Component::Normal(name) => normal.push(name),
                Component::ParentDir => {
                    return Err(invalid(format!(
                        "store directory '{}': contains a '..' component",
                        path.display()
                    )))
                }
                Component::Prefix(_) => unreachable!("no path prefixes on Unix"),
            }
        }
        if normal == Path::new("/") {
            return Err(invalid(format!(
                "store directory '{}': the root directory cannot be the store directory",
                path.display()
            )));
        }
        Ok(StoreDir { path: normal })
    }

    /// The normalised path of the store directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Checks that `path` names a store item directly under this store
    /// (absolute, no `..`, not a file inside an item) and returns it.
    /// The item need not exist; the error names `path` and says what is wrong.
    pub fn parse_item(&self, path: &Path) -> Result<StoreItem> {
        // The common case, a normal path (as the database and `guix gc -R`
        // give them), without taking the path apart.
        let (bytes, store) = (path.as_os_str().as_bytes(), self.path.as_os_str().as_bytes());
        if let Some(base) = bytes.strip_prefix(store).and_then(|rest| rest.strip_prefix(b"/")) {
            if std::str::from_utf8(base).is_ok_and(StoreDir::is_item_name) {
                return Ok(StoreItem { path: path.to_path_buf() });
            }
        }
        let shown = path.display();
        if !path.is_absolute() {
            return Err(invalid(format!("'{shown}': relative path; a store item path must be absolute")));
        }
        if path.components().any(|c| c == Component::ParentDir) {
            return Err(invalid(format!("'{shown}': contains a '..' component")));
        }
        // `components` drops `.` components, repeated and trailing slashes.
        let normal: PathBuf = path.components().collect();
        let rest = match normal.strip_prefix(&self.path) {
            Ok(rest) => rest,
            Err(_) => {
                return Err(invalid(format!(
                    "'{shown}': not under the store directory {}",
                    self.path.display()
                )))
            }
        };
        let mut parts = rest.components();
        let first = match parts.next() {
            Some(Component::Normal(name)) => name,
            _ => {
                return Err(invalid(format!(
                    "'{shown}': is the store directory itself, not a store item"
                )))
            }
        };
        let name_ok = first.to_str().is_some_and(StoreDir::is_item_name);
        if !name_ok {
            return Err(invalid(format!(
                "'{shown}': '{}' is not a store item name: expected <32 nix-base32 characters>-<name>",
                first.to_string_lossy()
            )));
        }
        let item = self.path.join(first);
        if parts.next().is_some() {
            return Err(invalid(format!(
                "'{shown}': a file inside the store item {}, not a store item",
                item.display()
            )));
        }
        Ok(StoreItem { path: item })
    }

    /// Does `base_name` look like `<hash>-<name>`?
    pub fn is_item_name(base_name: &str) -> bool {
        let bytes = base_name.as_bytes();
        if bytes.len() < HASH_LEN + 2 || bytes[HASH_LEN] != b'-' {
            return false;
        }
        let (hash, name) = (&bytes[..HASH_LEN], &bytes[HASH_LEN + 1..]);
        hash.iter().all(|&b| is_nix_base32(b))
            && name[0] != b'.'
            && name.iter().all(|&b| b.is_ascii_alphanumeric() || b"+-._?=".contains(&b))
    }

    /// The item named `base_name` in this store, if the name is valid.
    pub fn item(&self, base_name: &OsStr) -> Option<StoreItem> {
        let valid = base_name.to_str().is_some_and(StoreDir::is_item_name);
        valid.then(|| StoreItem { path: self.path.join(base_name) })
    }
}

/// Is `b` a character of [`NIX_BASE32`]?
pub fn is_nix_base32(b: u8) -> bool {
    NIX_BASE32_TABLE[b as usize]
}

/// A lookup table: `NIX_BASE32_TABLE[b]` is true for the characters of [`NIX_BASE32`].
pub static NIX_BASE32_TABLE: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < NIX_BASE32.len() {
        table[NIX_BASE32[i] as usize] = true;
        i += 1;
    }
    table
};

/// Encodes `bytes` in Nix's base32, the way store hash parts are written:
/// 5-bit groups taken from the most significant end of the number whose
/// little-endian bytes are `bytes`.  20 bytes give [`HASH_LEN`] characters.
pub fn nix_base32_encode(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return String::new();
    }
    let len = (bytes.len() * 8 - 1) / 5 + 1;
    (0..len)
        .rev()
        .map(|n| {
            let bit = n * 5;
            let (i, j) = (bit / 8, bit % 8);
            let low = (bytes[i] as u16) >> j;
            let high = bytes.get(i + 1).map_or(0, |&b| (b as u16) << (8 - j));
            NIX_BASE32[((low | high) & 0x1f) as usize] as char
        })
        .collect()
}

fn invalid(message: String) -> Error {
    Error::new(ErrorKind::InvalidStorePath, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "0123456789abcdfghijklmnpqrsvwxyz";

    fn store() -> StoreDir {
        StoreDir::new(Path::new("/gnu/store")).unwrap()
    }

    fn parse_err(path: &str) -> Error {
        let err = store().parse_item(Path::new(path)).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidStorePath, "{}", err.message);
        assert!(err.message.contains(path), "message {:?} does not name {path}", err.message);
        err
    }

    #[test]
    fn store_dir_is_normalised() {
        let dir = StoreDir::new(Path::new("/tmp/x/./gnu//store/")).unwrap();
        assert_eq!(dir.path(), Path::new("/tmp/x/gnu/store"));
    }

    #[test]
    fn store_dir_refuses_relative_parent_and_root() {
        for (path, what) in [("gnu/store", "relative"), ("", "relative"), ("/gnu/../store", "'..'"), ("/", "root")] {
            let err = StoreDir::new(Path::new(path)).unwrap_err();
            assert_eq!(err.kind, ErrorKind::InvalidStorePath);
            assert!(err.message.contains(what), "{path}: {}", err.message);
        }
    }

    #[test]
    fn item_names() {
        assert!(StoreDir::is_item_name(&format!("{HASH}-hello-2.12.1")));
        assert!(StoreDir::is_item_name(&format!("{HASH}-a+b_c?d=e.drv")));
        assert!(!StoreDir::is_item_name(&format!("{HASH}-")));
        assert!(!StoreDir::is_item_name(&format!("{HASH}-.hidden")));
        assert!(!StoreDir::is_item_name(&format!("{HASH}-with space")));
        assert!(!StoreDir::is_item_name(&format!("{HASH}-slash/x")));
        assert!(!StoreDir::is_item_name(&format!("{HASH}hello")));
        // 'e', 'o', 't' and 'u' are not in the alphabet.
        assert!(!StoreDir::is_item_name("0123456789abcdfghijklmnpqrsvwxye-hello"));
        assert!(!StoreDir::is_item_name("0123456789ABCDFGHIJKLMNPQRSVWXYZ-hello"));
        assert!(!StoreDir::is_item_name("0123456789abcdf-hello"));
        assert!(!StoreDir::is_item_name(".links"));
    }

    #[test]
    fn parse_valid_items() {
        let item = store().parse_item(Path::new(&format!("/gnu/store/{HASH}-hello-2.12.1"))).unwrap();
        assert_eq!(item.hash(), HASH);
        assert_eq!(item.name(), "hello-2.12.1");
        assert_eq!(item.base_name(), format!("{HASH}-hello-2.12.1"));
        // Trailing slashes and `.` components do not change the item.
        let same = store().parse_item(Path::new(&format!("/gnu/./store//{HASH}-hello-2.12.1/"))).unwrap();
        assert_eq!(same, item);
        assert_eq!(same.path, PathBuf::from(format!("/gnu/store/{HASH}-hello-2.12.1")));
    }

    #[test]
    fn parse_refuses_bad_paths() {
        assert!(parse_err(&format!("gnu/store/{HASH}-hello")).message.contains("relative"));
        assert!(parse_err(&format!("/tmp/store/{HASH}-hello")).message.contains("not under the store directory /gnu/store"));
        assert!(parse_err(&format!("/gnu/storex/{HASH}-hello")).message.contains("not under the store directory"));
        assert!(parse_err("/gnu/store").message.contains("store directory itself"));
        let inside = parse_err(&format!("/gnu/store/{HASH}-hello/bin/hello"));
        assert!(inside.message.contains("a file inside the store item"), "{}", inside.message);
        assert!(parse_err("/gnu/store/hello-2.12.1").message.contains("<32 nix-base32 characters>-<name>"));
        assert!(parse_err(&format!("/gnu/store/{HASH}-hello/../{HASH}-x")).message.contains("'..'"));
        assert!(parse_err(&format!("/gnu/store/../store/{HASH}-x")).message.contains("'..'"));
    }

    #[test]
    fn item_from_base_name() {
        let item = store().item(OsStr::new(&format!("{HASH}-x"))).unwrap();
        assert_eq!(item.path, PathBuf::from(format!("/gnu/store/{HASH}-x")));
        assert!(store().item(OsStr::new("x")).is_none());
    }

    #[test]
    fn nix_base32_matches_nix() {
        // Known values: Nix prints sha256("") in base32 as this string.
        let empty_sha256 = hex::decode("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855").unwrap();
        assert_eq!(nix_base32_encode(&empty_sha256), "0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73");
        assert_eq!(nix_base32_encode(&[0u8; 20]), "0".repeat(32));
        assert_eq!(nix_base32_encode(&[0xff; 20]), "z".repeat(32));
        assert!(StoreDir::is_item_name(&format!("{}-x", nix_base32_encode(&[0x5a; 20]))));
    }

    #[test]
    fn items_sort_as_their_paths_do() {
        let names = ["a", "a-b", "a.b", "a+b", "a_b", "a=b", "a?b", "A", "ab", "a-", "z", "0"];
        let mut items: Vec<StoreItem> = Vec::new();
        for (i, name) in names.iter().enumerate() {
            for hash in [HASH, "zyxwvsrqpnmlkjihgfdcba9876543210"] {
                let hash = format!("{}{}", &hash[..31], NIX_BASE32[i] as char);
                items.push(store().parse_item(Path::new(&format!("/gnu/store/{hash}-{name}"))).unwrap());
            }
        }
        let mut by_item = items.clone();
        by_item.sort();
        let mut by_path = items.clone();
        by_path.sort_by(|a, b| a.path.cmp(&b.path));
        assert_eq!(by_item, by_path);
        let set: std::collections::HashSet<&StoreItem> = items.iter().collect();
        assert_eq!(set.len(), items.len());
    }
}

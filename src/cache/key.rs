//! What a layer is known by in the cache: its key.
//!
//! The key is the SHA-256 of everything the layer's tar bytes follow from,
//! each field length-prefixed so that no two inputs read alike:
//!
//! - [`LAYER_FORMAT_VERSION`], the layer writer's format: raised whenever
//!   the same inputs would give other tar bytes (header layout, modes,
//!   order, padding);
//! - the store directory and the name transformations (`(old, new)`
//!   rewrites);
//! - every unit of the layer, in order: its kind and archive name; a
//!   directory's mode and owner; a symlink's target; a store item's path
//!   and its [`ItemIdentity`].
//!
//! Compression is not in the key: the record filed under it holds one blob
//! per (compression, level, compressor format) (see [`super::record`]).
//!
//! A store item is known by its registration in the store database
//! (`ValidPaths.hash`, the NAR hash, and `registrationTime`: a store
//! item deleted and rebuilt under the same path is registered again, with
//! another time and, with other contents, another hash), or, without a
//! database, by a digest of the metadata walk the build makes anyway:
//! every entry's name, type, device, inode, mode, size, mtime and ctime,
//! a symlink's target and a directory's number of entries.  A file's
//! contents cannot change without its ctime changing (writing changes the
//! mtime and ctime; `touch -d` puts back the mtime, and in doing so sets
//! the ctime to now), and the ctime cannot be set back, so a changed item
//! has another key.  Nothing here reads a file's contents.
//!
//! A layer holding a file copied from the host (`--file`, the image's
//! store database) has no key: it is not cached.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::layers::Unit;
use crate::tree::{self, Entry};

/// The layer writer's format version: part of every key.  Raise it when a
/// change to [`crate::tarfmt`], [`crate::tree`] or [`crate::archive`]
/// makes the same items give other tar bytes.
pub const LAYER_FORMAT_VERSION: u32 = 1;

/// How a store item is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemIdentity {
    /// Its row in the store database's `ValidPaths`.
    Registered { hash: String, registration_time: i64 },
    /// The digest of its metadata walk ([`WalkIdentity`]).
    Walked([u8; 32]),
}

/// A key being built.
struct KeyHasher(Sha256);

impl KeyHasher {
    fn bytes(&mut self, b: &[u8]) {
        self.0.update((b.len() as u64).to_le_bytes());
        self.0.update(b);
    }
    fn u64(&mut self, n: u64) {
        self.0.update(n.to_le_bytes());
    }
    fn tag(&mut self, t: u8) {
        self.0.update([t]);
    }
}

/// The key of a layer of `units` (in the layer's order), with the store
/// directory `store_dir` and the name `transformations`; `identity(i)` is
/// the identity of the store item of closure index `i`.  `None` when the
/// layer cannot be cached: it holds a host file, or an item without an
/// identity.
pub fn layer_key<'a>(
    store_dir: &Path,
    transformations: &[(String, String)],
    units: &[Unit],
    identity: impl Fn(usize) -> Option<&'a ItemIdentity>,
) -> Option<[u8; 32]> {
    let mut h = KeyHasher(Sha256::new());
    h.bytes(b"guix-docker-native layer key");
    h.u64(u64::from(LAYER_FORMAT_VERSION));
    h.bytes(store_dir.as_os_str().as_encoded_bytes());
    h.u64(transformations.len() as u64);
    for (old, new) in transformations {
        h.bytes(old.as_bytes());
        h.bytes(new.as_bytes());
    }
    h.u64(units.len() as u64);
    for unit in units {
        match unit {
            Unit::Dir { name, mode, uid, gid } => {
                h.tag(b'd');
                h.bytes(name);
                h.u64(u64::from(*mode));
                h.u64(u64::from(*uid));
                h.u64(u64::from(*gid));
            }
            Unit::Symlink { name, target } => {
                h.tag(b'l');
                h.bytes(name);
                h.bytes(target);
            }
            Unit::File { .. } => return None,
            Unit::Item { name, item, path } => {
                h.tag(b'i');
                h.bytes(name);
                h.bytes(path.as_os_str().as_encoded_bytes());
                match identity(*item)? {
                    ItemIdentity::Registered { hash, registration_time } => {
                        h.tag(b'r');
                        h.bytes(hash.as_bytes());
                        h.u64(*registration_time as u64);
                    }
                    ItemIdentity::Walked(digest) => {
                        h.tag(b'w');
                        h.bytes(digest);
                    }
                }
            }
        }
    }
    Some(h.0.finalize().into())
}

/// The digest of a store item's metadata walk, fed one entry at a time by
/// the measuring pass (see the module's documentation).
pub struct WalkIdentity(KeyHasher);

impl Default for WalkIdentity {
    fn default() -> Self {
        WalkIdentity(KeyHasher(Sha256::new()))
    }
}

impl WalkIdentity {
    /// Adds one entry of the walk.
    pub fn entry(&mut self, e: &Entry) {
        let h = &mut self.0;
        h.bytes(e.name);
        h.u64(e.meta.dev);
        h.u64(e.meta.ino);
        h.u64(u64::from(e.meta.mode));
        h.u64(e.meta.size);
        h.u64(e.meta.mtime.0 as u64);
        h.u64(e.meta.mtime.1);
        h.u64(e.meta.ctime.0 as u64);
        h.u64(e.meta.ctime.1);
        match &e.kind {
            tree::Kind::Dir { children } => {
                h.tag(b'd');
                h.u64(*children as u64);
            }
            tree::Kind::File { .. } => h.tag(b'f'),
            tree::Kind::Symlink { target } => {
                h.tag(b'l');
                h.bytes(target);
            }
            tree::Kind::Unsupported(what) => {
                h.tag(b'?');
                h.bytes(what.as_bytes());
            }
        }
    }

    /// The digest of the walk so far.
    pub fn finish(self) -> [u8; 32] {
        self.0 .0.finalize().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn item(hash: &str, time: i64) -> ItemIdentity {
        ItemIdentity::Registered { hash: hash.into(), registration_time: time }
    }

    #[test]
    fn every_input_changes_the_key() {
        let store = Path::new("/gnu/store");
        let units = vec![
            Unit::Dir { name: b"gnu".to_vec(), mode: 0o755, uid: 0, gid: 0 },
            Unit::Item { name: b"gnu/store/a-x".to_vec(), item: 0, path: PathBuf::from("/gnu/store/a-x") },
        ];
        let a = item("sha256:aa", 5);
        let base = layer_key(store, &[], &units, |_| Some(&a)).unwrap();
        assert_eq!(base, layer_key(store, &[], &units, |_| Some(&a)).unwrap(), "same inputs, same key");
        let other_hash = item("sha256:ab", 5);
        let other_time = item("sha256:aa", 6);
        let walked = ItemIdentity::Walked([0; 32]);
        for id in [&other_hash, &other_time, &walked] {
            assert_ne!(base, layer_key(store, &[], &units, |_| Some(id)).unwrap());
        }
        assert_ne!(base, layer_key(Path::new("/nix/store"), &[], &units, |_| Some(&a)).unwrap());
        let t = [("/gnu".to_string(), "/g".to_string())];
        assert_ne!(base, layer_key(store, &t, &units, |_| Some(&a)).unwrap());
        let mut other_mode = units.clone();
        other_mode[0] = Unit::Dir { name: b"gnu".to_vec(), mode: 0o555, uid: 0, gid: 0 };
        assert_ne!(base, layer_key(store, &[], &other_mode, |_| Some(&a)).unwrap());
        assert!(layer_key(store, &[], &units, |_| None).is_none(), "an item without identity");
        let mut with_file = units.clone();
        with_file.push(Unit::File { name: b"etc/x".to_vec(), source: "/etc/x".into() });
        assert!(layer_key(store, &[], &with_file, |_| Some(&a)).is_none(), "a host file");
    }
}

//! The cache as one build sees it: for each planned layer, its key, the
//! record found under it, and what this build learns, saved at the end.
//!
//! Every method may be called from the producing threads at once.  With
//! the cache off, or for a layer without a key, lookups find nothing and
//! what is learned is dropped.

use std::path::Path;
use std::sync::Mutex;

use super::key::{self, ItemIdentity};
use super::record::{Blob, Record};
use super::{compressor_format, CacheDir, Lookup, Warnings};
use crate::archive::{Layer, Measured};
use crate::options::{Compression, ImageOptions};
use crate::store::StoreItem;

/// One planned layer's part of the cache.
struct LayerEntry {
    key: Option<[u8; 32]>,
    /// The planned length of its tar.
    len: u64,
    /// The good record found under its key before the build.
    known: Option<Record>,
    /// What this build knows of it (from `known` on), once it learned
    /// anything.
    learned: Mutex<Option<Record>>,
}

/// The cache of one build (see the module's documentation).
#[derive(Default)]
pub struct PlanCache {
    dir: Option<CacheDir>,
    layers: Vec<LayerEntry>,
    warnings: Warnings,
    /// The compressor formats this build has measured.
    formats: Mutex<Vec<((Compression, i32), String)>>,
}

impl PlanCache {
    /// The cache of a build of `layers`, whose store items are `items` (by
    /// closure index) as `measured` saw them, with `options`: reads the
    /// records of their keys.  With the cache off, an empty one.
    pub fn open(options: &ImageOptions, items: &[StoreItem], layers: &[Layer], measured: &Measured) -> PlanCache {
        let Some(dir) = options.cache_dir() else { return PlanCache::default() };
        let cache = PlanCache { dir: Some(CacheDir::new(dir)), ..PlanCache::default() };
        let identities: Vec<Option<ItemIdentity>> = match options.database() {
            Some(database) => match crate::closure::database::registrations(database, items) {
                Ok(rows) => rows
                    .into_iter()
                    .map(|r| r.hash.map(|hash| ItemIdentity::Registered { hash, registration_time: r.registration_time }))
                    .collect(),
                Err(e) => {
                    cache.warnings.warn(database, format!(
                        "layer cache: the store items' registrations cannot be read ({}); the cache is not used",
                        e.message
                    ));
                    return PlanCache::default();
                }
            },
            None => measured.items.iter().map(|m| m.identity.map(ItemIdentity::Walked)).collect(),
        };
        cache.with_layers(options.store_dir(), options.transformations(), layers, &identities)
    }

    fn with_layers(
        mut self,
        store_dir: &Path,
        transformations: &[(String, String)],
        layers: &[Layer],
        identities: &[Option<ItemIdentity>],
    ) -> PlanCache {
        let dir = self.dir.as_ref().expect("a cache directory");
        for layer in layers {
            let key = key::layer_key(store_dir, transformations, &layer.units, |i| identities.get(i)?.as_ref());
            let known = key.and_then(|k| match dir.read(&k) {
                Lookup::Hit(r) if r.size == layer.len => Some(r),
                Lookup::Hit(r) => {
                    self.warnings.warn(&dir.entry_path(&k), format!(
                        "cache entry {}: says the layer has {} bytes, and it has {}; it is not used",
                        dir.entry_path(&k).display(),
                        r.size,
                        layer.len
                    ));
                    None
                }
                Lookup::Miss => None,
                Lookup::Corrupt(message) => {
                    self.warnings.warn(&dir.entry_path(&k), message);
                    None
                }
            });
            self.layers.push(LayerEntry { key, len: layer.len, known, learned: Mutex::new(None) });
        }
        self
    }

    /// The compressor's format for `compression` at `level`
    /// ([`compressor_format`]), measured once per build.
    fn format(&self, compression: Compression, level: i32) -> String {
        let mut formats = self.formats.lock().unwrap();
        if let Some((_, f)) = formats.iter().find(|(k, _)| *k == (compression, level)) {
            return f.clone();
        }
        let f = compressor_format(compression, level);
        formats.push(((compression, level), f.clone()));
        f
    }

    /// The key of layer `index`, when it has one (the cache is on and the
    /// layer holds no host file).
    pub fn key(&self, index: usize) -> Option<[u8; 32]> {
        self.layers.get(index)?.key
    }

    /// What the cache knew of layer `index` before the build.
    pub fn known(&self, index: usize) -> Option<&Record> {
        self.layers.get(index)?.known.as_ref()
    }

    /// The `diff_id` of layer `index`, when the cache knew it.
    pub fn diff_id(&self, index: usize) -> Option<[u8; 32]> {
        Some(self.known(index)?.diff_id)
    }

    /// The blob of layer `index` made with `compression` at `level` by
    /// this build's compressor, when the cache knew it.
    pub fn blob(&self, index: usize, compression: Compression, level: i32) -> Option<&Blob> {
        let known = self.known(index)?;
        known.blob(compression, level, &self.format(compression, level))
    }

    /// Runs `f` on what this build knows of layer `index`, starting from
    /// the record known before (or, with `fresh`, a new record); nothing
    /// when the layer has no key, or nothing is known and `fresh` is
    /// `None`.
    fn update(&self, index: usize, fresh: Option<(&[u8; 32], u64)>, f: impl FnOnce(&mut Record)) {
        let Some(entry) = self.layers.get(index) else { return };
        let Some(key) = entry.key else { return };
        let mut learned = entry.learned.lock().unwrap();
        if learned.is_none() {
            *learned = match (&entry.known, fresh) {
                (Some(k), Some((diff_id, len))) if (&k.diff_id, k.size) != (diff_id, len) => {
                    // Cannot happen unless the key misses an input: say so,
                    // and keep what this build saw.
                    let path = self.dir.as_ref().expect("a key means a directory").entry_path(&key);
                    self.warnings.warn(&path, format!("cache entry {}: its diff_id is not the layer's; it is replaced", path.display()));
                    Some(Record::new(key, *diff_id, len))
                }
                (Some(k), _) => Some(k.clone()),
                (None, Some((diff_id, len))) => Some(Record::new(key, *diff_id, len)),
                (None, None) => None,
            };
        }
        if let Some(r) = learned.as_mut() {
            f(r);
        }
    }

    /// Learns that layer `index`'s tar has `diff_id` and `len` bytes.
    pub fn learn_layer(&self, index: usize, diff_id: &[u8; 32], len: u64) {
        if self.layers.get(index).is_some_and(|e| e.len != len) {
            return;
        }
        self.update(index, Some((diff_id, len)), |_| {});
    }

    /// Learns that layer `index` compressed with `compression` at `level`
    /// by this build's compressor is the blob `digest` of `size` bytes
    /// (after [`PlanCache::learn_layer`], or with the layer known).
    pub fn learn_blob(&self, index: usize, compression: Compression, level: i32, digest: &[u8; 32], size: u64) {
        if self.key(index).is_none() {
            return;
        }
        let format = self.format(compression, level);
        self.update(index, None, |r| {
            r.add_blob(compression, level, &format, *digest, size);
        });
    }

    /// Learns that the repository `repository` of the registry `registry`
    /// (`HOST[:PORT]`) holds layer `index`'s blob `digest` (one of its
    /// blobs the record knows).
    pub fn learn_location(&self, index: usize, digest: &[u8; 32], registry: &str, repository: &str) {
        self.update(index, None, |r| {
            r.add_location(digest, registry, repository);
        });
    }

    /// Writes what this build learned; a cache that cannot be written is a
    /// warning, once.
    pub fn save(&self) {
        let Some(dir) = &self.dir else { return };
        for entry in &self.layers {
            let learned = entry.learned.lock().unwrap();
            let Some(record) = learned.as_ref() else { continue };
            if entry.known.as_ref() == Some(record) {
                continue;
            }
            if let Err((subject, message)) = dir.write(record) {
                self.warnings.warn(&subject, message);
            }
        }
    }
}

//! The layer cache: what earlier builds learned of each layer (its
//! `diff_id`, its sizes, its compressed blobs' digests, the registries'
//! repositories that hold them), so that a rebuild costs only what changed
//! and never gives a different image.
//!
//! - **Key** ([`key`]): the SHA-256 of everything a layer's tar bytes follow
//!   from: the layer writer's format version, the store directory, the name
//!   transformations, and every unit of the layer, each store item with its
//!   identity (its store database registration, `ValidPaths.hash` and
//!   `registrationTime`; without a database, a digest of the metadata walk
//!   the build makes anyway: every entry's name, type, device, inode, mode,
//!   size, mtime and ctime).  An item changed under the same path has
//!   another identity, so another key: a stale entry is never found.  A
//!   layer holding a host file (`--file`, the image's store database) is
//!   not cached.
//! - **Record** ([`record`]): the `diff_id` and uncompressed size, and per
//!   (compression, level, compressor format) the blob's digest and size and
//!   the `(registry, repository)` pairs known to hold it.  The compressor
//!   format ([`compressor_format`]) names the compressor's settings and a
//!   digest of its output on a fixed sample, so that another libzstd or
//!   libdeflate, or other settings, never reuse a digest they would not
//!   make.
//! - **On disk**: `DIR/layers-1/<key in hex>`, one small text file per
//!   layer (a few hundred bytes): a header line, the record as JSON, and a
//!   SHA-256 of both.  `DIR` is `--cache-dir`, else
//!   `$XDG_CACHE_HOME/guix-docker-native`, else
//!   `~/.cache/guix-docker-native`.
//! - **Concurrency**: a record is written to a temporary file beside its
//!   name and renamed over it, so a reader sees an old record or a new one,
//!   whole.  A writer first merges the record on disk into its own, so two
//!   builds writing one entry at once lose at most what one of them learned
//!   in that instant (a cost, never a wrong answer).
//! - **Corruption**: a record that does not decode (truncated, garbage,
//!   checksum or key mismatch, unreadable, a directory in its place) is a
//!   warning naming the file and a miss; a record whose tar size is not the
//!   layer's planned size is one too.  A cache directory that cannot be
//!   made or written is a warning naming it, and the build goes on without
//!   storing.  The cache never makes a build fail.
//!
//! [`PlanCache`] is what a build carries: one entry per planned layer,
//! with what was known before and what this build learns, written back by
//! [`PlanCache::save`] once the build succeeded.


pub mod key;
pub mod options;
pub mod plan;
pub mod record;

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub use options::CacheOptions;
pub use plan::PlanCache;
pub use record::Record;

use crate::options::Compression;

/// The directory of the record files, under the cache directory.
pub const ENTRIES_DIR: &str = "layers-1";

/// The cache directory when none is given: `$XDG_CACHE_HOME/guix-docker-native`,
/// else `$HOME/.cache/guix-docker-native`; `None` when neither variable is
/// set to an absolute path.
pub fn default_dir() -> Option<PathBuf> {
    let absolute = |name| std::env::var_os(name).map(PathBuf::from).filter(|p| p.is_absolute());
    absolute("XDG_CACHE_HOME")
        .or_else(|| absolute("HOME").map(|home| home.join(".cache")))
        .map(|base| base.join("guix-docker-native"))
}

/// Prints warnings on standard error, one per build about each thing (a
/// cache entry, the cache directory): the first said of it.
#[derive(Default)]
pub struct Warnings(Mutex<BTreeSet<PathBuf>>);

impl Warnings {
    /// Warns `message` about `subject`, unless something was said of it.
    pub fn warn(&self, subject: &Path, message: String) {
        if self.0.lock().unwrap().insert(subject.to_path_buf()) {
            eprintln!("guix-docker-native: warning: {message}");
        }
    }
}

/// A cache directory.
pub struct CacheDir {
    /// The cache directory as given.
    pub dir: PathBuf,
    entries: PathBuf,
}

/// What looking a key up found.
pub enum Lookup {
    Hit(Record),
    Miss,
    /// The file is there and is not a record; the text says why, naming it.
    Corrupt(String),
}

impl CacheDir {
    /// The cache in `dir` (nothing is made until a record is written).
    pub fn new(dir: PathBuf) -> CacheDir {
        let entries = dir.join(ENTRIES_DIR);
        CacheDir { dir, entries }
    }

    /// The file of the record of `key`.
    pub fn entry_path(&self, key: &[u8; 32]) -> PathBuf {
        self.entries.join(hex::encode(key))
    }

    /// The record of `key`, if there is a good one.
    pub fn read(&self, key: &[u8; 32]) -> Lookup {
        let path = self.entry_path(key);
        let bytes = match read_bounded(&path) {
            Ok(bytes) => bytes,
            // No entry; or no directory of entries (the cache directory is
            // a file, say: writing says so, once).
            Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR) => return Lookup::Miss,
            Err(e) => return Lookup::Corrupt(format!("cache entry {}: cannot be read ({e}); it is not used", path.display())),
        };
        match Record::decode(&bytes, key) {
            Ok(r) => Lookup::Hit(r),
            Err(why) => Lookup::Corrupt(format!("cache entry {}: corrupt ({why}); it is not used", path.display())),
        }
    }

    /// Writes `record` (merged with the one on disk, if good), atomically.
    /// `Err` says what went wrong (and of what: the entry, or the cache
    /// directory), naming it.
    pub fn write(&self, record: &Record) -> Result<(), (PathBuf, String)> {
        let path = self.entry_path(&record.key);
        let mut record = record.clone();
        if let Lookup::Hit(old) = self.read(&record.key) {
            if old == record {
                return Ok(());
            }
            record.merge(&old);
        }
        let unwritable = |e: io::Error| {
            (self.dir.clone(), format!("cache directory {}: cannot be written ({e}); nothing is stored in it", self.dir.display()))
        };
        fs::create_dir_all(&self.entries).map_err(unwritable)?;
        let mut temp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(&self.entries).map_err(unwritable)?;
        temp.write_all(&record.encode()).map_err(unwritable)?;
        temp.persist(&path).map_err(|e| {
            (path.clone(), format!("cache entry {}: cannot be replaced ({}); it is not updated", path.display(), e.error))
        })?;
        Ok(())
    }
}

/// Reads `path` whole, refusing (as corrupt) anything larger than a record
/// can be without reading it all.
fn read_bounded(path: &Path) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let file = fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(record::MAX_RECORD_BYTES as u64 + 1).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The format of what the compressor makes with `compression` at `level`:
/// its settings and the digest of its output on a fixed sample (computed
/// each call: [`PlanCache`] keeps it for a build).  Two builds agreeing on
/// it make the same blob of the same tar.  Empty for no compression.
pub fn compressor_format(compression: Compression, level: i32) -> String {
    if compression == Compression::None {
        return String::new();
    }
    measure_compressor_format(compression, level)
}

/// A fixed sample: text-like and random-like bytes, compressible in parts.
fn sample() -> Vec<u8> {
    let mut out = Vec::with_capacity(192 * 1024);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let words: [&[u8]; 6] = [b"guix ", b"store ", b"layer ", b"/gnu/store/", b"\0\0\0\0", b"hello "];
    while out.len() < 192 * 1024 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if x % 3 == 0 {
            out.extend_from_slice(&x.to_le_bytes());
        } else {
            out.extend_from_slice(words[(x % 6) as usize]);
        }
    }
    out
}

fn measure_compressor_format(compression: Compression, level: i32) -> String {
    use sha2::Digest;
    struct Kept(Arc<Mutex<Vec<u8>>>);
    impl Write for Kept {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    impl crate::compress::Sink for Kept {
        fn finish(self: Box<Self>) -> io::Result<()> {
            Ok(())
        }
    }
    let kept = Arc::new(Mutex::new(Vec::new()));
    let made = crate::compress::compressor(compression, level, 1, Box::new(Kept(Arc::clone(&kept)))).and_then(|mut sink| {
        sink.write_all(&sample())?;
        sink.finish()
    });
    let settings = crate::compress::format_settings(compression);
    match made {
        Ok(()) => {
            let digest = sha2::Sha256::digest(&*kept.lock().unwrap());
            format!("{settings};sample={}", hex::encode(&digest[..12]))
        }
        // A compressor that cannot start makes no blob; a format nothing
        // else has keeps it from matching.
        Err(e) => format!("{settings};error={e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_written_is_read_back_and_damage_is_a_miss_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CacheDir::new(dir.path().join("c"));
        let key = [5; 32];
        assert!(matches!(cache.read(&key), Lookup::Miss));
        let mut r = Record::new(key, [1; 32], 2048);
        cache.write(&r).unwrap();
        assert!(matches!(cache.read(&key), Lookup::Hit(ref got) if *got == r));
        // A second writer's knowledge is merged, not lost.
        let mut other = Record::new(key, [1; 32], 2048);
        other.add_blob(Compression::Gzip, 6, "g", [2; 32], 100);
        cache.write(&other).unwrap();
        r.add_blob(Compression::Zstd, 3, "z", [3; 32], 90);
        cache.write(&r).unwrap();
        let Lookup::Hit(got) = cache.read(&key) else { panic!("a hit") };
        assert!(got.blob(Compression::Gzip, 6, "g").is_some() && got.blob(Compression::Zstd, 3, "z").is_some());
        let path = cache.entry_path(&key);
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        assert!(matches!(cache.read(&key), Lookup::Corrupt(ref why) if why.contains(&path.display().to_string())));
        fs::remove_file(&path).unwrap();
        fs::create_dir(&path).unwrap();
        assert!(matches!(cache.read(&key), Lookup::Corrupt(_)));
        assert!(matches!(cache.write(&r), Err((p, _)) if p == path), "a directory in the entry's place is not replaced");
    }

    #[test]
    fn the_compressor_format_is_stable_and_tells_levels_apart() {
        assert_eq!(compressor_format(Compression::None, 0), "");
        let g6 = compressor_format(Compression::Gzip, 6);
        assert_eq!(g6, measure_compressor_format(Compression::Gzip, 6));
        assert_ne!(g6, compressor_format(Compression::Gzip, 1));
        assert_ne!(compressor_format(Compression::Zstd, 3), compressor_format(Compression::Zstd, 19));
    }
}

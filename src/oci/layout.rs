//! An OCI image layout directory being added to: `oci-layout`,
//! `index.json`, `blobs/sha256/<hex>`.
//!
//! - A missing directory is created (its parent must exist); an empty one
//!   becomes a layout; one with `oci-layout` must have a valid
//!   `index.json`; anything else (a file, a directory that is not a layout,
//!   a corrupt index) is refused before anything is written.
//! - The layout is locked (`flock` on the directory) from reading the index
//!   to replacing it, so two builds into one layout do not lose an entry.
//! - Blobs are written under temporary names in the layout directory and
//!   hard-linked to their digests: a blob already there is not rewritten.
//! - `index.json` is replaced atomically (written beside, renamed), so a
//!   reader sees the old index or the new one, never half of one.
//! - Until [`Layout::commit`], everything this build made (temporary files,
//!   new blobs, new directories, the layout itself when it was made) is
//!   removed when the [`Layout`] is dropped: a failed or cancelled build
//!   leaves the layout as it was.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;

use super::documents::{self, Descriptor};
use crate::error::{Error, ErrorKind, Result};

use crate::output::{Output, OutputFile};

/// A layout being written.
pub struct Layout {
    dir: PathBuf,
    /// How the destination was given, for messages (`oci:DIR`).
    shown: String,
    /// Held open for the lock.
    _lock: File,
    /// The index as it was (a new one for a new layout).
    index: Value,
    has_layout_file: bool,
    /// What this build made, removed (last first) unless committed.
    made: Mutex<Made>,
    next_temp: AtomicU64,
    committed: bool,
}

#[derive(Default)]
struct Made {
    /// The layout directory itself, when this build created it.
    dir: bool,
    /// Directories made inside it (`blobs`, `blobs/sha256`).
    dirs: Vec<PathBuf>,
    /// Blobs (and an `oci-layout`) this build added.
    files: Vec<PathBuf>,
    /// Temporary files not yet linked or removed.
    temps: Vec<PathBuf>,
}

/// A blob being written under a temporary name.
pub struct TempBlob {
    pub file: File,
    pub path: PathBuf,
}

fn layout_error(shown: &str, what: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Output, format!("output '{shown}': {what}"))
}

/// Takes the lock on `dir`, waiting for another build to let go of it, and
/// giving up when `cancel` is set.
fn lock(dir: &File, shown: &str, cancel: Option<&AtomicBool>) -> Result<()> {
    loop {
        // SAFETY: flock on a descriptor this function borrows.
        if unsafe { libc::flock(dir.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(layout_error(shown, format_args!("cannot lock the layout directory: {e}")));
        }
        if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
            return Err(Error::cancelled());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Layout {
    /// Opens (or makes) the layout at `dir`; `shown` is the destination as
    /// given, for messages.
    pub fn open(dir: &Path, shown: &str, cancel: Option<&AtomicBool>) -> Result<Layout> {
        let mut made = Made::default();
        match fs::metadata(dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(layout_error(
                    shown,
                    format_args!(
                        "'{}' is not a directory (an OCI image layout is a directory; oci-archive:FILE writes one file)",
                        dir.display()
                    ),
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(dir).map_err(|e| {
                    layout_error(shown, format_args!("cannot create the layout directory '{}': {e}", dir.display()))
                })?;
                made.dir = true;
            }
            Err(e) => return Err(layout_error(shown, format_args!("'{}': {e}", dir.display()))),
        }
        // From here on, what was made goes if opening fails.
        let mut layout = Layout {
            dir: dir.to_path_buf(),
            shown: shown.to_string(),
            _lock: File::open(dir).map_err(|e| layout_error(shown, format_args!("'{}': {e}", dir.display())))?,
            index: documents::new_index(Vec::new()),
            has_layout_file: false,
            made: Mutex::new(made),
            next_temp: AtomicU64::new(0),
            committed: false,
        };
        lock(&layout._lock, shown, cancel)?;
        layout.read_existing()?;
        for sub in ["blobs", "blobs/sha256"] {
            let path = dir.join(sub);
            match fs::create_dir(&path) {
                Ok(()) => layout.made.lock().unwrap().dirs.push(path),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => {}
                Err(e) => return Err(layout_error(shown, format_args!("cannot create '{}': {e}", path.display()))),
            }
        }
        Ok(layout)
    }

    /// Reads `oci-layout` and `index.json` of an existing layout; refuses a
    /// directory that holds something else.
    fn read_existing(&mut self) -> Result<()> {
        let layout_file = self.dir.join("oci-layout");
        let corrupt = |file: &Path, why: &dyn std::fmt::Display| {
            layout_error(
                &self.shown,
                format_args!("'{}' is corrupt: {why}; the layout was left as it is", file.display()),
            )
        };
        match fs::read(&layout_file) {
            Ok(bytes) => {
                let v: Value = serde_json::from_slice(&bytes).map_err(|e| corrupt(&layout_file, &e))?;
                if v.get("imageLayoutVersion").and_then(Value::as_str) != Some("1.0.0") {
                    return Err(corrupt(&layout_file, &"imageLayoutVersion is not \"1.0.0\""));
                }
                let index_file = self.dir.join("index.json");
                let bytes = fs::read(&index_file).map_err(|e| corrupt(&index_file, &e))?;
                self.index = documents::parse_index(&bytes).map_err(|why| corrupt(&index_file, &why))?;
                self.has_layout_file = true;
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let mut entries = fs::read_dir(&self.dir)
                    .map_err(|e| layout_error(&self.shown, format_args!("'{}': {e}", self.dir.display())))?;
                if entries.next().is_some() {
                    return Err(layout_error(
                        &self.shown,
                        format_args!(
                            "'{}' is not an OCI image layout (it has no oci-layout file) and not empty; refusing to write into it",
                            self.dir.display()
                        ),
                    ));
                }
                Ok(())
            }
            Err(e) => Err(corrupt(&layout_file, &e)),
        }
    }

    fn blob_path(&self, hex: &str) -> PathBuf {
        self.dir.join("blobs/sha256").join(hex)
    }

    /// Whether the blob `hex` is in the layout, a regular file of `size`
    /// bytes.
    pub fn has_blob(&self, hex: &str, size: u64) -> bool {
        fs::symlink_metadata(self.blob_path(hex)).is_ok_and(|m| m.is_file() && m.len() == size)
    }

    /// A new temporary file in the layout directory, removed unless linked.
    pub fn temp_blob(&self) -> Result<TempBlob> {
        let n = self.next_temp.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.join(format!(".gdn-tmp-blob-{}-{n}", std::process::id()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&path)
            .map_err(|e| Error::output(&path, &e))?;
        self.made.lock().unwrap().temps.push(path.clone());
        Ok(TempBlob { file, path })
    }

    /// Gives `temp` its digest's name, unless a blob of that name is there
    /// already (it has the same bytes, and is not rewritten).
    pub fn install(&self, temp: &TempBlob, hex: &str) -> Result<()> {
        // Not fsynced, as a docker-archive is not: the rename of the index
        // makes the image appear at once to readers, not to a crash.
        let path = &temp.path;
        let target = self.blob_path(hex);
        let linked = match fs::hard_link(path, &target) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
            Err(e) => return Err(Error::output(&target, &e)),
        };
        let mut made = self.made.lock().unwrap();
        if linked {
            made.files.push(target);
        }
        fs::remove_file(path).map_err(|e| Error::output(path, &e))?;
        made.temps.retain(|p| p != path);
        Ok(())
    }

    /// Writes a small blob (a config, a manifest) and returns its descriptor.
    pub fn write_blob(&self, media_type: &str, bytes: &[u8]) -> Result<Descriptor> {
        let d = Descriptor::of(media_type, bytes);
        if !self.blob_path(d.hex()).exists() {
            let mut temp = self.temp_blob()?;
            temp.file.write_all(bytes).map_err(|e| Error::output(&temp.path, &e))?;
            self.install(&temp, d.hex())?;
        }
        Ok(d)
    }

    /// Removes from the index to be committed the entries `stale` selects,
    /// and adds `entries` (the artifacts of `crate::oci::artifact`).
    pub fn replace_entries(&mut self, stale: impl Fn(&Value) -> bool, entries: Vec<Value>) {
        let list = self.index["manifests"].as_array_mut().expect("a parsed index");
        list.retain(|e| !stale(e));
        list.extend(entries);
    }

    /// Adds `entry` to the index under `reference` (replacing an entry of
    /// that ref name) and replaces `index.json`; from here on the layout
    /// keeps what this build wrote.
    pub fn commit(mut self, entry: Value, reference: &str) -> Result<()> {
        if !self.has_layout_file {
            let path = self.dir.join("oci-layout");
            write_file(&path, documents::LAYOUT_FILE)?;
            self.made.lock().unwrap().files.push(path);
        }
        let index = documents::add_to_index(self.index.clone(), entry, reference);
        let bytes = serde_json::to_vec(&index).expect("JSON");
        write_file(&self.dir.join("index.json"), &bytes)?;
        self.committed = true;
        Ok(())
    }
}

/// Writes `path` whole, replacing it atomically.
fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let out = OutputFile::open(&Output::Path(path.to_path_buf()))?;
    (&out.file).write_all(bytes).map_err(|e| Error::output(path, &e))?;
    out.commit()
}

impl Drop for Layout {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        let made = std::mem::take(&mut *self.made.lock().unwrap());
        for path in made.temps.iter().chain(made.files.iter().rev()) {
            let _ = fs::remove_file(path);
        }
        for dir in made.dirs.iter().rev() {
            let _ = fs::remove_dir(dir);
        }
        if made.dir {
            // Only if empty: whatever else appeared there is not ours.
            let _ = fs::remove_dir(&self.dir);
        }
    }
}

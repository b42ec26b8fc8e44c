//! Walking a store item: every directory, file and symlink below it, in
//! byte-wise name order within each directory (as `tar --sort=name`), with
//! the checks an image needs.  The same walk serves the measuring pass and
//! the writing pass, so both see the same entries.

use std::ffi::OsString;
use std::fs::{self, Metadata};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, ErrorKind, Result};

/// Mode of every directory, as in the store.
pub const DIR_MODE: u32 = 0o555;

/// What a walk reports, in archive order.
pub trait Visitor {
    /// A directory; `name` ends with `/`.
    fn dir(&mut self, name: &[u8]) -> Result<()>;
    /// A regular file at `path` on the host.
    fn file(&mut self, name: &[u8], path: &Path, mode: u32, size: u64) -> Result<()>;
    fn symlink(&mut self, name: &[u8], target: &[u8]) -> Result<()>;
}

/// The store's normalised mode of a regular file: 0555 when anyone may
/// execute it, else 0444.  Guix canonicalises store files the same way,
/// and it makes the archive independent of the umask the files met.
pub fn file_mode(meta: &Metadata) -> u32 {
    if meta.permissions().mode() & 0o111 != 0 {
        0o555
    } else {
        0o444
    }
}

/// Walks the tree at `root` (a directory, file or symlink), naming it
/// `archive_name` in the archive.
pub fn walk(root: &Path, archive_name: &[u8], visitor: &mut impl Visitor) -> Result<()> {
    let meta = fs::symlink_metadata(root).map_err(|e| Error::io(root, "reading", &e))?;
    let mut path = root.to_path_buf();
    let mut name = archive_name.to_vec();
    visit(&mut path, &mut name, &meta, visitor)
}

fn unsupported(path: &Path, what: &str) -> Error {
    Error::new(
        ErrorKind::UnsupportedFile,
        format!("{}: {what}; a Docker image cannot carry it", path.display()),
    )
}

fn visit(path: &mut PathBuf, name: &mut Vec<u8>, meta: &Metadata, v: &mut impl Visitor) -> Result<()> {
    let ft = meta.file_type();
    if ft.is_dir() {
        name.push(b'/');
        v.dir(name)?;
        let mut children: Vec<(OsString, Metadata)> = Vec::new();
        let entries = fs::read_dir(&*path).map_err(|e| Error::io(path, "reading directory", &e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(path, "reading directory", &e))?;
            let meta = entry.metadata().map_err(|e| Error::io(&entry.path(), "reading", &e))?;
            children.push((entry.file_name(), meta));
        }
        children.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        let dir_len = name.len();
        for (child, meta) in children {
            path.push(&child);
            if child.as_bytes().starts_with(b".wh.") {
                return Err(unsupported(path, "a name starting with '.wh.' (a whiteout to every engine)"));
            }
            name.extend_from_slice(child.as_bytes());
            visit(path, name, &meta, v)?;
            name.truncate(dir_len);
            path.pop();
        }
        name.pop();
        Ok(())
    } else if ft.is_file() {
        v.file(name, path, file_mode(meta), meta.len())
    } else if ft.is_symlink() {
        let target = fs::read_link(&*path).map_err(|e| Error::io(path, "reading symlink", &e))?;
        v.symlink(name, &target.into_os_string().into_vec())
    } else if ft.is_socket() {
        Err(unsupported(path, "a socket"))
    } else if ft.is_fifo() {
        Err(unsupported(path, "a FIFO"))
    } else if ft.is_block_device() {
        Err(unsupported(path, "a block device node"))
    } else if ft.is_char_device() {
        Err(unsupported(path, "a character device node"))
    } else {
        Err(unsupported(path, "a file of unknown type"))
    }
}

//! Walking a store item: every directory, file and symlink below it, in
//! byte-wise name order within each directory (as `tar --sort=name`), with
//! the checks an image needs.  The same walk serves the measuring pass and
//! the writing pass, so both see the same entries.
//!
//! Nothing below the store directory is followed, and nothing blocks.  Each
//! directory is opened relative to its already-open parent (`openat` with
//! `O_DIRECTORY | O_NOFOLLOW`) and listed from that descriptor; a file is
//! opened relative to its directory with `O_NOFOLLOW | O_NONBLOCK`, so a
//! symlink put in its place is refused and a FIFO or device node opens
//! without waiting; symlinks are read with `readlinkat`.  What was opened
//! is checked to be what the listing showed (type, device, inode, size,
//! mtime); anything else is an error saying the path "changed during the
//! build".  Only the chain of open directories holds descriptors: one per
//! level of the tree being walked.
//!
//! The system calls go through `rustix`: safe wrappers of `openat`,
//! `fstatat`, `readlinkat` and `getdents64` on borrowed and owned
//! descriptors, already in the dependency tree (through `tempfile`).

use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;

use crate::error::{Error, ErrorKind, Result};

/// Mode of every directory, as in the store.
pub const DIR_MODE: u32 = 0o555;

/// What the walk keeps of a `stat`: what tells two looks at a file apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Meta {
    pub dev: u64,
    pub ino: u64,
    /// Type and permission bits.
    pub mode: u32,
    pub size: u64,
    pub mtime: (i64, u64),
    pub ctime: (i64, u64),
}

impl Meta {
    // The conversions are lossless; on some architectures they are to the
    // same type, on others not.
    #[allow(clippy::useless_conversion)]
    fn of(st: &Stat) -> Meta {
        Meta {
            dev: u64::from(st.st_dev),
            ino: u64::from(st.st_ino),
            mode: st.st_mode,
            // A regular file's size is never negative.
            size: u64::try_from(i64::from(st.st_size)).unwrap_or(0),
            mtime: (i64::from(st.st_mtime), u64::from(st.st_mtime_nsec)),
            ctime: (i64::from(st.st_ctime), u64::from(st.st_ctime_nsec)),
        }
    }

    pub fn file_type(&self) -> FileType {
        FileType::from_raw_mode(self.mode)
    }

    /// The same file as `other`, as a listing and an open see it: type,
    /// device, inode, permissions, size and mtime.  (Not ctime: a hard
    /// link the daemon adds while deduplicating changes it, not the file.)
    fn same_file(&self, other: &Meta) -> bool {
        (self.dev, self.ino, self.mode, self.size, self.mtime) == (other.dev, other.ino, other.mode, other.size, other.mtime)
    }
}

/// The store's normalised mode of a regular file with permission bits
/// `mode`: 0555 when anyone may execute it, else 0444.  Guix canonicalises
/// store files the same way, and it makes the archive independent of the
/// umask the files met.
pub fn file_mode(mode: u32) -> u32 {
    if mode & 0o111 != 0 {
        0o555
    } else {
        0o444
    }
}

/// What a walk found at one path.
pub struct Entry<'a> {
    /// The archive name; a directory's ends with `/`.
    pub name: &'a [u8],
    /// The path on the host, for messages.
    pub path: &'a Path,
    pub meta: Meta,
    pub kind: Kind<'a>,
}

pub enum Kind<'a> {
    /// A directory, listed: its entries follow.
    Dir { children: usize },
    /// A regular file, not yet opened: see [`Entry::open`].
    File { dir: BorrowedFd<'a>, file_name: &'a CStr },
    Symlink { target: &'a [u8] },
    /// What an image cannot carry, said in words ("a FIFO").
    Unsupported(&'static str),
}

/// What a walk reports, in archive order.
pub trait Visitor {
    fn entry(&mut self, entry: &Entry) -> Result<()>;
}

/// The error for a file an image cannot carry.
pub fn unsupported(path: &Path, what: &str) -> Error {
    Error::new(ErrorKind::UnsupportedFile, format!("{}: {what}; a Docker image cannot carry it", path.display()))
}

/// The error for a path that is no longer what the build saw of it.
pub fn changed(path: &Path, detail: &str) -> Error {
    Error::new(ErrorKind::Io, format!("{}: changed during the build ({detail})", path.display()))
}

const WHITEOUT: &str = "a name starting with '.wh.' (a whiteout to every engine)";

fn type_in_words(t: FileType) -> &'static str {
    match t {
        FileType::RegularFile => "a regular file",
        FileType::Directory => "a directory",
        FileType::Symlink => "a symlink",
        FileType::Socket => "a socket",
        FileType::Fifo => "a FIFO",
        FileType::BlockDevice => "a block device node",
        FileType::CharacterDevice => "a character device node",
        FileType::Unknown => "a file of unknown type",
    }
}

impl Entry<'_> {
    /// A digest of everything the archive takes from this entry (name,
    /// type, device and inode, and a file's size, mtime and mode, a
    /// directory's number of entries, a symlink's target), under the
    /// build's `keys`.  The measuring pass keeps one per entry and the
    /// writing pass compares: what is written is what was measured.
    pub fn fingerprint(&self, keys: &RandomState) -> u64 {
        let mut h = keys.build_hasher();
        self.name.hash(&mut h);
        (self.meta.dev, self.meta.ino).hash(&mut h);
        match &self.kind {
            Kind::Dir { children } => (0u8, children).hash(&mut h),
            Kind::File { .. } => (1u8, self.meta.size, self.meta.mtime, file_mode(self.meta.mode)).hash(&mut h),
            Kind::Symlink { target } => (2u8, target).hash(&mut h),
            Kind::Unsupported(what) => (3u8, what).hash(&mut h),
        }
        h.finish()
    }

    /// What the entry is, in words, for messages.
    pub fn describe(&self) -> String {
        match &self.kind {
            Kind::File { .. } => format!("a regular file of {} bytes", self.meta.size),
            Kind::Dir { children } => format!("a directory of {children} entries"),
            Kind::Symlink { target } => format!("a symlink to '{}'", String::from_utf8_lossy(target)),
            Kind::Unsupported(what) => what.to_string(),
        }
    }

    /// Opens the regular file this entry is, without following a symlink or
    /// waiting, and checks that it is the file listed.
    pub fn open(&self) -> Result<OpenFile> {
        let Kind::File { dir, file_name } = self.kind else {
            return Err(changed(self.path, "not a regular file"));
        };
        let fd = rustix::fs::openat(dir, file_name, FILE_FLAGS | OFlags::NOFOLLOW, Mode::empty())
            .map_err(|e| open_error(self.path, e))?;
        OpenFile::check(File::from(fd), self.path, &self.meta)
    }
}

/// How files are opened: for reading, never waiting (a FIFO or device
/// node put in a file's place opens at once, and is then refused), never
/// becoming the controlling terminal, not inherited by child processes.
const FILE_FLAGS: OFlags = OFlags::RDONLY.union(OFlags::NONBLOCK).union(OFlags::NOCTTY).union(OFlags::CLOEXEC);

fn open_error(path: &Path, e: Errno) -> Error {
    match e {
        Errno::LOOP => changed(path, "it is now a symlink"),
        Errno::NOENT => changed(path, "it was removed"),
        // What opening a socket, or a device without a driver, says.
        Errno::NXIO | Errno::NODEV => changed(path, "it is no longer a regular file"),
        e => Error::io(path, "opening", &e.into()),
    }
}

/// A regular file opened for reading, and what `fstat` said of it then.
#[derive(Debug)]
pub struct OpenFile {
    pub file: File,
    pub meta: Meta,
}

impl OpenFile {
    /// Checks that `file` is a regular file and the one `seen` describes.
    fn check(file: File, path: &Path, seen: &Meta) -> Result<OpenFile> {
        let meta = fstat(&file, path)?;
        if meta.file_type() != FileType::RegularFile {
            return Err(changed(path, &format!("it is now {}", type_in_words(meta.file_type()))));
        }
        if !meta.same_file(seen) {
            return Err(changed(path, "it is not the file measured"));
        }
        Ok(OpenFile { file, meta })
    }

    /// After reading: the file still has the size, mtime and ctime it had
    /// when opened, so what was read is one version of it.
    pub fn check_unchanged(&self, path: &Path) -> Result<()> {
        let now = fstat(&self.file, path)?;
        if (now.size, now.mtime, now.ctime) != (self.meta.size, self.meta.mtime, self.meta.ctime) {
            return Err(changed(path, "it was modified while being read"));
        }
        Ok(())
    }
}

fn fstat(fd: impl AsFd, path: &Path) -> Result<Meta> {
    rustix::fs::fstat(fd).map(|st| Meta::of(&st)).map_err(|e| Error::io(path, "reading", &e.into()))
}

/// A file of the host named by the options (copied into the image), looked
/// at when the build is planned: what [`open_host_file`] will check.  A
/// symlink is followed (the user named it), but what it leads to must be a
/// regular file.
pub fn host_file_meta(path: &Path) -> Result<Meta> {
    let meta = rustix::fs::stat(path).map(|st| Meta::of(&st)).map_err(|e| Error::io(path, "reading", &e.into()))?;
    if meta.file_type() != FileType::RegularFile {
        return Err(Error::new(
            ErrorKind::UnsupportedFile,
            format!("{}: not a regular file ({})", path.display(), type_in_words(meta.file_type())),
        ));
    }
    Ok(meta)
}

/// Opens a host file named by the options, without waiting, and checks it
/// is still what [`host_file_meta`] saw.
pub fn open_host_file(path: &Path, planned: &Meta) -> Result<OpenFile> {
    let fd = rustix::fs::open(path, FILE_FLAGS, Mode::empty()).map_err(|e| match e {
        Errno::NOENT => changed(path, "it was removed"),
        Errno::NXIO | Errno::NODEV => changed(path, "it is no longer a regular file"),
        e => Error::io(path, "opening", &e.into()),
    })?;
    OpenFile::check(File::from(fd), path, planned)
}

/// Walks the tree at `root` (a directory, file or symlink), naming it
/// `archive_name` in the archive.  The directory holding `root` (the store)
/// is opened by its path; nothing below it is followed.
pub fn walk(root: &Path, archive_name: &[u8], visitor: &mut impl Visitor) -> Result<()> {
    let (Some(parent), Some(file_name)) = (root.parent(), root.file_name()) else {
        return Err(Error::new(ErrorKind::Io, format!("{}: not a path below a directory", root.display())));
    };
    let parent_path = if parent.as_os_str().is_empty() { Path::new(".") } else { parent };
    let file_name = CString::new(file_name.as_bytes())
        .map_err(|_| Error::invalid_argument(format!("{}: a path with a NUL byte", root.display())))?;
    let parent_fd = rustix::fs::open(parent_path, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| Error::io(parent_path, "opening directory", &e.into()))?;
    let meta = stat_at(parent_fd.as_fd(), &file_name, root)?;
    let mut path = root.to_path_buf();
    let mut name = archive_name.to_vec();
    visit(parent_fd.as_fd(), &file_name, meta, &mut path, &mut name, visitor)
}

/// `fstatat` without following a symlink.
fn stat_at(dir: BorrowedFd, file_name: &CStr, path: &Path) -> Result<Meta> {
    match rustix::fs::statat(dir, file_name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Meta::of(&st)),
        Err(Errno::NOENT) => Err(changed(path, "it was removed")),
        Err(e) => Err(Error::io(path, "reading", &e.into())),
    }
}

fn visit(dir: BorrowedFd, file_name: &CStr, meta: Meta, path: &mut PathBuf, name: &mut Vec<u8>, v: &mut impl Visitor) -> Result<()> {
    let kind = match meta.file_type() {
        FileType::Directory => return visit_dir(dir, file_name, &meta, path, name, v),
        FileType::RegularFile => Kind::File { dir, file_name },
        FileType::Symlink => {
            let target = rustix::fs::readlinkat(dir, file_name, Vec::new()).map_err(|e| match e {
                Errno::NOENT | Errno::INVAL => changed(path, "it is no longer a symlink"),
                e => Error::io(path, "reading symlink", &e.into()),
            })?;
            return v.entry(&Entry { name, path, meta, kind: Kind::Symlink { target: target.as_bytes() } });
        }
        t => Kind::Unsupported(type_in_words(t)),
    };
    v.entry(&Entry { name, path, meta, kind })
}

fn visit_dir(parent: BorrowedFd, file_name: &CStr, seen: &Meta, path: &mut PathBuf, name: &mut Vec<u8>, v: &mut impl Visitor) -> Result<()> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(parent, file_name, flags, Mode::empty()).map_err(|e| match e {
        Errno::LOOP | Errno::NOTDIR => changed(path, "it is no longer a directory"),
        Errno::NOENT => changed(path, "it was removed"),
        e => Error::io(path, "opening directory", &e.into()),
    })?;
    let meta = fstat(&fd, path)?;
    if (meta.dev, meta.ino) != (seen.dev, seen.ino) {
        return Err(changed(path, "it is not the directory listed"));
    }
    let mut dir = Dir::new(fd).map_err(|e| Error::io(path, "reading directory", &e.into()))?;
    let mut children: Vec<(CString, Meta)> = Vec::new();
    while let Some(entry) = dir.read() {
        let entry = entry.map_err(|e| Error::io(path, "reading directory", &e.into()))?;
        let child = entry.file_name();
        if child == c"." || child == c".." {
            continue;
        }
        let dir_fd = dir.fd().map_err(|e| Error::io(path, "reading directory", &e.into()))?;
        let child_meta = stat_at(dir_fd, child, &path.join(OsStr::from_bytes(child.to_bytes())))?;
        children.push((child.to_owned(), child_meta));
    }
    children.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));

    name.push(b'/');
    v.entry(&Entry { name, path, meta, kind: Kind::Dir { children: children.len() } })?;
    let dir_fd = dir.fd().map_err(|e| Error::io(path, "reading directory", &e.into()))?;
    let dir_len = name.len();
    for (child, child_meta) in &children {
        let bytes = child.as_bytes();
        path.push(OsStr::from_bytes(bytes));
        name.extend_from_slice(bytes);
        if bytes.starts_with(b".wh.") {
            v.entry(&Entry { name, path, meta: *child_meta, kind: Kind::Unsupported(WHITEOUT) })?;
        } else {
            visit(dir_fd, child, *child_meta, path, name, v)?;
        }
        name.truncate(dir_len);
        path.pop();
    }
    name.pop();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::io::Read;
    use std::time::{Duration, Instant};

    /// Records what a walk reports.
    #[derive(Default)]
    struct Log(Vec<(String, String)>);

    impl Visitor for Log {
        fn entry(&mut self, e: &Entry) -> Result<()> {
            self.0.push((String::from_utf8_lossy(e.name).into_owned(), e.describe()));
            if let Kind::File { .. } = e.kind {
                let mut f = e.open()?;
                let mut data = String::new();
                f.file.read_to_string(&mut data).unwrap();
                f.check_unchanged(e.path)?;
            }
            Ok(())
        }
    }

    fn mkfifo(path: &Path) {
        let c = CString::new(path.as_os_str().as_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    }

    #[test]
    fn walks_in_name_order_without_following_symlinks() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("item");
        fs::create_dir_all(root.join("b/c")).unwrap();
        fs::write(root.join("a"), "aa").unwrap();
        fs::write(root.join("b/c/f"), "f").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("b/l")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("b/d")).unwrap();
        let mut log = Log::default();
        walk(&root, b"x", &mut log).unwrap();
        let names: Vec<String> = log.0.iter().map(|(n, w)| format!("{n} {w}")).collect();
        assert_eq!(
            names,
            [
                "x/ a directory of 2 entries",
                "x/a a regular file of 2 bytes",
                "x/b/ a directory of 3 entries",
                "x/b/c/ a directory of 1 entries",
                "x/b/c/f a regular file of 1 bytes",
                "x/b/d a symlink to '/etc'",
                "x/b/l a symlink to '/etc/passwd'",
            ]
        );
    }

    /// Walks `root` and, at the first entry named `at`, calls `change`
    /// before the entry is opened.
    struct ChangeAt<'a> {
        at: &'a [u8],
        change: Option<Box<dyn FnOnce() + 'a>>,
    }

    impl Visitor for ChangeAt<'_> {
        fn entry(&mut self, e: &Entry) -> Result<()> {
            if e.name == self.at {
                if let Some(change) = self.change.take() {
                    change();
                }
            }
            if let Kind::File { .. } = e.kind {
                e.open()?.check_unchanged(e.path)?;
            }
            Ok(())
        }
    }

    fn change_between_listing_and_open(change: impl FnOnce(&Path) + 'static) -> Error {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("item");
        fs::create_dir(&root).unwrap();
        let file = root.join("f");
        fs::write(&file, "0123456789").unwrap();
        fs::write(d.path().join("outside"), "9876543210").unwrap();
        let started = Instant::now();
        let target = file.clone();
        let mut v = ChangeAt { at: b"x/f", change: Some(Box::new(move || change(&target))) };
        let err = walk(&root, b"x", &mut v).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
        assert_eq!(err.kind, ErrorKind::Io);
        assert!(err.message.starts_with(&format!("{}: changed during the build (", file.display())), "{}", err.message);
        drop(d);
        err
    }

    #[test]
    fn a_file_replaced_after_its_listing_is_refused_when_opened() {
        let e = change_between_listing_and_open(|f| {
            fs::remove_file(f).unwrap();
            std::os::unix::fs::symlink(f.parent().unwrap().parent().unwrap().join("outside"), f).unwrap();
        });
        assert!(e.message.contains("now a symlink"), "{}", e.message);
        // A FIFO with no writer: opening it must not wait for one.
        let e = change_between_listing_and_open(|f| {
            fs::remove_file(f).unwrap();
            mkfifo(f);
        });
        assert!(e.message.contains("now a FIFO"), "{}", e.message);
        let e = change_between_listing_and_open(|f| {
            fs::remove_file(f).unwrap();
            fs::create_dir(f).unwrap();
        });
        assert!(e.message.contains("now a directory"), "{}", e.message);
        let e = change_between_listing_and_open(|f| {
            let other = f.with_file_name("other");
            fs::write(&other, "abcdefghij").unwrap();
            fs::rename(&other, f).unwrap();
        });
        assert!(e.message.contains("not the file measured"), "{}", e.message);
        let e = change_between_listing_and_open(|f| fs::write(f, "0123456789a").unwrap());
        assert!(e.message.contains("not the file measured"), "{}", e.message);
        let e = change_between_listing_and_open(|f| fs::remove_file(f).unwrap());
        assert!(e.message.contains("removed"), "{}", e.message);
    }

    #[test]
    fn a_directory_replaced_after_its_listing_is_refused_when_opened() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("item");
        fs::create_dir_all(root.join("a")).unwrap();
        fs::create_dir_all(root.join("d")).unwrap();
        fs::write(root.join("d/f"), "f").unwrap();
        fs::create_dir(d.path().join("outside")).unwrap();
        let dir = root.join("d");
        let (dir2, outside) = (dir.clone(), d.path().join("outside"));
        // At "a", which comes before "d": "d" is listed, not yet opened.
        let mut v = ChangeAt {
            at: b"x/a/",
            change: Some(Box::new(move || {
                fs::rename(&dir2, dir2.with_file_name("moved")).unwrap();
                std::os::unix::fs::symlink(&outside, &dir2).unwrap();
            })),
        };
        let err = walk(&root, b"x", &mut v).unwrap_err();
        assert_eq!(err.message, format!("{}: changed during the build (it is no longer a directory)", dir.display()));
    }

    #[test]
    fn unsupported_files_are_reported_not_opened() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("item");
        fs::create_dir(&root).unwrap();
        mkfifo(&root.join("p"));
        fs::write(root.join(".wh.x"), "").unwrap();
        let mut log = Log::default();
        walk(&root, b"x", &mut log).unwrap();
        assert_eq!(log.0[1].1, WHITEOUT);
        assert_eq!(log.0[2].1, "a FIFO");
    }

    #[test]
    fn host_files_must_be_regular_and_unchanged() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        fs::write(&f, "data").unwrap();
        let meta = host_file_meta(&f).unwrap();
        open_host_file(&f, &meta).unwrap();
        fs::remove_file(&f).unwrap();
        mkfifo(&f);
        let started = Instant::now();
        let e = open_host_file(&f, &meta).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(e.message, format!("{}: changed during the build (it is now a FIFO)", f.display()));
        let e = host_file_meta(&f).unwrap_err();
        assert_eq!(e.kind, ErrorKind::UnsupportedFile);
        assert_eq!(e.message, format!("{}: not a regular file (a FIFO)", f.display()));
    }
}

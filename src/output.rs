//! Where the archive is written, and what each kind of output path means.
//!
//! - `-` ([`Output::Stdout`]) and the names of file descriptors
//!   (`/dev/stdout`, `/dev/stderr`, `/dev/stdin`, `/dev/fd/N`,
//!   `/proc/self/fd/N`) are that descriptor, written at its position, as a
//!   shell redirection would; it must be open for writing.
//! - A character device (`/dev/null`) or a FIFO is opened and written in
//!   place: nothing is created or renamed.  The open does not block: a FIFO
//!   with no reader is an error.
//! - A regular file, or a name that does not exist, is written into an
//!   unnamed temporary file in its directory (`O_TMPFILE`), which is linked
//!   to its name only once the whole archive is there (replacing an
//!   existing file atomically, by a rename).  Where the file system has no
//!   `O_TMPFILE`, the temporary file is `.gdn-tmp-<tag>-<pid>-<random>`
//!   beside the output.  After an error, a panic or a cancelled build
//!   nothing is at (or beside) the output path.
//! - A symlink is followed: to a regular file, its target is replaced (the
//!   symlink stays); to a character device or FIFO, that is written in
//!   place; to anything else, or to nothing, it is refused.
//! - A directory, a socket, a block device: refused, naming the path.
//!
//! [`refuse_inputs`] refuses an output that is one of the build's inputs.

use std::ffi::{CString, OsStr, OsString};
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use crate::compress::Sink;
use crate::error::{Error, ErrorKind, Result};
use crate::image::Output;
use crate::options::ImageOptions;

/// The most bytes given to the kernel in one write to a file.  Larger
/// writes at aligned offsets get large page-cache folios, and on the
/// machines the benchmark ran on (Linux 6.18, ext4, a VM that returns free
/// memory to its host) those cost 1.5-2.5 times the system time to fill
/// right after a large file was deleted; GNU tar's 10 KiB writes do not
/// (README, "Benchmark").
pub const WRITE_PIECE: usize = 32 << 10;

/// Writes all of `buf` at `offset`, in pieces of at most [`WRITE_PIECE`].
pub fn write_all_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    let mut at = 0;
    for piece in buf.chunks(WRITE_PIECE) {
        file.write_all_at(piece, offset + at)?;
        at += piece.len() as u64;
    }
    Ok(())
}

/// A file written from start to end, in pieces of at most [`WRITE_PIECE`]:
/// where a compressor's output goes.
pub struct PieceWriter(pub File);

impl Write for PieceWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(&buf[..buf.len().min(WRITE_PIECE)])
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl Sink for PieceWriter {
    fn finish(self: Box<Self>) -> io::Result<()> {
        Ok(())
    }
}

/// A pipe or FIFO written from start to end without ever blocking in
/// `write`: each write is at most what the pipe has room for, and a full
/// pipe is waited on with `poll` in steps of 100 ms, looking at `cancel`
/// each time.  So a reader that stops reading (`-o - | sleep 1000`) holds
/// the build only until it is cancelled (by a signal, in the CLI), where a
/// blocking `write` would hold it for good.
pub struct PipeWriter {
    file: File,
    cancel: Option<Arc<AtomicBool>>,
    /// The pipe's capacity in pages, and the page size.
    pages: usize,
    page: usize,
}

/// What a [`PipeWriter`] returns (inside an `io::Error`) when the build is
/// cancelled while it waits for the reader.
#[derive(Debug)]
pub struct PipeWaitCancelled;

impl std::fmt::Display for PipeWaitCancelled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the build was cancelled while waiting for the pipe's reader")
    }
}

impl std::error::Error for PipeWaitCancelled {}

impl PipeWaitCancelled {
    /// Whether `err` is this error.
    pub fn is(err: &io::Error) -> bool {
        err.get_ref().is_some_and(|inner| inner.is::<PipeWaitCancelled>())
    }
}

impl PipeWriter {
    /// A writer for `file` when it is a pipe or FIFO whose capacity can be
    /// read; otherwise `file` back.
    pub fn for_pipe(file: File, cancel: Option<Arc<AtomicBool>>) -> std::result::Result<PipeWriter, File> {
        let fd = file.as_raw_fd();
        let is_pipe = file.metadata().map(|m| m.file_type().is_fifo()).unwrap_or(false);
        // SAFETY: plain queries on a descriptor this function owns.
        let (size, page) = unsafe { (libc::fcntl(fd, libc::F_GETPIPE_SZ), libc::sysconf(libc::_SC_PAGESIZE)) };
        if !is_pipe || size <= 0 || page <= 0 {
            return Err(file);
        }
        let page = page as usize;
        Ok(PipeWriter { file, cancel, pages: size as usize / page, page })
    }

    /// How many bytes a write can take now without blocking.  A pipe holds
    /// its bytes in page-sized slots; what is queued spans at most one
    /// slot more than its size in pages (a partly read head and a partly
    /// filled tail), and the rest of the slots are free.
    fn room(&self) -> io::Result<usize> {
        let mut queued: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int, on either end of a pipe.
        if unsafe { libc::ioctl(self.file.as_raw_fd(), libc::FIONREAD, &mut queued) } < 0 {
            return Err(io::Error::last_os_error());
        }
        let used = (queued.max(0) as usize).div_ceil(self.page) + 1;
        Ok(self.pages.saturating_sub(used) * self.page)
    }
}

impl Write for PipeWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            if self.cancel.as_ref().is_some_and(|c| c.load(Ordering::Relaxed)) {
                return Err(io::Error::other(PipeWaitCancelled));
            }
            let room = self.room()?;
            if room > 0 {
                return self.file.write(&buf[..buf.len().min(room)]);
            }
            let mut pfd = libc::pollfd { fd: self.file.as_raw_fd(), events: libc::POLLOUT, revents: 0 };
            // SAFETY: one valid pollfd, for the duration of the call.
            let ready = unsafe { libc::poll(&mut pfd, 1, 100) };
            if ready > 0 && pfd.revents & (libc::POLLERR | libc::POLLHUP) != 0 {
                // The reader is gone: the write says so (EPIPE).
                return self.file.write(&buf[..buf.len().min(self.page)]);
            }
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Sink for PipeWriter {
    fn finish(self: Box<Self>) -> io::Result<()> {
        Ok(())
    }
}

/// An output being written.
pub struct OutputFile {
    /// The handle to write through.
    pub file: File,
    /// `Some` for a regular file: the temporary file and where it goes.
    replacement: Option<Replacement>,
    /// The name to give in errors: the output as the caller named it.
    name: PathBuf,
}

/// A regular file being made: written unnamed (or under a temporary name)
/// in `dir`, given `name` at the end.
struct Replacement {
    /// The directory, opened once: every later step is relative to it.
    dir: OwnedFd,
    /// Its path, for listing it and for messages.
    dir_path: PathBuf,
    /// The final name in `dir` (for a symlink: its target's name).
    name: OsString,
    temp: Temp,
    /// The file replaced, as it was when the build started.
    existing: Option<fs::Metadata>,
}

enum Temp {
    /// `O_TMPFILE`: nothing to remove.
    Unnamed,
    /// A name in `dir`, removed unless the output is committed.
    Named(OsString),
}

impl Drop for Replacement {
    fn drop(&mut self) {
        if let Temp::Named(name) = &self.temp {
            let _ = unlink_at(&self.dir, name);
        }
    }
}

impl Replacement {
    fn target(&self) -> PathBuf {
        self.dir_path.join(&self.name)
    }
}

impl OutputFile {
    /// Checks the output path and opens where the archive will be written.
    pub fn open(output: &Output) -> Result<OutputFile> {
        match output {
            Output::Stdout => {
                let out = open_descriptor(1, Path::new("-"))?;
                Ok(OutputFile { name: PathBuf::from("standard output"), ..out })
            }
            Output::Path(path) => match descriptor_of(path) {
                Some(fd) => open_descriptor(fd, path),
                None => open_path(path),
            },
        }
    }

    /// Whether the handle can be written at any offset (a file being made,
    /// not a pipe, a device or a descriptor written at its position).
    pub fn is_seekable(&self) -> bool {
        self.replacement.is_some()
    }

    /// The name to give in errors.
    pub fn display_path(&self) -> PathBuf {
        self.name.clone()
    }

    /// Makes the output appear at its final path.
    pub fn commit(self) -> Result<()> {
        let OutputFile { file, replacement, name } = self;
        let Some(mut r) = replacement else { return Ok(()) };
        let fail = |e: io::Error| Error::output(&name, &e);
        // A new file gets the mode a created file would (0666 less the
        // umask); a replaced one keeps its permission bits and, where the
        // system allows (as root), its owner and group, as `cp` and `>` do.
        let mode = match &r.existing {
            Some(old) => old.mode() & 0o777,
            None => 0o666 & !process_umask(),
        };
        cvt(unsafe { libc::fchmod(file.as_raw_fd(), mode) }).map_err(fail)?;
        if let Some(old) = &r.existing {
            let ours = file.metadata().map_err(fail)?;
            if (ours.uid(), ours.gid()) != (old.uid(), old.gid()) {
                // Not permitted (not root): the file is the writer's, as
                // after any tool that replaces a file by renaming.
                let _ = unsafe { libc::fchown(file.as_raw_fd(), old.uid(), old.gid()) };
            }
        }
        if let Temp::Unnamed = r.temp {
            if r.existing.is_none() {
                // linkat never replaces: if something appeared at the name
                // meanwhile, it is replaced below if it is a regular file.
                match link_unnamed(&file, &r.dir, &r.name) {
                    Ok(()) => return Ok(()),
                    Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                    Err(e) => return Err(fail(e)),
                }
            }
            r.temp = Temp::Named(link_under_temp_name(&file, &r.dir).map_err(fail)?);
        }
        drop(file);
        let Temp::Named(temp) = &r.temp else { unreachable!() };
        // The output may have been replaced during the build: never rename
        // over what is not a regular file.
        match stat_at(&r.dir, &r.name) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(fail(e)),
            Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFREG => {}
            Ok(st) => {
                return Err(Error::new(
                    ErrorKind::Output,
                    format!(
                        "output '{}': '{}' became {} during the build; it was not replaced",
                        name.display(),
                        r.target().display(),
                        kind_name(st.st_mode)
                    ),
                ))
            }
        }
        let (from, to) = (cstring(temp).map_err(fail)?, cstring(&r.name).map_err(fail)?);
        cvt(unsafe { libc::renameat(r.dir.as_raw_fd(), from.as_ptr(), r.dir.as_raw_fd(), to.as_ptr()) })
            .map_err(fail)?;
        // Renamed: nothing left to remove.
        r.temp = Temp::Unnamed;
        Ok(())
    }
}

/// The descriptor that `path` names as a shell redirection does:
/// `/dev/stdin`, `/dev/stdout`, `/dev/stderr`, `/dev/fd/N`,
/// `/proc/self/fd/N`.  Other names (even one that is a symlink to these)
/// are files.
pub fn descriptor_of(path: &Path) -> Option<RawFd> {
    let s = path.to_str()?;
    match s {
        "/dev/stdin" => Some(0),
        "/dev/stdout" => Some(1),
        "/dev/stderr" => Some(2),
        _ => {
            let n = s.strip_prefix("/dev/fd/").or_else(|| s.strip_prefix("/proc/self/fd/"))?;
            let canonical = !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && (n == "0" || !n.starts_with('0'));
            if canonical {
                n.parse().ok()
            } else {
                None
            }
        }
    }
}

/// Whether `output` is written to the file standard output is open on: `-`,
/// `/dev/stdout` and its aliases, or a device or FIFO that fd 1 is open on
/// (the CLI then prints no file name after the archive).
pub fn is_standard_output(output: &Output) -> bool {
    match output {
        Output::Stdout => true,
        Output::Path(path) => match descriptor_of(path) {
            Some(fd) => fd == 1,
            None => match (fs::metadata(path), fd_id(1)) {
                (Ok(meta), Some(stdout)) => !meta.is_file() && FileId::of(&meta) == stdout,
                _ => false,
            },
        },
    }
}

fn open_descriptor(fd: RawFd, name: &Path) -> Result<OutputFile> {
    let bad = |why: String| Error::new(ErrorKind::Output, format!("output '{}': {why}", name.display()));
    let what = match fd {
        1 => "standard output".to_string(),
        _ => format!("file descriptor {fd}"),
    };
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        let err = io::Error::last_os_error();
        return Err(match err.raw_os_error() {
            Some(libc::EBADF) if fd == 1 => bad("standard output is closed".into()),
            Some(libc::EBADF) => bad(format!("{what} is not open")),
            _ => Error::output(name, &err),
        });
    }
    if flags & libc::O_ACCMODE == libc::O_RDONLY || flags & libc::O_PATH != 0 {
        return Err(bad(format!("{what} is not open for writing")));
    }
    // A duplicate, so that dropping it leaves the caller's descriptor open.
    let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if dup < 0 {
        return Err(Error::output(name, &io::Error::last_os_error()));
    }
    let file = unsafe { File::from_raw_fd(dup) };
    let meta = file.metadata().map_err(|e| Error::output(name, &e))?;
    if meta.is_dir() {
        return Err(bad(format!("{what} is a directory")));
    }
    Ok(OutputFile { file, replacement: None, name: name.to_path_buf() })
}

fn open_path(path: &Path) -> Result<OutputFile> {
    let bad = |why: String| Error::new(ErrorKind::Output, format!("output '{}': {why}", path.display()));
    let bytes = path.as_os_str().as_bytes();
    if bytes.is_empty() {
        return Err(bad("empty file name".into()));
    }
    // `dir/`, `dir/.`, `..`: a directory's name, never a file's.
    if bytes.ends_with(b"/") || path.file_name().is_none() || bytes == b"." || bytes.ends_with(b"/.") {
        return Err(bad("is a directory name, not a file name".into()));
    }
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return new_file(path, &parent_of(path), path.file_name().unwrap()),
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
            return Err(bad(format!("'{}' is not a directory", parent_of(path).display())))
        }
        Err(e) => return Err(Error::output(path, &e)),
    };
    let ft = meta.file_type();
    if ft.is_symlink() {
        let link = fs::read_link(path).map(|t| t.display().to_string()).unwrap_or_default();
        let target = match fs::metadata(path) {
            Ok(target) => target,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(bad(format!("is a symlink to '{link}', which does not exist")))
            }
            Err(e) => return Err(Error::output(path, &e)),
        };
        let tt = target.file_type();
        if tt.is_file() {
            // Write beside the target and rename onto it: the link stays.
            let real = fs::canonicalize(path).map_err(|e| Error::output(path, &e))?;
            let same = fs::symlink_metadata(&real).is_ok_and(|m| m.is_file() && FileId::of(&m) == FileId::of(&target));
            let Some(real_name) = real.file_name().filter(|_| same) else {
                return Err(bad(format!("is a symlink to '{link}', which changed while it was being resolved")));
            };
            return replace_file(path, &parent_of(&real), real_name, target);
        }
        if tt.is_char_device() || tt.is_fifo() {
            return open_in_place(path, &target, true);
        }
        return Err(bad(format!("is a symlink to '{link}', which is {}; refusing to write over it", kind_name(target.mode()))));
    }
    if ft.is_file() {
        return replace_file(path, &parent_of(path), path.file_name().unwrap(), meta);
    }
    if ft.is_char_device() || ft.is_fifo() {
        return open_in_place(path, &meta, false);
    }
    if ft.is_dir() {
        return Err(bad("is a directory".into()));
    }
    Err(bad(format!("is {}; refusing to write over it", kind_name(meta.mode()))))
}

/// The directory a path's last component is in.
fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// "a directory", "a socket", ... for messages.
fn kind_name(mode: u32) -> &'static str {
    match mode & libc::S_IFMT {
        libc::S_IFREG => "a regular file",
        libc::S_IFDIR => "a directory",
        libc::S_IFLNK => "a symlink",
        libc::S_IFCHR => "a character device",
        libc::S_IFBLK => "a block device",
        libc::S_IFIFO => "a FIFO",
        libc::S_IFSOCK => "a socket",
        _ => "not a regular file",
    }
}

/// Opens a character device or FIFO for writing, without creating it and
/// without blocking, and checks it is what was looked at.
fn open_in_place(path: &Path, expected: &fs::Metadata, follow: bool) -> Result<OutputFile> {
    let bad = |why: String| Error::new(ErrorKind::Output, format!("output '{}': {why}", path.display()));
    let c = cstring(path).map_err(|e| Error::output(path, &e))?;
    let nofollow = if follow { 0 } else { libc::O_NOFOLLOW };
    let flags = libc::O_WRONLY | libc::O_NOCTTY | libc::O_CLOEXEC | libc::O_NONBLOCK | nofollow;
    let fd = unsafe { libc::open(c.as_ptr(), flags) };
    if fd < 0 {
        let err = io::Error::last_os_error();
        return Err(match err.raw_os_error() {
            Some(libc::ENXIO) if expected.file_type().is_fifo() => {
                bad("is a FIFO with no reader; start the reader first (e.g. docker load -i FIFO)".into())
            }
            _ => Error::output(path, &err),
        });
    }
    let file = unsafe { File::from_raw_fd(fd) };
    let meta = file.metadata().map_err(|e| Error::output(path, &e))?;
    let ft = meta.file_type();
    if FileId::of(&meta) != FileId::of(expected) || !(ft.is_char_device() || ft.is_fifo()) {
        return Err(bad("changed while it was being opened".into()));
    }
    // Non-blocking was for the open only: writes wait for the reader.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    cvt(flags).and_then(|f| cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, f & !libc::O_NONBLOCK) })).map_err(|e| Error::output(path, &e))?;
    Ok(OutputFile { file, replacement: None, name: path.to_path_buf() })
}

fn new_file(path: &Path, dir: &Path, name: &OsStr) -> Result<OutputFile> {
    make_replacement(path, dir, name, None, false)
}

fn replace_file(path: &Path, dir: &Path, name: &OsStr, existing: fs::Metadata) -> Result<OutputFile> {
    make_replacement(path, dir, name, Some(existing), false)
}

fn make_replacement(
    path: &Path,
    dir: &Path,
    name: &OsStr,
    existing: Option<fs::Metadata>,
    // As on a file system without O_TMPFILE (for the tests).
    force_named: bool,
) -> Result<OutputFile> {
    let bad = |why: String| Error::new(ErrorKind::Output, format!("output '{}': {why}", path.display()));
    let dir_fd = match open_dir(dir) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
            return Err(bad(format!("the directory '{}' does not exist", dir.display())))
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
            return Err(bad(format!("'{}' is not a directory", dir.display())))
        }
        Err(e) => return Err(Error::output(path, &e)),
    };
    remove_stale_temps(&dir_fd, dir);
    let unnamed = match force_named {
        false => open_unnamed(&dir_fd).map_err(|e| creating_failed(path, dir, &e))?,
        true => None,
    };
    let (file, temp) = match unnamed {
        Some(file) => (file, Temp::Unnamed),
        None => {
            let (file, temp) = create_named_temp(&dir_fd).map_err(|e| creating_failed(path, dir, &e))?;
            (file, Temp::Named(temp))
        }
    };
    let replacement = Replacement { dir: dir_fd, dir_path: dir.to_path_buf(), name: name.to_os_string(), temp, existing };
    Ok(OutputFile { file, replacement: Some(replacement), name: path.to_path_buf() })
}

fn creating_failed(path: &Path, dir: &Path, err: &io::Error) -> Error {
    Error::new(
        ErrorKind::Output,
        format!("{}: cannot write output: cannot create a file in '{}': {err}", path.display(), dir.display()),
    )
}

fn open_dir(dir: &Path) -> io::Result<OwnedFd> {
    let c = cstring(dir)?;
    let fd = cvt(unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) })?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// An `O_TMPFILE` file in `dir`, or `None` where the file system (or the
/// kernel) has none, or `/proc` is missing to link it by.
fn open_unnamed(dir: &OwnedFd) -> io::Result<Option<File>> {
    let flags = libc::O_TMPFILE | libc::O_WRONLY | libc::O_CLOEXEC;
    let fd = unsafe { libc::openat(dir.as_raw_fd(), c".".as_ptr(), flags, 0o600 as libc::c_uint) };
    if fd < 0 {
        let err = io::Error::last_os_error();
        return match err.raw_os_error() {
            Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL | libc::ENOENT) => Ok(None),
            _ => Err(err),
        };
    }
    let file = unsafe { File::from_raw_fd(fd) };
    if fs::metadata(proc_fd(&file)).is_err() {
        return Ok(None);
    }
    Ok(Some(file))
}

fn proc_fd(file: &File) -> String {
    format!("/proc/self/fd/{}", file.as_raw_fd())
}

/// Gives the `O_TMPFILE` file `name` in `dir`; never replaces.
fn link_unnamed(file: &File, dir: &OwnedFd, name: &OsStr) -> io::Result<()> {
    let proc = CString::new(proc_fd(file)).expect("no NUL");
    let to = cstring(name)?;
    let r = unsafe { libc::linkat(libc::AT_FDCWD, proc.as_ptr(), dir.as_raw_fd(), to.as_ptr(), libc::AT_SYMLINK_FOLLOW) };
    if r == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EEXIST) {
        return Err(err);
    }
    // Without /proc, AT_EMPTY_PATH (which needs CAP_DAC_READ_SEARCH).
    let r = unsafe { libc::linkat(file.as_raw_fd(), c"".as_ptr(), dir.as_raw_fd(), to.as_ptr(), libc::AT_EMPTY_PATH) };
    if r == 0 {
        Ok(())
    } else {
        Err(err)
    }
}

/// Links the `O_TMPFILE` file under a fresh temporary name (to be renamed
/// over an existing output, which `linkat` cannot replace).
fn link_under_temp_name(file: &File, dir: &OwnedFd) -> io::Result<OsString> {
    for _ in 0..64 {
        let name = temp_name();
        match link_unnamed(file, dir, &name) {
            Ok(()) => return Ok(name),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::from_raw_os_error(libc::EEXIST))
}

fn create_named_temp(dir: &OwnedFd) -> io::Result<(File, OsString)> {
    for _ in 0..64 {
        let name = temp_name();
        let c = cstring(&name)?;
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        let fd = unsafe { libc::openat(dir.as_raw_fd(), c.as_ptr(), flags, 0o600 as libc::c_uint) };
        if fd >= 0 {
            return Ok((unsafe { File::from_raw_fd(fd) }, name));
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EEXIST) {
            return Err(err);
        }
    }
    Err(io::Error::from_raw_os_error(libc::EEXIST))
}

// Temporary names: `.gdn-tmp-<tag>-<pid>-<random>`, 45 bytes at most, so a
// valid output name never makes one too long.  The tag tells this boot and
// pid namespace from others, so that a pid is only judged where it means
// the same process.

const TEMP_PREFIX: &str = ".gdn-tmp-";

/// A temporary file not touched for this long is stale whoever made it (a
/// build writes its file all along).
const STALE_AGE: Duration = Duration::from_secs(24 * 3600);

fn temp_name() -> OsString {
    let tag = host_tag().unwrap_or("00000000");
    OsString::from(format!("{TEMP_PREFIX}{tag}-{}-{:016x}", std::process::id(), random_u64()))
}

/// 8 hex digits of the boot id and pid namespace, or `None` without /proc.
fn host_tag() -> Option<&'static str> {
    static TAG: OnceLock<Option<String>> = OnceLock::new();
    TAG.get_or_init(|| {
        let boot = fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
        let ns = fs::metadata("/proc/self/ns/pid").ok()?;
        let digest = Sha256::digest(format!("{}:{}:{}", boot.trim(), ns.dev(), ns.ino()));
        Some(hex::encode(&digest[..4]))
    })
    .as_deref()
}

fn random_u64() -> u64 {
    let mut buf = [0u8; 8];
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n == 8 {
        return u64::from_ne_bytes(buf);
    }
    // No getrandom: the clock and a counter still differ between calls.
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    now.as_nanos() as u64 ^ COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed).rotate_left(40)
}

/// The tag and pid of one of our temporary names.
fn parse_temp_name(name: &OsStr) -> Option<(&str, u32)> {
    let rest = name.to_str()?.strip_prefix(TEMP_PREFIX)?;
    let mut parts = rest.split('-');
    let (tag, pid, random) = (parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    let pid_ok = !pid.is_empty() && pid.len() <= 10 && pid.bytes().all(|b| b.is_ascii_digit());
    if parts.next().is_some() || !hex(tag, 8) || !hex(random, 16) || !pid_ok {
        return None;
    }
    Some((tag, pid.parse().ok()?))
}

/// Removes the temporary files of builds that died (killed by SIGKILL, or
/// a crash, during the moment a file is named): ours from this boot and
/// pid namespace whose process is gone, and any not touched for a day.
fn remove_stale_temps(dir: &OwnedFd, dir_path: &Path) {
    let Ok(entries) = fs::read_dir(dir_path) else { return };
    let now = SystemTime::now();
    let me = std::process::id();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some((tag, pid)) = parse_temp_name(&name) else { continue };
        if pid == me && Some(tag) == host_tag() {
            continue;
        }
        // Looked at through the directory opened, not following symlinks.
        let Ok(st) = stat_at(dir, &name) else { continue };
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            continue;
        }
        let age = now
            .duration_since(SystemTime::UNIX_EPOCH + Duration::from_secs(st.st_mtime.max(0) as u64))
            .unwrap_or_default();
        let dead = Some(tag) == host_tag() && process_is_gone(pid);
        if dead || age > STALE_AGE {
            let _ = unlink_at(dir, &name);
        }
    }
}

fn process_is_gone(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
    pid > 0 && unsafe { libc::kill(pid, 0) } != 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

// Output versus inputs.

/// A file the build reads, which the output must not be.
pub struct Input<'a> {
    /// What it is, for the message: "store database", "closure file".
    pub what: &'a str,
    /// The file's name as the caller gave it.
    pub path: &'a Path,
}

/// Refuses, before anything is written, an output that is one of the
/// build's inputs (the same file, by device and inode where both exist, or
/// the same place, by canonical path of its directory), or that is inside
/// the store directory `store` (under any store item, or the store itself).
pub fn refuse_inputs(output: &Output, inputs: &[Input], store: Option<&Path>) -> Result<()> {
    let (name, id, place) = match output {
        Output::Stdout => (Path::new("-"), fd_id(1), None),
        Output::Path(path) => match descriptor_of(path) {
            Some(fd) => (path.as_path(), fd_id(fd), None),
            None => (path.as_path(), path_id(path), place_of(path)),
        },
    };
    for input in inputs {
        // A character device read and written (`/dev/null`, a terminal) is
        // not an input the output could damage.
        let input_meta = fs::metadata(input.path).ok();
        if input_meta.as_ref().is_some_and(|m| m.file_type().is_char_device()) {
            continue;
        }
        let same_file = id.is_some() && id == input_meta.map(|m| FileId::of(&m));
        let same_place = place.is_some() && place == place_of(input.path);
        if same_file || same_place {
            return Err(Error::new(
                ErrorKind::Output,
                format!(
                    "output '{}' is the {} '{}': refusing to write over an input of the build",
                    name.display(),
                    input.what,
                    input.path.display()
                ),
            ));
        }
    }
    if let (Some(store), Some(place)) = (store, &place) {
        // By device and inode, so that a bind mount or a symlink to the
        // store is seen too.
        if let Some(store_id) = path_id(store) {
            if place.ancestors().any(|a| path_id(a) == Some(store_id)) {
                return Err(Error::new(
                    ErrorKind::Output,
                    format!(
                        "output '{}' is inside the store directory '{}': refusing to write into the store the image is made of",
                        name.display(),
                        store.display()
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// [`refuse_inputs`] with the inputs `options` name: the store database
/// (and its journal files), the extra files, and the store directory.
pub fn refuse_build_inputs(output: &Output, options: &ImageOptions) -> Result<()> {
    let mut journals = Vec::new();
    if let Some(db) = &options.database {
        for suffix in ["-wal", "-shm", "-journal"] {
            let mut p = db.clone().into_os_string();
            p.push(suffix);
            journals.push(PathBuf::from(p));
        }
    }
    let mut inputs = Vec::new();
    if let Some(db) = &options.database {
        inputs.push(Input { what: "store database", path: db });
    }
    inputs.extend(journals.iter().map(|p| Input { what: "store database's journal", path: p }));
    inputs.extend(options.files.iter().map(|f| Input { what: "extra file", path: &f.source }));
    refuse_inputs(output, &inputs, Some(&options.store_dir))
}

/// A file's identity.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    fn of(meta: &fs::Metadata) -> FileId {
        FileId { dev: meta.dev(), ino: meta.ino() }
    }
}

/// The identity of what `path` names, following symlinks.
fn path_id(path: &Path) -> Option<FileId> {
    fs::metadata(path).ok().map(|m| FileId::of(&m))
}

fn fd_id(fd: RawFd) -> Option<FileId> {
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    (unsafe { libc::fstat(fd, &mut st) } == 0).then_some(FileId { dev: st.st_dev, ino: st.st_ino })
}

/// Where `path` is: its canonical path when it exists, else its
/// directory's canonical path and its name.
fn place_of(path: &Path) -> Option<PathBuf> {
    if let Ok(real) = fs::canonicalize(path) {
        return Some(real);
    }
    let name = path.file_name()?;
    Some(fs::canonicalize(parent_of(path)).ok()?.join(name))
}

// Small wrappers around the system calls.

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn cstring(s: impl AsRef<OsStr>) -> io::Result<CString> {
    CString::new(s.as_ref().as_bytes()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in the name"))
}

fn stat_at(dir: &OwnedFd, name: &OsStr) -> io::Result<libc::stat> {
    let c = cstring(name)?;
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    cvt(unsafe { libc::fstatat(dir.as_raw_fd(), c.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) })?;
    Ok(st)
}

fn unlink_at(dir: &OwnedFd, name: &OsStr) -> io::Result<()> {
    let c = cstring(name)?;
    cvt(unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), 0) }).map(|_| ())
}

/// The umask, read without changing it (calling umask(2) twice would race
/// with threads creating files).
fn process_umask() -> u32 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o022)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::fs::{symlink, PermissionsExt};
    use std::time::Instant;

    fn open(path: &Path) -> Result<OutputFile> {
        OutputFile::open(&Output::Path(path.to_path_buf()))
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        v.sort();
        v
    }

    /// An output in `dir` with the named temporary file, as on a file
    /// system without O_TMPFILE.
    fn open_named(path: &Path, existing: Option<fs::Metadata>) -> OutputFile {
        make_replacement(path, &parent_of(path), path.file_name().unwrap(), existing, true).unwrap()
    }

    fn mkfifo(path: &Path) {
        let c = cstring(path).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn nothing_is_left_unless_committed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("image.tar");
        let mut out = open(&path).unwrap();
        assert!(out.is_seekable());
        out.file.write_all(b"partial").unwrap();
        drop(out);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);

        let mut out = open(&path).unwrap();
        out.file.write_all(b"whole").unwrap();
        out.commit().unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"whole");
        assert_eq!(names(dir.path()), ["image.tar"]);

        // Replacing: the old file stays whole until the commit.
        let mut out = open(&path).unwrap();
        out.file.write_all(b"newer").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"whole");
        drop(out);
        assert_eq!(fs::read(&path).unwrap(), b"whole");
        let mut out = open(&path).unwrap();
        out.file.write_all(b"newer").unwrap();
        out.commit().unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"newer");
        assert_eq!(names(dir.path()), ["image.tar"]);
    }

    #[test]
    fn without_o_tmpfile_a_named_temporary_file_is_used_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("image.tar");
        let mut out = open_named(&path, None);
        out.file.write_all(b"partial").unwrap();
        let during = names(dir.path());
        assert_eq!(during.len(), 1);
        assert!(parse_temp_name(OsStr::new(&during[0])).is_some(), "{during:?}");
        drop(out);
        assert!(names(dir.path()).is_empty());

        let mut out = open_named(&path, None);
        out.file.write_all(b"whole").unwrap();
        out.commit().unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"whole");
        let existing = fs::metadata(&path).unwrap();
        let mut out = open_named(&path, Some(existing));
        out.file.write_all(b"newer").unwrap();
        out.commit().unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"newer");
        assert_eq!(names(dir.path()), ["image.tar"]);
    }

    #[test]
    fn bad_output_paths_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = open(dir.path()).err().unwrap();
        assert!(err.message.contains("is a directory"), "{}", err.message);
        let missing = dir.path().join("no/such/image.tar");
        let err = open(&missing).err().unwrap();
        assert!(err.message.contains("does not exist"), "{}", err.message);
        assert_eq!(err.kind, ErrorKind::Output);
        let file = dir.path().join("file");
        fs::write(&file, "x").unwrap();
        let err = open(&file.join("image.tar")).err().unwrap();
        assert!(err.message.contains("is not a directory"), "{}", err.message);
        for name in ["image.tar/", ".", "..", "sub/."] {
            let err = open(&dir.path().join(name)).err().unwrap();
            assert!(err.message.contains("is a directory name"), "{name}: {}", err.message);
        }
        let err = open(Path::new("")).err().unwrap();
        assert!(err.message.contains("empty file name"), "{}", err.message);
        assert_eq!(names(dir.path()), ["file"]);
    }

    #[test]
    fn sockets_directories_and_dangling_symlinks_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("socket");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let err = open(&socket).err().unwrap();
        assert!(err.message.contains("is a socket") && err.message.contains("socket'"), "{}", err.message);

        let sub = dir.path().join("sub");
        fs::create_dir(&sub).unwrap();
        for (link, target, says) in [
            ("to-dir", sub.clone(), "which is a directory"),
            ("to-socket", socket.clone(), "which is a socket"),
            ("dangling", dir.path().join("nothing"), "which does not exist"),
        ] {
            let link = dir.path().join(link);
            symlink(&target, &link).unwrap();
            let err = open(&link).err().unwrap();
            assert!(err.message.contains(says) && err.message.contains(&*link.to_string_lossy()), "{}", err.message);
            assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        }
        assert!(fs::metadata(&sub).unwrap().is_dir());
        assert_eq!(names(dir.path()), ["dangling", "socket", "sub", "to-dir", "to-socket"]);
        assert!(names(&sub).is_empty());
    }

    #[test]
    fn writes_in_pieces_put_every_byte_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..3 * WRITE_PIECE + 5).map(|i| (i % 251) as u8).collect();
        let at = fs::File::create(dir.path().join("at")).unwrap();
        write_all_at(&at, &data, 7).unwrap();
        let back = fs::read(dir.path().join("at")).unwrap();
        assert_eq!(back.len(), data.len() + 7);
        assert!(back[7..] == data[..]);

        let mut seq = PieceWriter(fs::File::create(dir.path().join("seq")).unwrap());
        seq.write_all(&data).unwrap();
        assert!(fs::read(dir.path().join("seq")).unwrap() == data);
    }

    #[test]
    fn devices_are_written_in_place() {
        let out = open(Path::new("/dev/null")).unwrap();
        assert!(!out.is_seekable());
        out.commit().unwrap();
        assert!(fs::metadata("/dev/null").unwrap().file_type().is_char_device());
    }

    #[test]
    fn a_symlink_to_a_device_writes_the_device() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("null");
        symlink("/dev/null", &link).unwrap();
        let mut out = open(&link).unwrap();
        assert!(!out.is_seekable());
        out.file.write_all(b"archive").unwrap();
        out.commit().unwrap();
        assert_eq!(fs::read_link(&link).unwrap(), Path::new("/dev/null"));
        assert!(fs::metadata("/dev/null").unwrap().file_type().is_char_device());
        assert_eq!(names(dir.path()), ["null"]);
    }

    #[test]
    fn a_symlink_to_a_regular_file_replaces_its_target() {
        let dir = tempfile::tempdir().unwrap();
        let real_dir = dir.path().join("real");
        fs::create_dir(&real_dir).unwrap();
        let target = real_dir.join("image.tar");
        fs::write(&target, "old").unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(0o640)).unwrap();
        let link = dir.path().join("link.tar");
        symlink("real/image.tar", &link).unwrap();
        let mut out = open(&link).unwrap();
        assert!(out.is_seekable());
        out.file.write_all(b"new").unwrap();
        out.commit().unwrap();
        assert_eq!(fs::read_link(&link).unwrap(), Path::new("real/image.tar"));
        assert_eq!(fs::read(&target).unwrap(), b"new");
        assert_eq!(mode(&target), 0o640);
        assert_eq!(names(dir.path()), ["link.tar", "real"]);
        assert_eq!(names(&real_dir), ["image.tar"]);
    }

    #[test]
    fn a_fifo_with_a_reader_is_written_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        mkfifo(&fifo);
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || {
                let mut data = Vec::new();
                File::open(fifo).unwrap().read_to_end(&mut data).unwrap();
                data
            })
        };
        // The reader opens when it is scheduled: wait for it (bounded).
        let start = Instant::now();
        let mut out = loop {
            match open(&fifo) {
                Ok(out) => break out,
                Err(e) if e.message.contains("no reader") && start.elapsed() < Duration::from_secs(10) => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Err(e) => panic!("{}", e.message),
            }
        };
        assert!(!out.is_seekable());
        let data = vec![42u8; 1 << 20];
        out.file.write_all(&data).unwrap();
        out.commit().unwrap();
        assert!(reader.join().unwrap() == data);
        assert!(fs::metadata(&fifo).unwrap().file_type().is_fifo());
        assert_eq!(names(dir.path()), ["fifo"]);
    }

    #[test]
    fn a_fifo_without_a_reader_is_an_error_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        mkfifo(&fifo);
        let start = Instant::now();
        let err = open(&fifo).err().unwrap();
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(err.message.contains("FIFO with no reader") && err.message.contains("fifo'"), "{}", err.message);
        assert_eq!(err.kind, ErrorKind::Output);
        let link = dir.path().join("link");
        symlink(&fifo, &link).unwrap();
        assert!(open(&link).err().unwrap().message.contains("no reader"));
        assert_eq!(names(dir.path()), ["fifo", "link"]);
    }

    #[test]
    fn a_name_of_255_bytes_is_written() {
        for named in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let name = format!("{}.tar", "n".repeat(251));
            let path = dir.path().join(&name);
            let mut out = if named { open_named(&path, None) } else { open(&path).unwrap() };
            out.file.write_all(b"archive").unwrap();
            out.commit().unwrap();
            assert_eq!(fs::read(&path).unwrap(), b"archive");
            // And replacing it.
            let existing = fs::metadata(&path).ok();
            let mut out = if named { open_named(&path, existing) } else { open(&path).unwrap() };
            out.file.write_all(b"again").unwrap();
            out.commit().unwrap();
            assert_eq!(fs::read(&path).unwrap(), b"again");
            assert_eq!(names(dir.path()), [name]);
        }
    }

    #[test]
    fn a_new_file_follows_the_umask_and_a_replaced_one_keeps_its_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("image.tar");
        open(&path).unwrap().commit().unwrap();
        assert_eq!(mode(&path), 0o666 & !process_umask());
        for kept in [0o600, 0o444, 0o755] {
            fs::set_permissions(&path, fs::Permissions::from_mode(kept)).unwrap();
            let mut out = open(&path).unwrap();
            out.file.write_all(b"x").unwrap();
            out.commit().unwrap();
            assert_eq!(mode(&path), kept);
        }
    }

    #[test]
    fn a_replaced_file_keeps_its_owner_where_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("image.tar");
        fs::write(&path, "old").unwrap();
        let c = cstring(&path).unwrap();
        let root = unsafe { libc::geteuid() } == 0;
        if root {
            assert_eq!(unsafe { libc::chown(c.as_ptr(), 65534, 65534) }, 0);
        }
        let before = fs::metadata(&path).unwrap();
        let mut out = open(&path).unwrap();
        out.file.write_all(b"new").unwrap();
        out.commit().unwrap();
        let after = fs::metadata(&path).unwrap();
        assert_eq!((after.uid(), after.gid()), (before.uid(), before.gid()));
        assert_ne!(after.ino(), before.ino());
        if root {
            assert_eq!(after.uid(), 65534);
        }
    }

    #[test]
    fn what_appears_at_the_output_during_the_build_is_never_renamed_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("image.tar");
        // A directory appears.
        let out = open(&path).unwrap();
        fs::create_dir(&path).unwrap();
        let err = out.commit().err().unwrap();
        assert!(err.message.contains("became a directory"), "{}", err.message);
        assert!(path.is_dir());
        fs::remove_dir(&path).unwrap();
        // The regular file is replaced by a symlink to a device.
        fs::write(&path, "old").unwrap();
        for named in [false, true] {
            let existing = fs::metadata(&path).ok();
            let out = if named { open_named(&path, existing) } else { open(&path).unwrap() };
            fs::remove_file(&path).unwrap();
            symlink("/dev/null", &path).unwrap();
            let err = out.commit().err().unwrap();
            assert!(err.message.contains("became a symlink"), "{}", err.message);
            assert_eq!(fs::read_link(&path).unwrap(), Path::new("/dev/null"));
            assert_eq!(names(dir.path()), ["image.tar"]);
            fs::remove_file(&path).unwrap();
            fs::write(&path, "old").unwrap();
        }
        // A regular file appears: it is replaced, as it would have been.
        fs::remove_file(&path).unwrap();
        let mut out = open(&path).unwrap();
        fs::write(&path, "someone else's").unwrap();
        out.file.write_all(b"ours").unwrap();
        out.commit().unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"ours");
        assert_eq!(names(dir.path()), ["image.tar"]);
    }

    #[test]
    fn temporary_names_are_short_and_recognised() {
        let name = temp_name();
        assert!(name.len() <= 45, "{name:?}");
        assert_eq!(format!("{TEMP_PREFIX}00000000-{}-0123456789abcdef", u32::MAX).len(), 45);
        let (tag, pid) = parse_temp_name(&name).unwrap();
        assert_eq!(pid, std::process::id());
        assert_eq!(Some(tag), host_tag());
        assert_ne!(temp_name(), name);
        for other in [".gdn-tmp-", ".gdn-tmp-zz-1-0", ".gdn-tmp-0123abcd-1-0123456789abcdef-x", "image.tar", ".gdn-tmp-0123abcd--0123456789abcdef"] {
            assert!(parse_temp_name(OsStr::new(other)).is_none(), "{other}");
        }
        assert_eq!(parse_temp_name(OsStr::new(".gdn-tmp-0123abcd-77-0123456789abcdef")), Some(("0123abcd", 77)));
    }

    /// The pid of a process that has ended.
    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    #[test]
    fn stale_temporary_files_are_removed_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let tag = host_tag().expect("/proc is mounted");
        let other_tag = if tag == "00000000" { "11111111" } else { "00000000" };
        let dead = format!("{TEMP_PREFIX}{tag}-{}-0123456789abcdef", dead_pid());
        let live_ours = format!("{TEMP_PREFIX}{tag}-{}-0123456789abcdef", std::process::id());
        let live_other = format!("{TEMP_PREFIX}{tag}-1-0123456789abcdef");
        let elsewhere_fresh = format!("{TEMP_PREFIX}{other_tag}-{}-0123456789abcdef", dead_pid());
        let elsewhere_old = format!("{TEMP_PREFIX}{other_tag}-{}-fedcba9876543210", dead_pid());
        let not_ours = ".gdn-tmp-notours".to_string();
        for name in [&dead, &live_ours, &live_other, &elsewhere_fresh, &elsewhere_old, &not_ours] {
            fs::write(dir.path().join(name), "stale").unwrap();
        }
        let old = SystemTime::now() - STALE_AGE - Duration::from_secs(60);
        File::options().write(true).open(dir.path().join(&elsewhere_old)).unwrap().set_modified(old).unwrap();
        // A dead process's directory of that name is not a file of ours.
        let dead_dir = format!("{TEMP_PREFIX}{tag}-{}-00000000000000ff", dead_pid());
        fs::create_dir(dir.path().join(&dead_dir)).unwrap();

        let path = dir.path().join("image.tar");
        open(&path).unwrap().commit().unwrap();
        let mut expected = vec![live_ours, live_other, elsewhere_fresh, not_ours, dead_dir, "image.tar".to_string()];
        expected.sort();
        assert_eq!(names(dir.path()), expected);
    }

    #[test]
    fn descriptor_names_mean_the_descriptor() {
        for (name, fd) in [("/dev/stdout", Some(1)), ("/dev/stderr", Some(2)), ("/dev/stdin", Some(0)), ("/dev/fd/7", Some(7)),
            ("/proc/self/fd/12", Some(12)), ("/dev/fd/0", Some(0)), ("/dev/fd/07", None), ("/dev/fd/", None), ("/dev/fd/1x", None),
            ("/dev/stdout/", None), ("dev/stdout", None), ("/dev/null", None)]
        {
            assert_eq!(descriptor_of(Path::new(name)), fd, "{name}");
        }
        assert!(is_standard_output(&Output::Stdout));
        assert!(is_standard_output(&Output::Path("/dev/stdout".into())));
        assert!(!is_standard_output(&Output::Path("/dev/stderr".into())));
        assert!(!is_standard_output(&Output::Path("image.tar".into())));
    }

    #[test]
    fn a_descriptor_is_written_at_its_position() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        fs::write(&path, "before\n").unwrap();
        let file = File::options().append(true).open(&path).unwrap();
        let name = PathBuf::from(format!("/dev/fd/{}", file.as_raw_fd()));
        let mut out = open(&name).unwrap();
        assert!(!out.is_seekable());
        out.file.write_all(b"archive").unwrap();
        out.commit().unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"before\narchive");
        assert_eq!(names(dir.path()), ["log"]);

        let read_only = File::open(&path).unwrap();
        let name = PathBuf::from(format!("/dev/fd/{}", read_only.as_raw_fd()));
        let err = open(&name).err().unwrap();
        assert!(err.message.contains("is not open for writing") && err.message.contains(&*name.to_string_lossy()), "{}", err.message);
        let err = open(Path::new("/dev/fd/999999")).err().unwrap();
        assert!(err.message.contains("file descriptor 999999 is not open"), "{}", err.message);
    }

    fn input<'a>(what: &'a str, path: &'a Path) -> Input<'a> {
        Input { what, path }
    }

    #[test]
    fn an_output_that_is_an_input_is_refused_naming_both() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db.sqlite");
        fs::write(&db, "database").unwrap();
        let store = dir.path().join("gnu/store");
        let item = store.join("0a1b2c3d4f5g6h7i8j9k0l1m2n3p4q5r-app");
        fs::create_dir_all(item.join("bin")).unwrap();
        fs::write(item.join("bin/app"), "app").unwrap();
        let link_to_db = dir.path().join("link");
        symlink(&db, &link_to_db).unwrap();
        let other_name_of_store = dir.path().join("store-link");
        symlink(&store, &other_name_of_store).unwrap();
        let inputs = [input("store database", &db)];
        let check = |out: &Path| refuse_inputs(&Output::Path(out.to_path_buf()), &inputs, Some(&store));

        for out in [db.clone(), link_to_db.clone(), dir.path().join("./db.sqlite"), dir.path().join("gnu/../db.sqlite")] {
            let err = check(&out).err().unwrap();
            assert_eq!(err.kind, ErrorKind::Output);
            assert!(err.message.contains(&*out.to_string_lossy()) && err.message.contains("store database")
                && err.message.contains(&*db.to_string_lossy()), "{}", err.message);
        }
        for out in [store.clone(), item.clone(), item.join("bin/app"), item.join("new.tar"), store.join("new.tar"),
            other_name_of_store.join("new.tar")]
        {
            let err = check(&out).err().unwrap();
            assert!(err.message.contains("inside the store directory") && err.message.contains(&*store.to_string_lossy()), "{}", err.message);
        }
        for out in [dir.path().join("image.tar"), dir.path().join("gnu/image.tar"), PathBuf::from("/dev/null")] {
            check(&out).unwrap();
        }
        refuse_inputs(&Output::Path("/dev/null".into()), &[input("closure file", Path::new("/dev/null"))], None).unwrap();
        // A journal file that does not exist yet: the same place.
        let wal = dir.path().join("db.sqlite-wal");
        let err = refuse_inputs(&Output::Path(wal.clone()), &[input("store database's journal", &wal)], None).err().unwrap();
        assert!(err.message.contains("journal"), "{}", err.message);
        // A descriptor open on an input.
        let file = File::options().write(true).open(&db).unwrap();
        let fd = PathBuf::from(format!("/dev/fd/{}", file.as_raw_fd()));
        assert!(check(&fd).err().unwrap().message.contains("is the store database"));
        assert_eq!(fs::read(&db).unwrap(), b"database");
    }

    #[test]
    fn the_options_inputs_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db.sqlite");
        fs::write(&db, "database").unwrap();
        let extra = dir.path().join("extra");
        fs::write(&extra, "extra").unwrap();
        let mut options = ImageOptions::new();
        options.store_dir = dir.path().join("gnu/store");
        fs::create_dir_all(&options.store_dir).unwrap();
        options.database = Some(db.clone());
        options.files.push(crate::options::ExtraFile { path: "/etc/extra".into(), source: extra.clone() });
        let check = |p: &Path| refuse_build_inputs(&Output::Path(p.to_path_buf()), &options);
        assert!(check(&db).err().unwrap().message.contains("is the store database '"));
        assert!(check(&dir.path().join("db.sqlite-shm")).err().unwrap().message.contains("journal"));
        assert!(check(&extra).err().unwrap().message.contains("is the extra file"));
        assert!(check(&options.store_dir.join("x.tar")).err().unwrap().message.contains("inside the store"));
        check(&dir.path().join("image.tar")).unwrap();
    }
}

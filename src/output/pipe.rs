//! Writing an output from start to end: a file in pieces (and at given
//! offsets), a pipe or FIFO never more than it has room for.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::compress::Sink;

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

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

}

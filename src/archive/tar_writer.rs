//! The tar writer: one tar stream (a layer, or a packaging's own entries)
//! made in pool buffers, hashed as it goes, each full buffer written at
//! its offset in a file or sent in order to the writer thread.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::mpsc::SyncSender;

use sha2::{Digest, Sha256};

use super::buffers::{Chunk, HashChunk, Shared, CHUNK};
use crate::error::{Error, ErrorKind, Result};
use crate::output;
use crate::tarfmt::{self, Header};
use crate::tree::{self, OpenFile};

/// How a [`TarWriter`] hashes what it writes.
pub enum Hashing {
    /// Not at all.
    Off,
    /// On the producing thread.
    Inline(Sha256),
    /// On a thread of its own, which receives each buffer once it is
    /// written (only with [`Destination::File`]: a stream's writer takes
    /// the buffers).
    Offloaded(SyncSender<HashChunk>),
}

/// Where a [`TarWriter`]'s full buffers go.
#[derive(Clone)]
pub enum Destination<'a> {
    /// Written at their offsets in this file by the producing thread.
    File(&'a File, &'a Path),
    /// Sent, in order, to the writer thread.
    Stream(SyncSender<Chunk>),
}

/// Produces one tar stream (a layer, or the archive's own entries) into
/// pool buffers, hashing every byte once, and hands full buffers to the
/// writer.
pub struct TarWriter<'a> {
    pub(super) shared: &'a Shared<'a>,
    dest: Destination<'a>,
    buf: Vec<u8>,
    fill: usize,
    /// Output offset of `buf[0]`.
    offset: u64,
    written: u64,
    hashing: Hashing,
    /// Where hashing starts in `buf` (after an unhashed prefix).
    hash_from: usize,
    header: Vec<u8>,
}

impl<'a> TarWriter<'a> {
    /// A writer whose first byte goes to `offset` in the output, hashing
    /// what it writes as `hashing` says.
    pub fn new(shared: &'a Shared<'a>, dest: Destination<'a>, offset: u64, hashing: Hashing) -> TarWriter<'a> {
        debug_assert!(
            !matches!((&hashing, &dest), (Hashing::Offloaded(_), Destination::Stream(_))),
            "a stream's buffers cannot also go to a hashing thread"
        );
        TarWriter {
            shared,
            dest,
            buf: shared.pool.take(),
            fill: 0,
            offset,
            written: 0,
            hashing,
            hash_from: 0,
            header: Vec::with_capacity(2048),
        }
    }

    /// A writer for a layer: `outer_header` (the archive's entry for the
    /// layer file) goes first at `offset`, and the layer itself, hashed and
    /// counted, after it.
    pub fn for_layer(
        shared: &'a Shared<'a>,
        dest: Destination<'a>,
        offset: u64,
        outer_header: &[u8],
        hashing: Hashing,
    ) -> Result<TarWriter<'a>> {
        let mut w = TarWriter::new(shared, dest, offset, hashing);
        w.put(outer_header)?;
        w.hash_from = w.fill;
        w.written = 0;
        Ok(w)
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    fn send_buffer(&mut self) -> Result<()> {
        if self.fill == 0 {
            return Ok(());
        }
        // Checked per chunk, not only per file: one large file must not
        // delay a cancelled build until it is copied whole.
        self.shared.check_stop()?;
        let from = std::mem::take(&mut self.hash_from);
        let len = std::mem::take(&mut self.fill);
        if let Hashing::Inline(h) = &mut self.hashing {
            h.update(&self.buf[from..len]);
        }
        let offset = self.offset;
        self.offset += len as u64;
        self.shared.bytes_done.fetch_add(len as u64, Ordering::Relaxed);
        match &self.dest {
            Destination::File(file, name) => {
                output::write_all_at(file, &self.buf[..len], offset).map_err(|e| {
                    self.shared.abort.store(true, Ordering::Relaxed);
                    Error::output(name, &e)
                })?;
                if let Hashing::Offloaded(tx) = &self.hashing {
                    let buf = std::mem::replace(&mut self.buf, self.shared.pool.take());
                    // The hashing thread only ends when this sender is gone.
                    tx.send(HashChunk { buf, from, len }).expect("the hashing thread ended early");
                }
                Ok(())
            }
            Destination::Stream(tx) => {
                let buf = std::mem::replace(&mut self.buf, self.shared.pool.take());
                tx.send(Chunk { offset, buf, len }).map_err(|_| {
                    // The writer stopped: its own error is the one reported.
                    Error::knock_on(ErrorKind::Output, "the output writer stopped")
                })
            }
        }
    }

    /// Appends bytes.
    pub fn put(&mut self, mut bytes: &[u8]) -> Result<()> {
        while !bytes.is_empty() {
            if self.fill == CHUNK {
                self.send_buffer()?;
            }
            let n = (CHUNK - self.fill).min(bytes.len());
            self.buf[self.fill..self.fill + n].copy_from_slice(&bytes[..n]);
            self.fill += n;
            self.written += n as u64;
            bytes = &bytes[n..];
        }
        Ok(())
    }

    fn zeros(&mut self, n: u64) -> Result<()> {
        const ZEROS: [u8; 512] = [0; 512];
        let mut left = n;
        while left > 0 {
            let k = left.min(512);
            self.put(&ZEROS[..k as usize])?;
            left -= k;
        }
        Ok(())
    }

    pub fn header(&mut self, h: &Header) -> Result<()> {
        let mut scratch = std::mem::take(&mut self.header);
        scratch.clear();
        tarfmt::write_header(h, &mut scratch);
        let r = self.put(&scratch);
        self.header = scratch;
        r
    }

    /// Appends an entry with in-memory data.
    pub fn entry(&mut self, name: &[u8], data: &[u8]) -> Result<()> {
        self.header(&Header::file(name, data.len() as u64))?;
        self.put(data)?;
        self.zeros(tarfmt::padded(data.len() as u64) - data.len() as u64)
    }

    /// Appends a file's header and its `h.size` bytes of data, read straight
    /// into the buffers from `file` (opened by [`tree`], which checked it is
    /// the regular file measured).  A file that grows, shrinks or is
    /// modified while read is "changed during the build".
    pub fn copy_file(&mut self, h: &Header, file: &mut OpenFile, path: &Path) -> Result<()> {
        self.shared.check_stop()?;
        self.header(h)?;
        let mut remaining = h.size;
        loop {
            if self.fill == CHUNK {
                self.send_buffer()?;
            }
            // Ask for one byte more than expected when there is room: a
            // short read of a regular file means its end, so this also
            // catches a file that grew, at no extra system call.
            let room = CHUNK - self.fill;
            let want = room.min(usize::try_from(remaining).unwrap_or(usize::MAX).saturating_add(1));
            let n = match file.file.read(&mut self.buf[self.fill..self.fill + want]) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io(path, "reading", &e)),
            };
            if n as u64 > remaining {
                return Err(tree::changed(path, "it grew while being read"));
            }
            self.fill += n;
            self.written += n as u64;
            remaining -= n as u64;
            if n < want || remaining == 0 && want == room {
                break;
            }
        }
        if remaining > 0 {
            return Err(tree::changed(path, "it shrank while being read"));
        }
        file.check_unchanged(path)?;
        self.zeros(tarfmt::padded(h.size) - h.size)
    }

    /// Ends the stream: sends the last buffer and returns the SHA-256 of
    /// everything written when hashing inline (an offloaded hash is the
    /// hashing thread's result, once this writer is gone).
    pub fn finish(mut self) -> Result<Option<[u8; 32]>> {
        self.send_buffer()?;
        let buf = std::mem::take(&mut self.buf);
        self.shared.pool.give(buf);
        Ok(match std::mem::replace(&mut self.hashing, Hashing::Off) {
            Hashing::Inline(h) => Some(h.finalize().into()),
            Hashing::Off | Hashing::Offloaded(_) => None,
        })
    }
}

impl Drop for TarWriter<'_> {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            self.shared.pool.give(std::mem::take(&mut self.buf));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::buffers::BufferPool;
    use crate::archive::units::Measured;
    use crate::tarfmt::Kind;
    use std::fs;
    use std::hash::RandomState;
    use std::sync::atomic::{AtomicBool, AtomicU64};
    use std::time::Duration;

    const SIZE: usize = 2 << 20;

    /// Copies a 2 MiB file into a stream whose reader takes the first
    /// chunk, calls `change` on the file, then takes the rest: the copy is
    /// at most two chunks in when the file changes.
    fn copy_while(change: impl FnOnce(&Path) + Send) -> Result<()> {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("f");
        fs::write(&path, vec![b'x'; SIZE]).unwrap();
        // Past the clock's tick, so that a change gets another ctime.
        std::thread::sleep(Duration::from_millis(30));
        let planned = tree::host_file_meta(&path).unwrap();
        let mut file = tree::open_host_file(&path, &planned).unwrap();
        let (pool, bytes, items, abort) = (BufferPool::new(), AtomicU64::new(0), AtomicU64::new(0), AtomicBool::new(false));
        let measured = Measured { keys: RandomState::new(), items: Vec::new() };
        let shared =
            Shared { pool: &pool, bytes_done: &bytes, items_done: &items, abort: &abort, cancel: None, measured: &measured };
        let (tx, rx) = std::sync::mpsc::sync_channel::<Chunk>(0);
        std::thread::scope(|s| {
            let (shared, path) = (&shared, &path);
            let copier = s.spawn(move || {
                let mut w = TarWriter::new(shared, Destination::Stream(tx), 0, Hashing::Off);
                let h = Header { name: b"f", kind: Kind::File, mode: 0o444, uid: 0, gid: 0, size: SIZE as u64, link: b"" };
                w.copy_file(&h, &mut file, path)?;
                w.finish().map(|_| ())
            });
            pool.give(rx.recv().unwrap().buf);
            change(path);
            for chunk in rx {
                pool.give(chunk.buf);
            }
            copier.join().unwrap()
        })
    }

    fn assert_changed(r: Result<()>, detail: &str) {
        let e = r.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Io);
        assert!(e.message.contains("/f: changed during the build (") && e.message.contains(detail), "{}", e.message);
    }

    #[test]
    fn an_unchanged_file_is_copied() {
        copy_while(|_| {}).unwrap();
    }

    #[test]
    fn a_file_that_shrinks_while_read_is_refused() {
        assert_changed(copy_while(|p| fs::File::options().write(true).open(p).unwrap().set_len(1000).unwrap()), "shrank");
    }

    #[test]
    fn a_file_that_grows_while_read_is_refused() {
        assert_changed(
            copy_while(|p| {
                use std::io::Write;
                fs::File::options().append(true).open(p).unwrap().write_all(b"more").unwrap()
            }),
            "grew",
        );
    }

    #[test]
    fn a_file_rewritten_in_place_while_read_is_refused() {
        // Same size, and the mtime put back: only the ctime tells.
        assert_changed(
            copy_while(|p| {
                use std::os::unix::fs::FileExt;
                let mtime = fs::metadata(p).unwrap().modified().unwrap();
                let f = fs::File::options().write(true).open(p).unwrap();
                f.write_all_at(&vec![b'y'; SIZE], 0).unwrap();
                f.set_modified(mtime).unwrap();
            }),
            "modified while being read",
        );
    }
}

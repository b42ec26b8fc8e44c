//! Writing the archive: layers produced on worker threads, each byte read,
//! hashed and written once.
//!
//! Every layer's length is known before a byte is written (see
//! [`crate::tarfmt`]), so in a file every layer has a fixed offset: layers
//! are produced in parallel, and each producer writes its own bytes at
//! their offsets.  A layer's SHA-256 is sequential; when there are fewer
//! layers than cores, a producer hands its written buffers to a hashing
//! thread of the layer's own, so that reading and writing one layer
//! overlap with hashing it.  To a pipe, or through a compressor, the bytes
//! must come in order: one producer then makes the layers one after the
//! other and a writer thread feeds the stream.  Buffers come from a fixed
//! pool, so memory does not grow with the closure.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Condvar, Mutex};

use sha2::{Digest, Sha256};

use crate::compress::Sink;
use crate::error::{Error, ErrorKind, Result};
use crate::layers::Unit;
use crate::output;
use crate::tarfmt::{self, Header, Kind};
use crate::tree::{self, Visitor};

/// Size of the buffers bytes travel in: small enough to stay in the
/// core's cache between the read, the hash and the write.
pub const CHUNK: usize = 1 << 17;

/// Buffers in flight at most (per build): bounds memory at 8 MiB.
pub const POOL_BUFFERS: usize = 64;

/// A fixed set of reusable buffers.
pub struct BufferPool {
    free: Mutex<(Vec<Vec<u8>>, usize)>,
    available: Condvar,
}

impl BufferPool {
    pub fn new() -> BufferPool {
        BufferPool { free: Mutex::new((Vec::new(), 0)), available: Condvar::new() }
    }

    /// A buffer of [`CHUNK`] bytes; waits while all are in use.
    fn take(&self) -> Vec<u8> {
        let mut state = self.free.lock().unwrap();
        loop {
            if let Some(buf) = state.0.pop() {
                return buf;
            }
            if state.1 < POOL_BUFFERS {
                state.1 += 1;
                return vec![0; CHUNK];
            }
            state = self.available.wait(state).unwrap();
        }
    }

    fn give(&self, buf: Vec<u8>) {
        self.free.lock().unwrap().0.push(buf);
        self.available.notify_one();
    }
}

impl Default for BufferPool {
    fn default() -> Self {
        Self::new()
    }
}

/// Bytes bound for the output: `buf[..len]` at `offset`.
pub struct Chunk {
    pub offset: u64,
    pub buf: Vec<u8>,
    pub len: usize,
}

/// The writer thread's loop: writes the chunks, which arrive in order, to
/// `sink`.  On a write error it sets `abort`, keeps taking chunks (so that
/// no producer waits forever for a buffer) without writing them, and
/// returns the error, naming `output`.
pub fn write_chunks(rx: Receiver<Chunk>, mut sink: Box<dyn Sink>, pool: &BufferPool, output: &Path, abort: &AtomicBool) -> Result<()> {
    let mut failure: Option<std::io::Error> = None;
    let mut expected = 0u64;
    for chunk in rx {
        debug_assert_eq!(chunk.offset, expected, "chunks out of order");
        expected += chunk.len as u64;
        if failure.is_none() {
            if let Err(e) = sink.write_all(&chunk.buf[..chunk.len]) {
                abort.store(true, Ordering::Relaxed);
                failure = Some(e);
            }
        }
        pool.give(chunk.buf);
    }
    // A build that failed elsewhere is not worth finishing (a compressor
    // would still compress what it holds).
    if failure.is_none() && !abort.load(Ordering::Relaxed) {
        failure = sink.flush().and_then(|()| sink.finish()).err();
    }
    match failure {
        Some(e) => Err(Error::output(output, &e)),
        None => Ok(()),
    }
}

/// Buffers waiting for a layer's hashing thread, at most.
const HASH_QUEUE: usize = 16;

/// Bytes for a hashing thread: `buf[from..len]`.
pub struct HashChunk {
    buf: Vec<u8>,
    from: usize,
    len: usize,
}

/// Hashes the chunks, which arrive in order, and gives their buffers back.
fn hash_chunks(rx: Receiver<HashChunk>, pool: &BufferPool) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for chunk in rx {
        hasher.update(&chunk.buf[chunk.from..chunk.len]);
        pool.give(chunk.buf);
    }
    hasher.finalize().into()
}

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

/// What producers share: the pool, the channel to the writer, the
/// counters the progress report reads, and the flags that stop them.
pub struct Shared<'a> {
    pub pool: &'a BufferPool,
    pub bytes_done: &'a AtomicU64,
    pub items_done: &'a AtomicU64,
    /// Set when any thread failed: the others stop at the next file.
    pub abort: &'a AtomicBool,
    /// Set by the caller (a signal handler) to cancel the build.
    pub cancel: Option<&'a AtomicBool>,
}

impl Shared<'_> {
    pub fn check_stop(&self) -> Result<()> {
        if self.cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
            return Err(Error::cancelled());
        }
        if self.abort.load(Ordering::Relaxed) {
            return Err(Error::knock_on(ErrorKind::Cancelled, "stopped: another part of the build failed"));
        }
        Ok(())
    }
}

/// Produces one tar stream (a layer, or the archive's own entries) into
/// pool buffers, hashing every byte once, and hands full buffers to the
/// writer.
pub struct TarWriter<'a> {
    shared: &'a Shared<'a>,
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
        let h = Header { name, kind: Kind::File, mode: 0o644, uid: 0, gid: 0, size: data.len() as u64, link: b"" };
        self.header(&h)?;
        self.put(data)?;
        self.zeros(tarfmt::padded(data.len() as u64) - data.len() as u64)
    }

    /// Appends a file's header and its `size` bytes of data, read straight
    /// into the buffers.  A file whose length is no longer `size` is an error.
    pub fn host_file(&mut self, h: &Header, path: &Path) -> Result<()> {
        self.shared.check_stop()?;
        let mut file = File::open(path).map_err(|e| Error::io(path, "opening", &e))?;
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
            let n = match file.read(&mut self.buf[self.fill..self.fill + want]) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io(path, "reading", &e)),
            };
            if n as u64 > remaining {
                return Err(changed(path));
            }
            self.fill += n;
            self.written += n as u64;
            remaining -= n as u64;
            if n < want || remaining == 0 && want == room {
                break;
            }
        }
        if remaining > 0 {
            return Err(changed(path));
        }
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

fn changed(path: &Path) -> Error {
    Error::new(ErrorKind::Io, format!("{}: changed while the image was being built", path.display()))
}

impl Visitor for TarWriter<'_> {
    fn dir(&mut self, name: &[u8]) -> Result<()> {
        self.header(&Header { name, kind: Kind::Dir, mode: tree::DIR_MODE, uid: 0, gid: 0, size: 0, link: b"" })
    }
    fn file(&mut self, name: &[u8], path: &Path, mode: u32, size: u64) -> Result<()> {
        self.host_file(&Header { name, kind: Kind::File, mode, uid: 0, gid: 0, size, link: b"" }, path)
    }
    fn symlink(&mut self, name: &[u8], target: &[u8]) -> Result<()> {
        self.header(&Header { name, kind: Kind::Symlink, mode: 0o777, uid: 0, gid: 0, size: 0, link: target })
    }
}

/// Adds up what a walk would write.
#[derive(Default)]
pub struct Measure {
    pub bytes: u64,
}

impl Visitor for Measure {
    fn dir(&mut self, name: &[u8]) -> Result<()> {
        self.bytes += tarfmt::entry_len(&Header { name, kind: Kind::Dir, mode: 0, uid: 0, gid: 0, size: 0, link: b"" });
        Ok(())
    }
    fn file(&mut self, name: &[u8], _: &Path, _: u32, size: u64) -> Result<()> {
        self.bytes += tarfmt::entry_len(&Header { name, kind: Kind::File, mode: 0, uid: 0, gid: 0, size, link: b"" });
        Ok(())
    }
    fn symlink(&mut self, name: &[u8], target: &[u8]) -> Result<()> {
        self.bytes += tarfmt::entry_len(&Header { name, kind: Kind::Symlink, mode: 0, uid: 0, gid: 0, size: 0, link: target });
        Ok(())
    }
}

/// The mode an extra file from the host gets: readable, and executable
/// when the host file is.
pub fn extra_file_mode(meta: &std::fs::Metadata) -> u32 {
    if tree::file_mode(meta) == 0o555 {
        0o755
    } else {
        0o644
    }
}

fn extra_file_meta(source: &Path) -> Result<std::fs::Metadata> {
    let meta = std::fs::metadata(source).map_err(|e| Error::io(source, "reading", &e))?;
    if !meta.is_file() {
        return Err(Error::new(ErrorKind::UnsupportedFile, format!("{}: not a regular file", source.display())));
    }
    Ok(meta)
}

/// Bytes a unit takes in a layer.  `item_sizes` holds the measured store items.
pub fn unit_len(unit: &Unit, item_sizes: &[u64]) -> Result<u64> {
    Ok(match unit {
        Unit::Dir { name, uid, gid, .. } => {
            let name = dir_name(name);
            tarfmt::entry_len(&Header { name: &name, kind: Kind::Dir, mode: 0, uid: *uid, gid: *gid, size: 0, link: b"" })
        }
        Unit::Symlink { name, target } => {
            tarfmt::entry_len(&Header { name, kind: Kind::Symlink, mode: 0, uid: 0, gid: 0, size: 0, link: target })
        }
        Unit::File { name, source } => {
            let size = extra_file_meta(source)?.len();
            tarfmt::entry_len(&Header { name, kind: Kind::File, mode: 0, uid: 0, gid: 0, size, link: b"" })
        }
        Unit::Item { item, .. } => item_sizes[*item],
    })
}

fn dir_name(name: &[u8]) -> Vec<u8> {
    let mut n = name.to_vec();
    n.push(b'/');
    n
}

/// Writes one unit.
pub fn write_unit(w: &mut TarWriter, unit: &Unit) -> Result<()> {
    match unit {
        Unit::Dir { name, mode, uid, gid } => {
            let name = dir_name(name);
            w.header(&Header { name: &name, kind: Kind::Dir, mode: *mode, uid: *uid, gid: *gid, size: 0, link: b"" })
        }
        Unit::Symlink { name, target } => w.symlink(name, target),
        Unit::File { name, source } => {
            let meta = extra_file_meta(source)?;
            let h = Header { name, kind: Kind::File, mode: extra_file_mode(&meta), uid: 0, gid: 0, size: meta.len(), link: b"" };
            w.host_file(&h, source)
        }
        Unit::Item { name, path, .. } => {
            tree::walk(path, name, w)?;
            w.shared.items_done.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
    }
}

/// One layer to produce: its units, planned length and place in the output.
pub struct LayerJob {
    pub units: Vec<Unit>,
    /// Length of the layer tar, end blocks included.
    pub len: u64,
    /// The archive's header for the layer file, which precedes it.
    pub outer_header: Vec<u8>,
    /// Output offset of `outer_header`.
    pub offset: u64,
}

/// Produces layer number `index` and returns its SHA-256.  With
/// `hash_thread` (for a file destination only) the layer is hashed on a
/// thread of its own.
pub fn produce_layer(shared: &Shared, dest: Destination, job: &LayerJob, index: usize, hash_thread: bool) -> Result<[u8; 32]> {
    if !hash_thread {
        let digest = write_layer(shared, dest, job, index, Hashing::Inline(Sha256::new()))?;
        return Ok(digest.expect("an inline hash"));
    }
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel(HASH_QUEUE);
        let hasher = s.spawn(move || hash_chunks(rx, shared.pool));
        // The writer, and with it the sender, is gone when this returns.
        let written = write_layer(shared, dest, job, index, Hashing::Offloaded(tx));
        let digest = hasher.join().expect("hashing thread panicked");
        written.map(|_| digest)
    })
}

fn write_layer(shared: &Shared, dest: Destination, job: &LayerJob, index: usize, hashing: Hashing) -> Result<Option<[u8; 32]>> {
    let mut w = TarWriter::for_layer(shared, dest, job.offset, &job.outer_header, hashing)?;
    for unit in &job.units {
        write_unit(&mut w, unit)?;
    }
    w.put(&tarfmt::END_OF_ARCHIVE)?;
    if w.written() != job.len {
        return Err(Error::new(
            ErrorKind::Io,
            format!(
                "the store changed while the image was being built: layer {} has {} bytes, {} were planned",
                index + 1,
                w.written(),
                job.len
            ),
        ));
    }
    w.finish()
}

/// Runs `f` and, when it fails, tells the other threads to stop.
pub fn stop_others_on_error<T>(abort: &AtomicBool, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let r = f();
    if r.is_err() {
        abort.store(true, Ordering::Relaxed);
    }
    r
}

/// The result of the first thread that failed for a reason of its own, not
/// only because another one failed.
pub fn first_real_error(errors: Vec<Error>) -> Option<Error> {
    let mut fallback = None;
    for e in errors {
        if !e.knock_on {
            return Some(e);
        }
        fallback.get_or_insert(e);
    }
    fallback
}

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
use std::hash::RandomState;
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
use crate::tree::{self, Entry, Meta, OpenFile, Visitor};

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
        Some(e) if crate::output::PipeWaitCancelled::is(&e) => Err(Error::cancelled()),
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
    /// What the measuring pass saw, which the layers must hold.
    pub measured: &'a Measured,
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

/// What the measuring pass saw of the store items: the writing pass
/// checks every entry against it.
pub struct Measured {
    /// The fingerprints' keys, fresh for each build.
    pub keys: RandomState,
    /// By closure index.
    pub items: Vec<MeasuredItem>,
}

/// One store item as measured.
pub struct MeasuredItem {
    /// Bytes the item takes in a layer.
    pub bytes: u64,
    /// One per entry, in walk order (see [`Entry::fingerprint`]): 8 bytes
    /// per file, directory and symlink.
    fingerprints: Vec<u64>,
}

/// The measuring pass's visitor: adds up what a walk would write, refuses
/// what an image cannot carry, and keeps each entry's fingerprint.
struct Measure<'a> {
    keys: &'a RandomState,
    cancel: Option<&'a AtomicBool>,
    item: MeasuredItem,
}

impl Visitor for Measure<'_> {
    fn entry(&mut self, e: &Entry) -> Result<()> {
        // An item may hold a million files: a cancelled build stops here too.
        if self.cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
            return Err(Error::cancelled());
        }
        let (kind, size, link): (Kind, u64, &[u8]) = match &e.kind {
            tree::Kind::Dir { .. } => (Kind::Dir, 0, b""),
            tree::Kind::File { .. } => (Kind::File, e.meta.size, b""),
            tree::Kind::Symlink { target } => (Kind::Symlink, 0, target),
            tree::Kind::Unsupported(what) => return Err(tree::unsupported(e.path, what)),
        };
        self.item.bytes += tarfmt::entry_len(&Header { name: e.name, kind, mode: 0, uid: 0, gid: 0, size, link });
        self.item.fingerprints.push(e.fingerprint(self.keys));
        Ok(())
    }
}

/// Measures the store item at `path`, named `name` in the archive.
pub fn measure_item(path: &Path, name: &[u8], keys: &RandomState, cancel: Option<&AtomicBool>) -> Result<MeasuredItem> {
    let mut m = Measure { keys, cancel, item: MeasuredItem { bytes: 0, fingerprints: Vec::new() } };
    tree::walk(path, name, &mut m)?;
    Ok(m.item)
}

/// The writing pass's visitor: writes each entry once it is checked to be
/// the one measured at that place.
struct Replay<'w, 'a> {
    w: &'w mut TarWriter<'a>,
    keys: &'w RandomState,
    expected: &'w [u64],
    next: usize,
}

impl Visitor for Replay<'_, '_> {
    fn entry(&mut self, e: &Entry) -> Result<()> {
        if self.expected.get(self.next) != Some(&e.fingerprint(self.keys)) {
            return Err(tree::changed(e.path, &format!("it is now {}, not what was measured", e.describe())));
        }
        self.next += 1;
        let h = Header { name: e.name, kind: Kind::Dir, mode: tree::DIR_MODE, uid: 0, gid: 0, size: 0, link: b"" };
        match &e.kind {
            tree::Kind::Dir { .. } => self.w.header(&h),
            tree::Kind::File { .. } => {
                let mut file = e.open()?;
                let mode = tree::file_mode(file.meta.mode);
                self.w.copy_file(&Header { kind: Kind::File, mode, size: file.meta.size, ..h }, &mut file, e.path)
            }
            tree::Kind::Symlink { target } => self.w.header(&Header { kind: Kind::Symlink, mode: 0o777, link: target, ..h }),
            // Never measured, so never expected.
            tree::Kind::Unsupported(what) => Err(tree::unsupported(e.path, what)),
        }
    }
}

/// The mode an extra file from the host with permission bits `mode` gets:
/// readable, and executable when the host file is.
pub fn extra_file_mode(mode: u32) -> u32 {
    if tree::file_mode(mode) == 0o555 {
        0o755
    } else {
        0o644
    }
}

/// Bytes a unit takes in a layer, and for an extra file, what it is (which
/// the writing pass checks).  `item_sizes` holds the measured store items.
pub fn unit_len(unit: &Unit, item_sizes: &[u64]) -> Result<(u64, Option<Meta>)> {
    Ok(match unit {
        Unit::Dir { name, uid, gid, .. } => {
            let name = dir_name(name);
            let h = Header { name: &name, kind: Kind::Dir, mode: 0, uid: *uid, gid: *gid, size: 0, link: b"" };
            (tarfmt::entry_len(&h), None)
        }
        Unit::Symlink { name, target } => {
            let h = Header { name, kind: Kind::Symlink, mode: 0, uid: 0, gid: 0, size: 0, link: target };
            (tarfmt::entry_len(&h), None)
        }
        Unit::File { name, source } => {
            let meta = tree::host_file_meta(source)?;
            let h = Header { name, kind: Kind::File, mode: 0, uid: 0, gid: 0, size: meta.size, link: b"" };
            (tarfmt::entry_len(&h), Some(meta))
        }
        Unit::Item { item, .. } => (item_sizes[*item], None),
    })
}

fn dir_name(name: &[u8]) -> Vec<u8> {
    let mut n = name.to_vec();
    n.push(b'/');
    n
}

/// Writes one unit; `host_file` is what [`unit_len`] saw of an extra file.
pub fn write_unit(w: &mut TarWriter, unit: &Unit, host_file: Option<&Meta>) -> Result<()> {
    match unit {
        Unit::Dir { name, mode, uid, gid } => {
            let name = dir_name(name);
            w.header(&Header { name: &name, kind: Kind::Dir, mode: *mode, uid: *uid, gid: *gid, size: 0, link: b"" })
        }
        Unit::Symlink { name, target } => {
            w.header(&Header { name, kind: Kind::Symlink, mode: 0o777, uid: 0, gid: 0, size: 0, link: target })
        }
        Unit::File { name, source } => {
            let planned = host_file.expect("an extra file is looked at when the layer is planned");
            let mut file = tree::open_host_file(source, planned)?;
            let mode = extra_file_mode(file.meta.mode);
            let h = Header { name, kind: Kind::File, mode, uid: 0, gid: 0, size: file.meta.size, link: b"" };
            w.copy_file(&h, &mut file, source)
        }
        Unit::Item { name, item, path } => {
            let shared = w.shared;
            let expected = &shared.measured.items[*item].fingerprints;
            let mut replay = Replay { w, keys: &shared.measured.keys, expected, next: 0 };
            tree::walk(path, name, &mut replay)?;
            if replay.next != expected.len() {
                return Err(tree::changed(path, "entries measured in it are gone"));
            }
            shared.items_done.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
    }
}

/// One layer to produce: its units, planned length and place in the output.
pub struct LayerJob {
    pub units: Vec<Unit>,
    /// For each unit that is an extra file, what [`unit_len`] saw of it.
    pub host_files: Vec<Option<Meta>>,
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
    for (unit, host_file) in job.units.iter().zip(&job.host_files) {
        write_unit(&mut w, unit, host_file.as_ref())?;
    }
    w.put(&tarfmt::END_OF_ARCHIVE)?;
    if w.written() != job.len {
        return Err(Error::new(
            ErrorKind::Io,
            format!(
                "the store changed during the build: layer {} has {} bytes, {} were planned",
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
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

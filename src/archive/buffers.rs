//! The buffers bytes travel in, and the threads they travel between: the
//! fixed pool, the writer thread that feeds an ordered stream, and the
//! hashing threads that hash a layer beside its producer.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Condvar, Mutex};

use sha2::{Digest, Sha256};

use super::units::Measured;
use crate::compress::Sink;
use crate::error::{Error, ErrorKind, Result};

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
    pub(super) fn take(&self) -> Vec<u8> {
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

    pub(super) fn give(&self, buf: Vec<u8>) {
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
pub(super) fn write_chunks(rx: Receiver<Chunk>, mut sink: Box<dyn Sink>, pool: &BufferPool, output: &Path, abort: &AtomicBool) -> Result<()> {
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
    // would still compress what it holds); an unfinished sink is no
    // success either: its layer is not whole, and must not be reported as
    // done (a push's blob would have no digest).
    if failure.is_none() {
        if abort.load(Ordering::Relaxed) {
            return Err(Error::knock_on(ErrorKind::Cancelled, format!("{}: stopped: another part of the build failed", output.display())));
        }
        failure = sink.flush().and_then(|()| sink.finish()).err();
    }
    match failure {
        Some(e) if crate::output::PipeWaitCancelled::is(&e) => Err(Error::cancelled()),
        Some(e) => Err(Error::output(output, &e)),
        None => Ok(()),
    }
}

/// Buffers waiting for a layer's hashing thread, at most.
pub(super) const HASH_QUEUE: usize = 16;

/// Bytes for a hashing thread: `buf[from..len]`.
pub struct HashChunk {
    pub(super) buf: Vec<u8>,
    pub(super) from: usize,
    pub(super) len: usize,
}

/// Hashes the chunks, which arrive in order, and gives their buffers back.
pub(super) fn hash_chunks(rx: Receiver<HashChunk>, pool: &BufferPool) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for chunk in rx {
        hasher.update(&chunk.buf[chunk.from..chunk.len]);
        pool.give(chunk.buf);
    }
    hasher.finalize().into()
}


/// What every thread of a build shares: the pool, the counters the
/// progress report reads, the flags that stop them, and what the layers
/// must hold.
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


//! Writing the archive: layers produced on worker threads, each byte read,
//! hashed and written once, then packaged.
//!
//! [`write_docker_archive`] is the entry point: given the [`Plan`] (made by
//! [`crate::image`]) and the output, it produces every layer and the tail.
//! A layer is produced once, into the place its [`Packaging`] gives it
//! (see [`packaging`]); the docker-archive is the one packaging
//! ([`docker`]).
//!
//! Every layer's length is known before a byte is written (see
//! [`crate::tarfmt`] and [`units`]), so a layer written in place has a
//! fixed offset: layers are produced in parallel, the largest first, and
//! each producer writes its own bytes at their offsets.  A layer's SHA-256
//! is sequential; when there are fewer layers than cores, a producer hands
//! its written buffers to a hashing thread of the layer's own, so that
//! reading and writing one layer overlap with hashing it.  To one ordered
//! stream (a pipe, or through a compressor) the bytes must come in order:
//! one producer then makes the layers one after the other and a writer
//! thread feeds the stream.  Buffers come from a fixed pool
//! ([`buffers`]), so memory does not grow with the closure.
//!
//! The parts: [`buffers`] (the pool, the writer and hashing threads),
//! [`tar_writer`] (one tar stream into pool buffers), [`units`] (measuring
//! and writing what a layer holds), [`packaging`] (the interface) and
//! [`docker`] (the docker-archive); the schedule of the producers is here.

pub mod buffers;
pub mod docker;
pub mod packaging;
pub mod tar_writer;
pub mod units;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::time::Duration;

use sha2::Sha256;

use crate::error::{Error, Result};
use crate::options::{ImageOptions, Progress};
use crate::output::OutputFile;
use buffers::{BufferPool, Chunk, Shared, HASH_QUEUE, POOL_BUFFERS};
use packaging::{Packaging, Place, ProducedLayer, Tail};
use tar_writer::{Destination, Hashing, TarWriter};

pub use docker::DockerArchive;
pub use units::{measure_items, Layer, Measured};

/// What the image says besides its layers: its config's entry point and
/// creation time, and its tags.
pub struct ImageMeta {
    /// The entry point, absolute.
    pub entry_point: Vec<String>,
    pub tags: Vec<String>,
    /// Seconds since the epoch.
    pub created: i64,
}

/// Everything about the image that is known before writing it.
pub struct Plan {
    /// In the order the image stacks them.
    pub layers: Vec<Layer>,
    /// What the writing pass checks each store item against.
    pub measured: Measured,
    pub image: ImageMeta,
    /// Store items in the closure, for the progress report.
    pub items_total: u64,
}

/// Writes the docker-archive of `plan` to `out`.
pub fn write_docker_archive(plan: &Plan, out: &OutputFile, options: &ImageOptions) -> Result<()> {
    let archive = DockerArchive::new(plan, options, out);
    produce(plan, &archive, options)
}

/// The [`Destination`] of a tar writer that writes to `place`.
fn destination<'a>(place: Place<'a>, stream: &Option<SyncSender<Chunk>>) -> Destination<'a> {
    match place {
        Place::File(file, name) => Destination::File(file, name),
        Place::Stream => Destination::Stream(stream.clone().expect("a layer goes to the stream only when there is one")),
    }
}

/// Produces `plan`'s layers where `packaging` places them, then its tail,
/// reporting progress (on the calling thread) as it goes.
pub fn produce(plan: &Plan, packaging: &dyn Packaging, options: &ImageOptions) -> Result<()> {
    let threads = options.worker_threads();
    let stream = packaging.open_stream()?;
    let parallel = stream.is_none() && !packaging.in_order();
    let pool = BufferPool::new();
    let bytes_done = AtomicU64::new(0);
    let items_done = AtomicU64::new(0);
    let abort = AtomicBool::new(false);
    let shared = Shared {
        pool: &pool,
        bytes_done: &bytes_done,
        items_done: &items_done,
        abort: &abort,
        cancel: options.cancel.as_deref(),
        measured: &plan.measured,
    };
    let total = packaging.total_len();
    let report = || {
        if let Some(progress) = &options.progress {
            progress(Progress {
                bytes_done: bytes_done.load(Ordering::Relaxed).min(total),
                bytes_total: total,
                items_done: items_done.load(Ordering::Relaxed).min(plan.items_total),
                items_total: plan.items_total,
            });
        }
    };
    let layers = &plan.layers;
    let producers = if parallel { threads.min(layers.len()).max(1) } else { 1 };
    // The cores no producer uses hash the first layers taken, on a thread
    // of their own (in place only: a stream's single producer hashes
    // inline, with the writer or the compressor on the other cores).
    let hash_threads = if parallel { threads.saturating_sub(producers) } else { 0 };
    // In place, the largest layers first, so that no core is left waiting
    // for one big layer at the end; in a stream, in order.
    let mut order: Vec<usize> = (0..layers.len()).collect();
    if parallel {
        order.sort_by_key(|&i| std::cmp::Reverse(layers[i].len));
    }
    let next = AtomicUsize::new(0);
    report();

    std::thread::scope(|s| {
        let (sender, writer) = match stream {
            None => (None, None),
            Some(stream) => {
                let (tx, rx) = mpsc::sync_channel(POOL_BUFFERS);
                let (pool, abort) = (&pool, &abort);
                let writer = s.spawn(move || buffers::write_chunks(rx, stream.sink, pool, &stream.name, abort));
                (Some(tx), Some(writer))
            }
        };
        let (done_tx, done_rx) = mpsc::channel::<(usize, Result<ProducedLayer>)>();
        for _ in 0..producers {
            let (sender, done_tx, shared, next, order) = (sender.clone(), done_tx.clone(), &shared, &next, &order);
            s.spawn(move || loop {
                let taken = next.fetch_add(1, Ordering::Relaxed);
                let Some(&i) = order.get(taken) else { return };
                let r = stop_others_on_error(shared.abort, || {
                    shared.check_stop()?;
                    let diff_id = match packaging.layer_stream(i)? {
                        Some(own) => produce_layer_to_stream(shared, own, &layers[i], i)?,
                        None => {
                            let target = packaging.layer_target(i);
                            let dest = destination(target.place, &sender);
                            let hash_thread = taken < hash_threads;
                            produce_layer(shared, dest, target.offset, target.prefix, &layers[i], i, hash_thread)?
                        }
                    };
                    let produced = ProducedLayer { diff_id, len: layers[i].len };
                    packaging.layer_done(i, &produced)?;
                    Ok(produced)
                });
                let failed = r.is_err();
                let _ = done_tx.send((i, r));
                if failed {
                    return;
                }
            });
        }
        drop(done_tx);
        let mut produced = vec![ProducedLayer { diff_id: [0; 32], len: 0 }; layers.len()];
        let mut errors = Vec::new();
        loop {
            match done_rx.recv_timeout(Duration::from_millis(100)) {
                Ok((i, Ok(layer))) => produced[i] = layer,
                Ok((_, Err(e))) => errors.push(e),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            report();
        }
        if errors.is_empty() {
            if let Err(e) = packaging.write_tail(&produced, &Tail { shared: &shared, stream: &sender }) {
                errors.push(e);
            }
        }
        // The writer ends when the last sender is gone.
        drop(sender);
        if let Some(Err(e)) = writer.map(|w| w.join().expect("writer thread panicked")) {
            errors.insert(0, e);
        }
        match first_real_error(errors) {
            Some(e) => Err(e),
            None => {
                report();
                Ok(())
            }
        }
    })
}

/// Produces layer number `index`, after `prefix`, from `offset` at `dest`,
/// and returns its SHA-256.  With `hash_thread` (for a file destination
/// only) the layer is hashed on a thread of its own.
fn produce_layer(
    shared: &Shared,
    dest: Destination,
    offset: u64,
    prefix: &[u8],
    layer: &Layer,
    index: usize,
    hash_thread: bool,
) -> Result<[u8; 32]> {
    let write = |hashing| -> Result<Option<[u8; 32]>> {
        let mut w = TarWriter::for_layer(shared, dest, offset, prefix, hashing)?;
        layer.write(&mut w, index)?;
        w.finish()
    };
    if !hash_thread {
        let digest = write(Hashing::Inline(<Sha256 as sha2::Digest>::new()))?;
        return Ok(digest.expect("an inline hash"));
    }
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::sync_channel(HASH_QUEUE);
        let hasher = s.spawn(move || buffers::hash_chunks(rx, shared.pool));
        // The writer, and with it the sender, is gone when this returns.
        let written = write(Hashing::Offloaded(tx));
        let digest = hasher.join().expect("hashing thread panicked");
        written.map(|_| digest)
    })
}

/// Produces layer number `index` into a stream of its own, through a
/// writer thread of its own, and returns its SHA-256 once the stream is
/// finished.
fn produce_layer_to_stream(shared: &Shared, own: packaging::Stream, layer: &Layer, index: usize) -> Result<[u8; 32]> {
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::sync_channel(POOL_BUFFERS);
        let packaging::Stream { sink, name } = own;
        let writer = s.spawn(move || buffers::write_chunks(rx, sink, shared.pool, &name, shared.abort));
        // The writer ends when the tar writer, which holds the sender, is gone.
        let produced = (move || {
            let hashing = Hashing::Inline(<Sha256 as sha2::Digest>::new());
            let mut w = TarWriter::for_layer(shared, Destination::Stream(tx), 0, &[], hashing)?;
            layer.write(&mut w, index)?;
            w.finish()
        })();
        let written = writer.join().expect("writer thread panicked");
        match (produced, written) {
            (Ok(digest), Ok(())) => Ok(digest.expect("an inline hash")),
            (produced, written) => {
                Err(first_real_error(written.err().into_iter().chain(produced.err()).collect()).expect("an error"))
            }
        }
    })
}

/// Runs `f` and, when it fails, tells the other threads to stop.
fn stop_others_on_error<T>(abort: &AtomicBool, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let r = f();
    if r.is_err() {
        abort.store(true, Ordering::Relaxed);
    }
    r
}

/// The result of the first thread that failed for a reason of its own, not
/// only because another one failed.
fn first_real_error(errors: Vec<Error>) -> Option<Error> {
    let mut fallback = None;
    for e in errors {
        if !e.knock_on {
            return Some(e);
        }
        fallback.get_or_insert(e);
    }
    fallback
}

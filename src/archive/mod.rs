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
use packaging::{LayerTarget, Packaging, Place, ProducedLayer, Schedule, Tail};
use tar_writer::{Destination, Hashing, TarWriter};

pub use docker::DockerArchive;
#[cfg(test)]
pub use units::measure_items;
pub use units::{measure_items_identified, Layer, Measured};

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
    /// What the layer cache knows of the layers, and learns of them.
    pub cache: crate::cache::PlanCache,
}

impl Plan {
    /// The image config (`architecture`, `os`, `created`, the runtime
    /// options, `rootfs.diff_ids` and one `history` entry per layer) of the
    /// image whose layers turned out as `produced`: the same document in a
    /// docker-archive and as an OCI config blob.
    pub fn config(&self, produced: &[ProducedLayer], options: &ImageOptions) -> Vec<u8> {
        let infos: Vec<crate::config::LayerInfo> = produced
            .iter()
            .zip(&self.layers)
            .map(|(p, layer)| crate::config::LayerInfo {
                file: String::new(),
                diff_id: format!("sha256:{}", hex::encode(p.diff_id)),
                comment: layer.comment.clone(),
            })
            .collect();
        crate::config::image_config(options, &self.image.entry_point, self.image.created, &infos)
    }
}

/// Writes the docker-archive of `plan` to `out`; returns the image ID
/// (`sha256:<hex>` of the config).
pub fn write_docker_archive(plan: &Plan, out: &OutputFile, options: &ImageOptions) -> Result<String> {
    let archive = DockerArchive::new(plan, options, out);
    produce(plan, &archive, options)?;
    Ok(archive.image_id().expect("the tail names the config"))
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
    let (parallel, stream) = match packaging.schedule()? {
        Schedule::Parallel => (true, None),
        Schedule::InOrder => (false, None),
        Schedule::Stream(stream) => (false, Some(stream)),
    };
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
    // of their own (side by side only, and for a layer written to a file:
    // one after the other, the producer hashes inline, with the writer or
    // the compressor on the other cores).
    let hash_threads = if parallel { threads.saturating_sub(producers) } else { 0 };
    // Side by side, the largest layers first, so that no core is left
    // waiting for one big layer at the end; else in order.
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
                    if let Some(reused) = packaging.reuse(i)? {
                        shared.bytes_done.fetch_add(layers[i].len, Ordering::Relaxed);
                        let items = layers[i].units.iter().filter(|u| matches!(u, crate::layers::Unit::Item { .. })).count();
                        shared.items_done.fetch_add(items as u64, Ordering::Relaxed);
                        return Ok(reused);
                    }
                    let target = packaging.layer_target(i)?;
                    let diff_id = produce_layer(shared, target, &sender, &layers[i], i, taken < hash_threads)?;
                    let produced = ProducedLayer { diff_id, len: layers[i].len };
                    plan.cache.learn_layer(i, &diff_id, produced.len);
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

/// Produces layer number `index` to `target` and returns its SHA-256.
/// `stream` is the sender to the writer of [`Schedule::Stream`].  With
/// `hash_thread`, a layer written to a file is hashed on a thread of its
/// own.
fn produce_layer(
    shared: &Shared,
    target: LayerTarget,
    stream: &Option<SyncSender<Chunk>>,
    layer: &Layer,
    index: usize,
    hash_thread: bool,
) -> Result<[u8; 32]> {
    let write = |dest, offset, prefix: &[u8], hashing| -> Result<Option<[u8; 32]>> {
        let mut w = TarWriter::for_layer(shared, dest, offset, prefix, hashing)?;
        layer.write(&mut w, index)?;
        w.finish()
    };
    let inline = || Hashing::Inline(<Sha256 as sha2::Digest>::new());
    let (dest, offset, prefix) = match target {
        LayerTarget::File { file, name, offset, prefix } => (Destination::File(file, name), offset, prefix),
        LayerTarget::Stream { offset, prefix } => (destination(Place::Stream, stream), offset, prefix),
        LayerTarget::Own(own) => {
            return std::thread::scope(|s| {
                let (tx, rx) = mpsc::sync_channel(POOL_BUFFERS);
                let (pool, abort) = (shared.pool, shared.abort);
                let writer = s.spawn(move || buffers::write_chunks(rx, own.sink, pool, &own.name, abort));
                // The writer ends when the tar writer, which holds the
                // sender, is gone.
                let written = write(Destination::Stream(tx), 0, &[], inline());
                let finished = writer.join().expect("writer thread panicked");
                match (written, finished) {
                    (Ok(digest), Ok(())) => Ok(digest.expect("an inline hash")),
                    (written, finished) => Err(first_real_error(finished.err().into_iter().chain(written.err()).collect())
                        .expect("an error")),
                }
            });
        }
    };
    if !(hash_thread && matches!(dest, Destination::File(..))) {
        let digest = write(dest, offset, prefix, inline())?;
        return Ok(digest.expect("an inline hash"));
    }
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::sync_channel(HASH_QUEUE);
        let hasher = s.spawn(move || buffers::hash_chunks(rx, shared.pool));
        // The writer, and with it the sender, is gone when this returns.
        let written = write(dest, offset, prefix, Hashing::Offloaded(tx));
        let digest = hasher.join().expect("hashing thread panicked");
        written.map(|_| digest)
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

#[cfg(test)]
mod tests {
    use super::packaging::Stream;
    use super::*;
    use crate::layers::{self, Unit};
    use crate::output::Output;
    use sha2::Digest;
    use std::io::{self, Read, Write};
    use std::sync::{Arc, Mutex};

    /// A sink that keeps what it is given in `slot`.
    struct Kept(Arc<Mutex<Vec<u8>>>);
    impl Write for Kept {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    impl crate::compress::Sink for Kept {
        fn finish(self: Box<Self>) -> io::Result<()> {
            Ok(())
        }
    }

    /// Each layer to a stream of its own, kept in memory: the shape of a
    /// packaging of layers as blobs.
    struct Blobs {
        in_order: bool,
        blobs: Vec<Arc<Mutex<Vec<u8>>>>,
        done: Mutex<Vec<usize>>,
        tail: Mutex<Option<Vec<ProducedLayer>>>,
    }

    impl Packaging for Blobs {
        fn schedule(&self) -> Result<Schedule> {
            Ok(if self.in_order { Schedule::InOrder } else { Schedule::Parallel })
        }
        fn layer_target(&self, index: usize) -> Result<LayerTarget<'_>> {
            if self.in_order {
                // One after the other: the last layer is done.
                assert_eq!(self.done.lock().unwrap().last().map(|i| i + 1).unwrap_or(0), index);
            }
            let sink = Box::new(Kept(Arc::clone(&self.blobs[index])));
            Ok(LayerTarget::Own(Stream { sink, name: format!("blob {index}").into() }))
        }
        fn layer_done(&self, index: usize, layer: &ProducedLayer) -> Result<()> {
            // The layer's stream is finished: every byte is there.
            let blob = self.blobs[index].lock().unwrap();
            assert_eq!(blob.len() as u64, layer.len);
            assert_eq!(<[u8; 32]>::from(Sha256::digest(&*blob)), layer.diff_id);
            self.done.lock().unwrap().push(index);
            Ok(())
        }
        fn total_len(&self) -> u64 {
            0
        }
        fn write_tail<'a>(&'a self, layers: &[ProducedLayer], _: &Tail<'_, 'a>) -> Result<()> {
            *self.tail.lock().unwrap() = Some(layers.to_vec());
            Ok(())
        }
    }

    /// A store of three items, planned as three layers.
    fn plan(store: &std::path::Path) -> Plan {
        let mut units = Vec::new();
        for (i, name) in ["aaaa-one", "bbbb-two", "cccc-three"].iter().enumerate() {
            let path = store.join(name);
            std::fs::create_dir_all(path.join("bin")).unwrap();
            std::fs::write(path.join("bin/run"), vec![b'a' + i as u8; 200_000 * (i + 1)]).unwrap();
            std::os::unix::fs::symlink("run", path.join("bin/go")).unwrap();
            units.push(Unit::Item { name: format!("gnu/store/{name}").into_bytes(), item: i, path });
        }
        let measured = measure_items(&units, 2, None).unwrap();
        let layers = units
            .into_iter()
            .map(|u| Layer::new(layers::assemble(vec![u]).unwrap(), &measured, String::new()).unwrap())
            .collect();
        let image = ImageMeta { entry_point: Vec::new(), tags: vec!["t:latest".into()], created: 1 };
        Plan { layers, measured, image, items_total: 3, cache: Default::default() }
    }

    /// The layers a docker-archive of `plan` holds, in order.
    fn docker_layers(plan: &Plan, dir: &std::path::Path) -> Vec<Vec<u8>> {
        let path = dir.join("image.tar");
        let out = OutputFile::open(&Output::Path(path.clone())).unwrap();
        write_docker_archive(plan, &out, &ImageOptions::new()).unwrap();
        out.commit().unwrap();
        let mut archive = tar::Archive::new(std::fs::File::open(&path).unwrap());
        let mut layers = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            if entry.path().unwrap().ends_with("layer.tar") {
                let mut data = Vec::new();
                entry.read_to_end(&mut data).unwrap();
                layers.push(data);
            }
        }
        layers
    }

    #[test]
    fn a_layer_is_produced_once_into_any_packaging() {
        let dir = tempfile::tempdir().unwrap();
        let plan = plan(&dir.path().join("store"));
        let expected = docker_layers(&plan, dir.path());
        assert_eq!(expected.len(), 3);
        for in_order in [false, true] {
            let blobs = Blobs {
                in_order,
                blobs: (0..3).map(|_| Arc::default()).collect(),
                done: Mutex::new(Vec::new()),
                tail: Mutex::new(None),
            };
            produce(&plan, &blobs, &ImageOptions::new()).unwrap();
            let produced = blobs.tail.lock().unwrap().clone().expect("the tail was written");
            for (i, layer) in produced.iter().enumerate() {
                let blob = blobs.blobs[i].lock().unwrap();
                assert!(*blob == expected[i], "layer {i}, in order: {in_order}");
                assert_eq!(layer.diff_id, <[u8; 32]>::from(Sha256::digest(&expected[i])));
            }
            let mut done = blobs.done.into_inner().unwrap();
            if !in_order {
                done.sort();
            }
            assert_eq!(done, [0, 1, 2]);
        }
    }
}

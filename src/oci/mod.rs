//! The image packaged as OCI: each layer a blob of its own, compressed on
//! its own (`-C none|gzip|zstd`: media types `…layer.v1.tar`,
//! `…tar+gzip`, `…tar+zstd`), the config, the manifest and an index entry
//! naming the image.
//!
//! - `oci:DIR[:REF]` ([`layout`]): blobs and `index.json` in a directory,
//!   added to an existing layout.  Layers are produced side by side, each
//!   on its own producer with its own share of the compressing threads.
//! - `oci-archive:FILE[:REF]` ([`tarball`]): the same layout as one tar
//!   file.  A blob's size is known only at its end, so its tar header is
//!   written after it, into the block left for it; layers are produced one
//!   after the other, each compressed on all cores.
//!
//! `diff_ids` are the hashes of the uncompressed tars (the layer is hashed
//! as it is produced, before compression).  Compressed bytes do not depend
//! on the number of threads.

pub mod blob;
pub mod documents;
pub mod layout;
pub mod tarball;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::archive::{LayerJob, Measured};
use crate::destination::Destination;
use crate::error::{Error, Result};
use crate::options::{ImageOptions, Progress};

/// What the image plan gives the OCI packaging.
pub struct ImageParts<'a> {
    pub layers: &'a [LayerJob],
    /// The image config, given the layers' `diff_ids`.
    pub config: &'a (dyn Fn(&[[u8; 32]]) -> Vec<u8> + Sync),
    /// Complete `name:tag` references; the first names the image.
    pub tags: &'a [String],
    /// Seconds since the epoch.
    pub created: i64,
    /// The main item's name without its hash (`hello-2.12`).
    pub main_name: &'a str,
    pub measured: &'a Measured,
    pub items_total: u64,
}

impl ImageParts<'_> {
    /// The ref name in the index: the one asked for, else the first tag.
    fn reference<'r>(&'r self, asked: Option<&'r str>) -> &'r str {
        asked.unwrap_or(&self.tags[0])
    }
}

/// Writes the image to `destination` (an OCI one).
pub fn write_image(parts: &ImageParts, destination: &Destination, options: &ImageOptions) -> Result<()> {
    match destination {
        Destination::OciLayout { dir, reference } => layout_image(parts, dir, reference.as_deref(), options),
        Destination::OciArchive { file, reference } => tarball::write(parts, file, reference.as_deref(), options),
        Destination::DockerArchive(_) => Err(Error::invalid_argument("a docker-archive is not an OCI destination")),
    }
}

/// Counters the progress report reads.
pub(crate) struct Counters {
    pub bytes: AtomicU64,
    pub items: AtomicU64,
}

/// Runs `work` on a thread of its own while the calling thread reports
/// progress (the callback is called on the calling thread only, as the
/// library promises).
pub(crate) fn with_progress<T: Send>(
    parts: &ImageParts,
    options: &ImageOptions,
    counters: &Counters,
    work: impl FnOnce() -> Result<T> + Send,
) -> Result<T> {
    let total: u64 = parts.layers.iter().map(|l| l.len).sum();
    let report = || {
        if let Some(progress) = &options.progress {
            progress(Progress {
                bytes_done: counters.bytes.load(Ordering::Relaxed).min(total),
                bytes_total: total,
                items_done: counters.items.load(Ordering::Relaxed).min(parts.items_total),
                items_total: parts.items_total,
            });
        }
    };
    report();
    let done = AtomicBool::new(false);
    let result = std::thread::scope(|s| {
        let worker = s.spawn(|| {
            let r = work();
            done.store(true, Ordering::Release);
            r
        });
        while !done.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(50));
            report();
        }
        worker.join().expect("OCI writer thread panicked")
    });
    if result.is_ok() {
        report();
    }
    result
}

fn layout_image(parts: &ImageParts, dir: &std::path::Path, reference: Option<&str>, options: &ImageOptions) -> Result<()> {
    use crate::archive::{BufferPool, Shared};
    use blob::{Compressor, LayerBlob};
    use documents::Descriptor;
    use std::sync::atomic::AtomicUsize;
    use std::sync::mpsc;

    let shown = format!("oci:{}", dir.display());
    let layout = layout::Layout::open(dir, &shown, options.cancel.as_deref())?;
    let threads = options.worker_threads();
    let n = parts.layers.len();
    let producers = threads.min(n).max(1);
    let compressor = Compressor {
        kind: options.compression,
        level: options.effective_compression_level(),
        threads: (threads / producers).max(1),
    };
    // The largest layers first, so that no core waits for one at the end.
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(parts.layers[i].len));

    let pool = BufferPool::new();
    let counters = Counters { bytes: AtomicU64::new(0), items: AtomicU64::new(0) };
    let abort = AtomicBool::new(false);
    let shared = Shared {
        pool: &pool,
        bytes_done: &counters.bytes,
        items_done: &counters.items,
        abort: &abort,
        cancel: options.cancel.as_deref(),
        measured: parts.measured,
    };
    let next = AtomicUsize::new(0);
    let blobs = with_progress(parts, options, &counters, || {
        std::thread::scope(|s| {
            let (done_tx, done_rx) = mpsc::channel::<(usize, Result<(LayerBlob, layout::TempBlob)>)>();
            for _ in 0..producers {
                let (done_tx, shared, next, order, layout) = (done_tx.clone(), &shared, &next, &order, &layout);
                s.spawn(move || loop {
                    let Some(&i) = order.get(next.fetch_add(1, Ordering::Relaxed)) else { return };
                    let r = crate::archive::stop_others_on_error(shared.abort, || {
                        shared.check_stop()?;
                        let temp = layout.temp_blob()?;
                        let file = temp.file.try_clone().map_err(|e| Error::output(dir, &e))?;
                        let b = blob::produce_layer_blob(shared, &parts.layers[i], i, file, 0, compressor, dir)?;
                        Ok((b, temp))
                    });
                    let failed = r.is_err();
                    let _ = done_tx.send((i, r));
                    if failed {
                        return;
                    }
                });
            }
            drop(done_tx);
            let mut blobs: Vec<Option<(LayerBlob, layout::TempBlob)>> = (0..n).map(|_| None).collect();
            let mut errors = Vec::new();
            for (i, r) in done_rx {
                match r {
                    Ok(b) => blobs[i] = Some(b),
                    Err(e) => errors.push(e),
                }
            }
            match crate::archive::first_real_error(errors) {
                Some(e) => Err(e),
                None => Ok(blobs.into_iter().map(|b| b.expect("every layer produced")).collect::<Vec<_>>()),
            }
        })
    })?;
    let media_type = blob::layer_media_type(options.compression);
    let mut diff_ids = Vec::with_capacity(n);
    let mut layers = Vec::with_capacity(n);
    for (b, temp) in blobs {
        let hex = hex::encode(b.digest);
        layout.install(temp, &hex)?;
        diff_ids.push(b.diff_id);
        layers.push(Descriptor { media_type: media_type.into(), digest: format!("sha256:{hex}"), size: b.size });
    }
    let config = layout.write_blob(documents::CONFIG_MEDIA_TYPE, &(parts.config)(&diff_ids))?;
    let manifest = documents::manifest(&config, &layers, parts.created, parts.main_name);
    let manifest = layout.write_blob(documents::MANIFEST_MEDIA_TYPE, &manifest)?;
    let reference = parts.reference(reference);
    let entry = documents::index_entry(&manifest, &options.architecture, reference, &documents::full_name(&parts.tags[0]));
    if options.cancel.as_deref().is_some_and(|c| c.load(Ordering::Relaxed)) {
        return Err(Error::cancelled());
    }
    layout.commit(entry, reference)
}

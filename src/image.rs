//! The whole job: items and options in, an image archive out.
//!
//! 1. Check the items and get their closure.
//! 2. Measure every store item (metadata only): sizes, and every check
//!    that can fail, before the output is touched.
//! 3. Plan the layers and the archive's layout: every offset is known.
//! 4. Produce the layers (read, hash and write each byte once), then the
//!    config and manifest, which need the layers' hashes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::archive::{self, BufferPool, Destination, Hashing, LayerJob, Measured, MeasuredItem, Shared, TarWriter};
use crate::closure::{self, Closure};
use crate::compress;
use crate::config::{self, LayerInfo};
use crate::error::{Error, ErrorKind, Result};
use crate::layers::{self, archive_name, Unit};
use crate::localstate::{self, ImageDatabase};
use crate::options::{ImageOptions, Progress};
use crate::output::{OutputFile, PieceWriter, PipeWriter};
use crate::reference::repository_from_name;
use crate::store::{StoreDir, StoreItem};
use crate::tarfmt::{self, Header, Kind};

/// Where the archive goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// A file: what each kind of path means (a regular file, a symlink, a
    /// device, a FIFO, `/dev/stdout`) is in `src/output.rs`.
    Path(PathBuf),
    /// Standard output, streamed.
    Stdout,
}

/// Builds the image of `items` (the first is the main item: a relative entry
/// point or symlink target is relative to it).
///
/// `closure`: the closure as the caller knows it (checked), or `None` to
/// compute it (from `options.database`, else by scanning the store).
/// On error nothing is left at the output path.  The progress callback, if
/// any, is called on the calling thread only.
pub fn build_docker_image(
    items: &[PathBuf],
    closure: Option<&[PathBuf]>,
    output: &Output,
    options: &ImageOptions,
) -> Result<()> {
    if items.is_empty() {
        return Err(Error::invalid_argument("no store item given"));
    }
    let store = StoreDir::new(&options.store_dir)?;
    crate::output::refuse_build_inputs(output, options)?;
    let mut roots = Vec::new();
    for path in items {
        let item = store.parse_item(path)?;
        if std::fs::symlink_metadata(&item.path).is_err() {
            return Err(Error::new(ErrorKind::Io, format!("{}: store item does not exist", item.path.display())));
        }
        roots.push(item);
    }
    if options.localstatedir && options.database.is_none() {
        return Err(Error::invalid_argument(
            "localstatedir: the image's store database registers the closure with the hashes, sizes and \
             references the store database holds, and no store database was given (--database FILE)",
        ));
    }
    let closure = match closure {
        Some(list) => closure::check_closure(&store, &roots, list, options.database.as_deref())?,
        None => closure::compute_closure(&store, &roots, options.database.as_deref())?,
    };
    // Removed when dropped, at the end of the build whatever happens.
    let database = match (&options.database, options.localstatedir) {
        (Some(source), true) => Some(ImageDatabase::build(&closure, source)?),
        _ => None,
    };
    let extras = Extras::new(&roots[0], options, database.as_ref())?;
    let plan = ImagePlan::new(&roots[0], &closure, extras, options)?;
    let out = OutputFile::open(output)?;
    plan.write(&out, options)?;
    out.commit()
}

/// The file name the CLI writes when no `-o` is given:
/// `<name>-docker-image.tar` plus the compression's suffix.
pub fn default_output_name(item: &StoreItem, options: &ImageOptions) -> String {
    format!("{}-docker-image.tar{}", item.name(), options.compression.suffix())
}

/// Everything about the archive that is known before writing it.
struct ImagePlan {
    layers: Vec<LayerJob>,
    /// `<id>/layer.tar` of each layer.
    layer_files: Vec<String>,
    comments: Vec<String>,
    entry_point: Vec<String>,
    tags: Vec<String>,
    created: i64,
    /// Offset of the config, manifest and end of archive.
    tail_offset: u64,
    total: u64,
    items_total: u64,
    /// What the writing pass checks each store item against.
    measured: Measured,
}

fn path_str(path: &Path) -> Result<&str> {
    path.to_str().ok_or_else(|| Error::invalid_argument(format!("{}: not valid UTF-8", path.display())))
}

/// The extra directories, symlinks and files the options ask for.
fn extra_units(main: &StoreItem, options: &ImageOptions) -> Result<Vec<Unit>> {
    let t = &options.transformations;
    let mut units = Vec::new();
    for d in &options.directories {
        units.push(Unit::Dir { name: archive_name(&d.path, t)?, mode: d.mode, uid: d.uid, gid: d.gid });
    }
    for s in &options.symlinks {
        // As `guix pack -S /bin=bin`: a relative target is inside the main item.
        let target = if s.target.starts_with('/') {
            s.target.clone()
        } else {
            format!("{}/{}", path_str(&main.path)?, s.target)
        };
        units.push(Unit::Symlink { name: archive_name(&s.link, t)?, target: target.into_bytes() });
    }
    for f in &options.files {
        units.push(Unit::File { name: archive_name(&f.path, t)?, source: f.source.clone() });
    }
    Ok(units)
}

/// What goes in besides the store items: the options' extras and the
/// store database, with their names, so that a layer's history names what
/// was asked for (not the parent directories every layer needs).
struct Extras {
    units: Vec<Unit>,
    /// The units the options asked for, by name.
    requested: BTreeMap<Vec<u8>, Unit>,
    /// Names of the database's units, and the database file's.
    database: BTreeSet<Vec<u8>>,
    database_file: Vec<u8>,
}

impl Extras {
    fn new(main: &StoreItem, options: &ImageOptions, database: Option<&ImageDatabase>) -> Result<Extras> {
        let mut units = extra_units(main, options)?;
        let requested = units.iter().map(|u| (u.name().to_vec(), u.clone())).collect();
        let database_units = match database {
            Some(db) => db.units(main, &options.transformations)?,
            None => Vec::new(),
        };
        let database = database_units.iter().map(|u| u.name().to_vec()).collect();
        units.extend(database_units);
        let database_file = archive_name(localstate::DATABASE_PATH, &options.transformations)?;
        Ok(Extras { units, requested, database, database_file })
    }

    /// What `units`, one layer's, holds besides store items, for its history.
    fn describe(&self, units: &[Unit]) -> Vec<String> {
        let mut dirs = Vec::new();
        let mut links = Vec::new();
        let mut files = Vec::new();
        let mut database = false;
        for u in units {
            let name = u.name();
            if self.database.contains(name) && !self.requested.contains_key(name) {
                database |= name == self.database_file.as_slice();
                continue;
            }
            // A parent directory another layer needs (such as /tmp for a
            // store under /tmp) is not the directory asked for.
            if self.requested.get(name) != Some(u) {
                continue;
            }
            let shown = format!("/{}", String::from_utf8_lossy(name));
            match u {
                Unit::Dir { .. } => dirs.push(shown),
                Unit::Symlink { .. } => links.push(shown),
                Unit::File { .. } => files.push(shown),
                Unit::Item { .. } => {}
            }
        }
        let mut parts = Vec::new();
        for (list, one, many) in [(dirs, "directory", "directories"), (links, "symlink", "symlinks"), (files, "file", "files")] {
            match list.len() {
                0 => {}
                1 => parts.push(format!("{one} {}", list[0])),
                2..=3 => parts.push(format!("{many} {}", list.join(", "))),
                n => parts.push(format!("{many} {}, and {} more", list[..3].join(", "), n - 3)),
            }
        }
        if database {
            parts.push(format!(
                "the store database /{} and root's profile as a GC root",
                String::from_utf8_lossy(&self.database_file)
            ));
        }
        parts
    }
}

/// Measures every item, on all cores; the error reported is that of the
/// first failing item in closure order.
fn measure_items(units: &[Unit], threads: usize, cancel: Option<&AtomicBool>) -> Result<Measured> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let keys = std::hash::RandomState::new();
    let results: Vec<(usize, Result<MeasuredItem>)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads.min(units.len()).max(1))
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= units.len() || failed.load(Ordering::Relaxed) {
                            return out;
                        }
                        if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
                            out.push((i, Err(Error::cancelled())));
                            failed.store(true, Ordering::Relaxed);
                            return out;
                        }
                        let Unit::Item { name, path, .. } = &units[i] else { unreachable!() };
                        let r = archive::measure_item(path, name, &keys, cancel);
                        if r.is_err() {
                            failed.store(true, Ordering::Relaxed);
                        }
                        out.push((i, r));
                    }
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().expect("measuring thread panicked")).collect()
    });
    let mut items: Vec<Option<MeasuredItem>> = (0..units.len()).map(|_| None).collect();
    let mut first_error: Option<(usize, Error)> = None;
    for (i, r) in results {
        match r {
            Ok(m) => items[i] = Some(m),
            Err(e) => {
                if first_error.as_ref().is_none_or(|(j, _)| i < *j) {
                    first_error = Some((i, e));
                }
            }
        }
    }
    match first_error {
        Some((_, e)) => Err(e),
        None => Ok(Measured { keys, items: items.into_iter().map(|m| m.expect("every item measured")).collect() }),
    }
}

fn outer_header(name: &str, size: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    let h = Header { name: name.as_bytes(), kind: Kind::File, mode: 0o644, uid: 0, gid: 0, size, link: b"" };
    tarfmt::write_header(&h, &mut out);
    out
}

/// A layer's history comment: the store items it holds, then what else.
fn describe(units: &[Unit], closure: &Closure, extras: &Extras) -> String {
    let names: Vec<&str> = units
        .iter()
        .filter_map(|u| match u {
            Unit::Item { item, .. } => Some(closure.items[*item].name()),
            _ => None,
        })
        .collect();
    let mut parts = Vec::new();
    match names.len() {
        0 => {}
        1..=3 => parts.push(names.join(", ")),
        n => parts.push(format!("{}, and {} more store items", names[..3].join(", "), n - 3)),
    }
    parts.extend(extras.describe(units));
    if parts.is_empty() {
        // Every layer holds an item or something asked for; should one
        // hold only parent directories, its comment still says so.
        parts.push(String::from("parent directories"));
    }
    parts.join("; ")
}

impl ImagePlan {
    fn new(main: &StoreItem, closure: &Closure, extra: Extras, options: &ImageOptions) -> Result<ImagePlan> {
        let t = &options.transformations;
        let mut item_units = Vec::new();
        for (i, item) in closure.items.iter().enumerate() {
            item_units.push(Unit::Item { name: archive_name(path_str(&item.path)?, t)?, item: i, path: item.path.clone() });
        }
        let extras = extra.units.clone();
        // All in one layer must hold together: this also checks a
        // many-layer image for two things at one path.
        let mut all = item_units.clone();
        all.extend(extras.iter().cloned());
        let single = layers::assemble(all)?;

        let measured = measure_items(&item_units, options.worker_threads(), options.cancel.as_deref())?;
        let item_sizes: Vec<u64> = measured.items.iter().map(|m| m.bytes).collect();

        let groups: Vec<Vec<Unit>> = match options.max_layers {
            None | Some(1) => vec![single],
            Some(n) => {
                let slots = n as usize - usize::from(!extras.is_empty());
                let mut groups = Vec::new();
                for group in layers::plan(&item_sizes, closure.references.as_deref(), slots) {
                    let units = group.into_iter().map(|i| item_units[i].clone()).collect();
                    groups.push(layers::assemble(units)?);
                }
                if !extras.is_empty() {
                    groups.push(layers::assemble(extras)?);
                }
                groups
            }
        };

        let mut layers = Vec::new();
        let mut layer_files = Vec::new();
        let mut comments = Vec::new();
        let mut offset = 0u64;
        for (index, units) in groups.into_iter().enumerate() {
            let mut len = tarfmt::END_OF_ARCHIVE.len() as u64;
            // The layer's file name must be known before its hash: derive
            // it from what the layer holds.
            let mut id = Sha256::new();
            id.update(format!("guix-docker-native layer {index}\n"));
            let mut host_files = Vec::with_capacity(units.len());
            for u in &units {
                let (unit_len, host_file) = archive::unit_len(u, &item_sizes)?;
                len += unit_len;
                host_files.push(host_file);
                id.update(u.name());
                id.update(b"\n");
            }
            let file = format!("{}/layer.tar", hex::encode(id.finalize()));
            let header = outer_header(&file, len);
            let job_offset = offset;
            offset += header.len() as u64 + len;
            comments.push(describe(&units, closure, &extra));
            layers.push(LayerJob { units, host_files, len, outer_header: header, offset: job_offset });
            layer_files.push(file);
        }

        let entry_point = match options.entry_point.split_first() {
            None => Vec::new(),
            Some((program, args)) => {
                let program =
                    if program.starts_with('/') { program.clone() } else { format!("{}/{}", path_str(&main.path)?, program) };
                std::iter::once(program).chain(args.iter().cloned()).collect()
            }
        };
        let tags = if options.tags.is_empty() {
            vec![format!("{}:latest", repository_from_name(main.name()))]
        } else {
            options.tags.clone()
        };
        let mut plan = ImagePlan {
            layers,
            layer_files,
            comments,
            entry_point,
            tags,
            created: options.effective_creation_time()?,
            tail_offset: offset,
            total: 0,
            items_total: closure.items.len() as u64,
            measured,
        };
        // The tail's length does not depend on the hashes' values.
        let placeholder = vec![[0u8; 32]; plan.layers.len()];
        let tail_len: u64 = plan
            .tail(&placeholder, options)
            .iter()
            .map(|(name, data)| outer_header(name, data.len() as u64).len() as u64 + tarfmt::padded(data.len() as u64))
            .sum();
        plan.total = offset + tail_len + tarfmt::END_OF_ARCHIVE.len() as u64;
        Ok(plan)
    }

    /// The archive's last files: config, manifest, repositories.
    fn tail(&self, digests: &[[u8; 32]], options: &ImageOptions) -> Vec<(String, Vec<u8>)> {
        let infos: Vec<LayerInfo> = digests
            .iter()
            .zip(&self.layer_files)
            .zip(&self.comments)
            .map(|((d, file), comment)| LayerInfo {
                file: file.clone(),
                diff_id: format!("sha256:{}", hex::encode(d)),
                comment: comment.clone(),
            })
            .collect();
        let config = config::image_config(options, &self.entry_point, self.created, &infos);
        let config_file = format!("{}.json", hex::encode(Sha256::digest(&config)));
        let manifest = config::manifest(&config_file, &self.tags, &infos);
        let top_id = self.layer_files.last().map(|f| f.trim_end_matches("/layer.tar").to_string()).unwrap_or_default();
        let repositories = config::repositories(&self.tags, &top_id);
        vec![(config_file, config), ("manifest.json".into(), manifest), ("repositories".into(), repositories)]
    }

    fn report(&self, options: &ImageOptions, bytes: &AtomicU64, items: &AtomicU64) {
        if let Some(progress) = &options.progress {
            progress(Progress {
                bytes_done: bytes.load(Ordering::Relaxed).min(self.total),
                bytes_total: self.total,
                items_done: items.load(Ordering::Relaxed).min(self.items_total),
                items_total: self.items_total,
            });
        }
    }

    fn write(&self, out: &OutputFile, options: &ImageOptions) -> Result<()> {
        let output_name = out.display_path();
        let threads = options.worker_threads();
        // To a file, uncompressed: layers in parallel, each written at its
        // offsets by its producer.  Otherwise one ordered stream.
        let parallel = out.is_seekable() && options.compression == crate::Compression::None;
        let sink = if parallel {
            None
        } else {
            let handle = out.file.try_clone().map_err(|e| Error::output(&output_name, &e))?;
            let handle: Box<dyn compress::Sink> = if out.is_seekable() {
                Box::new(PieceWriter(handle))
            } else {
                match PipeWriter::for_pipe(handle, options.cancel.clone()) {
                    Ok(pipe) => Box::new(pipe),
                    Err(handle) => Box::new(handle),
                }
            };
            let level = options.effective_compression_level();
            let sink = compress::compressor(options.compression, level, threads, handle)
                .map_err(|e| Error::output(&output_name, &e))?;
            Some(sink)
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
            measured: &self.measured,
        };
        let producers = if parallel { threads.min(self.layers.len()).max(1) } else { 1 };
        // The cores no producer uses hash the first layers taken, on a
        // thread of their own (in a file only: a stream's single producer
        // hashes inline, with the writer or the compressor on the other
        // cores).
        let hash_threads = if parallel { threads.saturating_sub(producers) } else { 0 };
        // In a file, the largest layers first, so that no core is left
        // waiting for one big layer at the end; in a stream, in order.
        let mut order: Vec<usize> = (0..self.layers.len()).collect();
        if parallel {
            order.sort_by_key(|&i| std::cmp::Reverse(self.layers[i].len));
        }
        let next = AtomicUsize::new(0);
        self.report(options, &bytes_done, &items_done);

        std::thread::scope(|s| {
            let (dest, writer) = match sink {
                None => (Destination::File(&out.file, &output_name), None),
                Some(sink) => {
                    let (tx, rx) = mpsc::sync_channel(archive::POOL_BUFFERS);
                    let (pool, name, abort) = (&pool, &output_name, &abort);
                    let writer = s.spawn(move || archive::write_chunks(rx, sink, pool, name, abort));
                    (Destination::Stream(tx), Some(writer))
                }
            };
            let (done_tx, done_rx) = mpsc::channel::<(usize, Result<[u8; 32]>)>();
            for _ in 0..producers {
                let (dest, done_tx, shared, next, order) = (dest.clone(), done_tx.clone(), &shared, &next, &order);
                s.spawn(move || loop {
                    let taken = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&i) = order.get(taken) else { return };
                    let job = &self.layers[i];
                    let r = archive::stop_others_on_error(shared.abort, || {
                        shared.check_stop()?;
                        archive::produce_layer(shared, dest.clone(), job, i, taken < hash_threads)
                    });
                    let failed = r.is_err();
                    let _ = done_tx.send((i, r));
                    if failed {
                        return;
                    }
                });
            }
            drop(done_tx);
            let mut digests = vec![[0u8; 32]; self.layers.len()];
            let mut errors = Vec::new();
            loop {
                match done_rx.recv_timeout(Duration::from_millis(100)) {
                    Ok((i, Ok(d))) => digests[i] = d,
                    Ok((_, Err(e))) => errors.push(e),
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
                self.report(options, &bytes_done, &items_done);
            }
            if errors.is_empty() {
                let r = (|| {
                    let mut w = TarWriter::new(&shared, dest.clone(), self.tail_offset, Hashing::Off);
                    for (name, data) in self.tail(&digests, options) {
                        w.entry(name.as_bytes(), &data)?;
                    }
                    w.put(&tarfmt::END_OF_ARCHIVE)?;
                    w.finish().map(|_| ())
                })();
                if let Err(e) = r {
                    errors.push(e);
                }
            }
            // The writer ends when the last sender is gone.
            drop(dest);
            if let Some(Err(e)) = writer.map(|w| w.join().expect("writer thread panicked")) {
                errors.insert(0, e);
            }
            match archive::first_real_error(errors) {
                Some(e) => Err(e),
                None => {
                    self.report(options, &bytes_done, &items_done);
                    Ok(())
                }
            }
        })
    }
}

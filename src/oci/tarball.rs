//! `oci-archive:FILE[:REF]`: an OCI image layout in one tar file, as
//! `skopeo copy oci-archive:…`, `podman load` and `ctr images import` read
//! it.
//!
//! Entries: `oci-layout`, `blobs/`, `blobs/sha256/`, each layer's blob,
//! the config, the manifest, `index.json`.  A compressed blob's size (and
//! its name, the digest) is known only at its end, so the layers are
//! produced in order, each compressed on all cores, and its header is
//! written once the blob is whole:
//!
//! - to a regular file (written as `-o FILE` is: unnamed, named at the
//!   end), the block for the header is left empty, the blob written after
//!   it and the header filled in;
//! - to a pipe, a device or a descriptor (`oci-archive:-`, a FIFO), each
//!   blob is first spooled to a temporary file under `$TMPDIR`, unnamed
//!   (`O_TMPFILE`, or removed as soon as it is made), so nothing is left
//!   whatever ends the build, then its header and the spooled bytes are
//!   written out.  The spool holds one blob at a time.
//!
//! gzip layers are compressed one after the other on one set of workers
//! ([`compress::GzipSeries`]): the next layer is produced and its blocks
//! compressed while the last blocks of the one before are, and a blob is
//! placed (its header written, or its spool copied out) when its last
//! member is written, before the first of the next blob.  So neither the
//! cores nor the producer wait at each layer's end, and a small layer
//! does not leave the other cores idle (the bytes are those of each layer
//! compressed alone).  zstd layers each have libzstd's workers, which
//! finish a layer before the next starts.
//!
//! Several images (the platforms of a multi-platform image) go one after
//! the other into the one file; a blob one of them wrote already (a layer
//! the closures share) is not written again.
//!
//! Both give the same bytes.  A header is always one block, whatever the
//! blob's size: above 8 GiB − 1 (11 octal digits) the size is in GNU tar's
//! base-256 form ([`tarfmt::fixed_header_block`]).

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use super::blob::{self, Compressor};
use super::documents::{self, Descriptor};
use super::{named_entry, reference_of, Image, ImageDocuments, Shape};
use crate::archive::packaging::{LayerTarget, Packaging, ProducedLayer, Schedule, Stream, Tail};
use crate::archive::{self, Plan};
use crate::compress::{self, GzipSeries};
use crate::error::{Error, ErrorKind, Result};
use crate::options::{Compression, ImageOptions};
use crate::output::{write_all_at, Output, OutputFile, PipeWaitCancelled, PipeWriter, WRITE_PIECE};
use crate::tarfmt::{self, Header, Kind};

fn header(name: &[u8], kind: Kind, size: u64) -> Header<'_> {
    let mode = if kind == Kind::Dir { 0o755 } else { 0o644 };
    Header { name, kind, mode, uid: 0, gid: 0, size, link: b"" }
}

/// An entry: its header block and its data, padded to whole blocks.
fn entry_bytes(h: &Header, data: &[u8]) -> Vec<u8> {
    let mut bytes = tarfmt::fixed_header_block(h).to_vec();
    bytes.extend_from_slice(data);
    bytes.resize(tarfmt::BLOCK as usize + tarfmt::padded(data.len() as u64) as usize, 0);
    bytes
}

fn blob_name(hex: &str) -> Vec<u8> {
    format!("blobs/sha256/{hex}").into_bytes()
}

/// Where the archive's bytes go.
enum Sink {
    /// A regular file being made: everything at its offset.
    File(File),
    /// A pipe, a device or a descriptor, in order (each blob spooled first).
    Stream(Box<dyn Write + Send>),
}

/// The error of writing the output `name`.
fn output_error(name: &Path, e: io::Error) -> Error {
    if PipeWaitCancelled::is(&e) {
        Error::cancelled()
    } else {
        Error::output(name, &e)
    }
}

/// The bytes written so far, and where they go.
struct Writer {
    sink: Sink,
    /// Where the next entry goes.
    offset: u64,
}

impl Writer {
    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        match &mut self.sink {
            Sink::File(file) => write_all_at(file, bytes, self.offset),
            Sink::Stream(out) => out.write_all(bytes),
        }?;
        self.offset += bytes.len() as u64;
        Ok(())
    }

    /// Writes the first `size` bytes of `spool` after what was written.
    fn put_spooled(&mut self, spool: &File, size: u64) -> io::Result<()> {
        let spool_error = |e: io::Error| io::Error::new(e.kind(), format!("'{}': {e}", spool_name().display()));
        let mut buf = vec![0u8; 1 << 20];
        let mut at = 0;
        while at < size {
            let Sink::Stream(out) = &mut self.sink else { unreachable!("only a stream spools") };
            let want = buf.len().min((size - at) as usize);
            let n = spool.read_at(&mut buf[..want], at).map_err(spool_error)?;
            if n == 0 {
                return Err(spool_error(io::Error::new(io::ErrorKind::UnexpectedEof, "shorter than the blob written to it")));
            }
            out.write_all(&buf[..n])?;
            at += n as u64;
        }
        self.offset += size;
        Ok(())
    }
}

/// The name of the spool in messages.
fn spool_name() -> PathBuf {
    std::env::temp_dir().join("(an unnamed file spooling a blob)")
}

/// The oci-archive being written, shared by the images that go into it
/// and by the compressors' output.
struct Archive {
    writer: Mutex<Writer>,
    /// The output's name, for messages.
    name: PathBuf,
    /// The regular file being made, when it is one.
    file: Option<File>,
    /// Where each blob goes first when the output is not a regular file.
    spool: Option<File>,
    /// The spool's name in messages.
    spool_name: PathBuf,
    /// The hex digests of the blobs written.
    written: Mutex<BTreeSet<String>>,
}

impl Archive {
    /// Writes the blob `data` unless it is there; returns its descriptor.
    fn put_blob(&self, media_type: &str, data: &[u8]) -> Result<Descriptor> {
        let d = Descriptor::of(media_type, data);
        if self.written.lock().unwrap().insert(d.hex().to_string()) {
            self.writer
                .lock()
                .unwrap()
                .put(&entry_bytes(&header(&blob_name(d.hex()), Kind::File, d.size), data))
                .map_err(|e| output_error(&self.name, e))?;
        }
        Ok(d)
    }

    /// Where the next blob goes: the offset of its header block, and the
    /// file and offset its bytes are written at (after that block in a
    /// regular file; the emptied spool otherwise).
    fn next_blob(&self) -> io::Result<(u64, &File, u64)> {
        let header_at = self.writer.lock().unwrap().offset;
        match (&self.file, &self.spool) {
            (Some(file), _) => Ok((header_at, file, header_at + tarfmt::BLOCK)),
            (None, Some(spool)) => {
                spool.set_len(0).map_err(|e| io::Error::new(e.kind(), format!("'{}': {e}", self.spool_name.display())))?;
                Ok((header_at, spool, 0))
            }
            (None, None) => unreachable!("a stream has a spool"),
        }
    }

    /// Completes the blob of `size` bytes with `digest` whose header goes
    /// at `header_at` (where [`Archive::next_blob`] put it): its header,
    /// and, to a stream, the spooled bytes; then its padding.  A blob
    /// written already (by another platform's image) is not written again:
    /// the next entry takes this one's place.
    fn place_blob(&self, header_at: u64, digest: &[u8; 32], size: u64) -> io::Result<()> {
        let hex = hex::encode(digest);
        if !self.written.lock().unwrap().insert(hex.clone()) {
            return Ok(());
        }
        let name = blob_name(&hex);
        let h = tarfmt::fixed_header_block(&header(&name, Kind::File, size));
        let padding = vec![0u8; (tarfmt::padded(size) - size) as usize];
        let mut writer = self.writer.lock().unwrap();
        debug_assert_eq!(writer.offset, header_at);
        match (&self.file, &self.spool) {
            (Some(file), _) => {
                // The blob is in place after the block left for its header.
                write_all_at(file, &h, header_at)?;
                writer.offset += tarfmt::BLOCK + size;
            }
            (None, spool) => {
                writer.put(&h)?;
                writer.put_spooled(spool.as_ref().expect("a stream has a spool"), size)?;
            }
        }
        writer.put(&padding)
    }

    /// The name of the file blobs are written to first, for messages.
    fn blob_file_name(&self) -> &Path {
        if self.file.is_some() {
            &self.name
        } else {
            &self.spool_name
        }
    }
}

/// A blob's digest and size, once it is placed.
type Placed = Arc<Mutex<Option<([u8; 32], u64)>>>;

/// A compressed layer's blob as its compressor writes it out: where
/// [`Archive::next_blob`] says once its first byte comes (the blob before
/// it is placed by then), hashed and counted; placed at its end.
struct BlobSink {
    archive: Arc<Archive>,
    /// The header's offset and where the bytes go, from the first byte on.
    at: Option<(u64, u64)>,
    written: u64,
    hasher: Sha256,
    placed: Placed,
}

impl BlobSink {
    fn begin(&mut self) -> io::Result<(u64, u64)> {
        if self.at.is_none() {
            let (header_at, _, data_at) = self.archive.next_blob()?;
            self.at = Some((header_at, data_at));
        }
        Ok(self.at.expect("just set"))
    }

    fn blob_file(&self) -> &File {
        self.archive.file.as_ref().or(self.archive.spool.as_ref()).expect("a file or a spool")
    }
}

impl Write for BlobSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let (_, data_at) = self.begin()?;
        let piece = &buf[..buf.len().min(WRITE_PIECE)];
        write_all_at(self.blob_file(), piece, data_at + self.written)?;
        self.hasher.update(piece);
        self.written += piece.len() as u64;
        Ok(piece.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl compress::Sink for BlobSink {
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        let (header_at, _) = self.begin()?;
        let BlobSink { archive, written, hasher, placed, .. } = *self;
        let digest: [u8; 32] = hasher.finalize().into();
        archive.place_blob(header_at, &digest, written)?;
        *placed.lock().unwrap() = Some((digest, written));
        Ok(())
    }
}

/// The oci-archive packaging of one image.
struct ArchivePackaging<'p> {
    plan: &'p Plan,
    main_name: &'p str,
    options: &'p ImageOptions,
    archive: &'p Arc<Archive>,
    compressor: Compressor,
    /// gzip: the workers every layer of the image is compressed on.
    series: Option<GzipSeries>,
    /// Uncompressed: where the header of the layer being written goes.
    pending: Mutex<Option<u64>>,
    /// Each layer's blob, in order, from its target on.
    placed: Mutex<Vec<Placed>>,
    /// The manifest's descriptor, once the tail has written it.
    manifest: Mutex<Option<Descriptor>>,
}

impl Packaging for ArchivePackaging<'_> {
    /// In order: a layer starts where the last one ended.
    fn schedule(&self) -> Result<Schedule> {
        Ok(Schedule::InOrder)
    }

    fn layer_target(&self, _index: usize) -> Result<LayerTarget<'_>> {
        let archive = &**self.archive;
        let name = archive.blob_file_name();
        let placed = Placed::default();
        self.placed.lock().unwrap().push(Arc::clone(&placed));
        if self.options.compression == Compression::None {
            // The blob is the layer: written in place by its producer, its
            // digest is the diff_id.
            let (header_at, file, offset) = archive.next_blob().map_err(|e| Error::output(name, &e))?;
            *self.pending.lock().unwrap() = Some(header_at);
            return Ok(LayerTarget::File { file, name, offset, prefix: &[] });
        }
        let sink =
            Box::new(BlobSink { archive: Arc::clone(self.archive), at: None, written: 0, hasher: Sha256::new(), placed });
        let c = self.compressor;
        let sink = match &self.series {
            Some(series) => series.stream(sink),
            None => compress::compressor(c.kind, c.level, c.threads, sink).map_err(|e| Error::output(name, &e))?,
        };
        Ok(LayerTarget::Own(Stream { sink, name: name.to_path_buf() }))
    }

    fn layer_done(&self, _index: usize, layer: &ProducedLayer) -> Result<()> {
        // A compressed blob is placed when its last member is written.
        let Some(header_at) = self.pending.lock().unwrap().take() else { return Ok(()) };
        self.archive.place_blob(header_at, &layer.diff_id, layer.len).map_err(|e| output_error(&self.archive.name, e))?;
        let placed = self.placed.lock().unwrap().last().cloned().expect("a layer's target comes first");
        *placed.lock().unwrap() = Some((layer.diff_id, layer.len));
        Ok(())
    }

    fn total_len(&self) -> u64 {
        self.plan.layers.iter().map(|l| l.len).sum()
    }

    fn write_tail<'a>(&'a self, layers: &[ProducedLayer], _tail: &Tail<'_, 'a>) -> Result<()> {
        if let Some(series) = &self.series {
            series.finish().map_err(|e| output_error(&self.archive.name, e))?;
        }
        let media_type = blob::layer_media_type(self.options.compression);
        let blobs: Vec<Descriptor> = self
            .placed
            .lock()
            .unwrap()
            .iter()
            .enumerate()
            .map(|(index, p)| {
                let (digest, size) = p.lock().unwrap().expect("every layer's blob is placed");
                self.plan.cache.learn_blob(index, self.compressor.kind, self.compressor.level, &digest, size);
                Descriptor { media_type: media_type.to_string(), digest: format!("sha256:{}", hex::encode(digest)), size }
            })
            .collect();
        let docs = ImageDocuments::new(self.plan, self.main_name, self.options, &blobs, layers);
        self.archive.put_blob(documents::CONFIG_MEDIA_TYPE, &docs.config)?;
        let manifest = self.archive.put_blob(documents::MANIFEST_MEDIA_TYPE, &docs.manifest)?;
        *self.manifest.lock().unwrap() = Some(manifest);
        Ok(())
    }
}

/// Writes `images` as an oci-archive to `output` (a file, or standard
/// output) under one index entry (see [`super::write_images`]), with each
/// image's SBOMs as artifacts naming its manifest.
pub fn write(images: &[Image], shape: Shape, output: &Output, reference: Option<&str>) -> Result<()> {
    let first = images[0];
    let out = OutputFile::open(output)?;
    let name = out.display_path();
    let file_error = |e: io::Error| Error::output(&name, &e);
    let (sink, spool) = if out.is_seekable() {
        (Sink::File(out.file.try_clone().map_err(file_error)?), None)
    } else {
        let spool = tempfile::tempfile().map_err(|e| {
            Error::new(
                ErrorKind::Output,
                format!(
                    "output '{}': an oci-archive to a pipe or device spools each blob to a temporary file under \
                     '{}' ($TMPDIR), which could not be made: {e}",
                    name.display(),
                    std::env::temp_dir().display()
                ),
            )
        })?;
        let handle = out.file.try_clone().map_err(file_error)?;
        let stream: Box<dyn Write + Send> = match PipeWriter::for_pipe(handle, first.options.cancel.clone()) {
            Ok(pipe) => Box::new(pipe),
            Err(handle) => Box::new(handle),
        };
        (Sink::Stream(stream), Some(spool))
    };
    let mut writer = Writer { sink, offset: 0 };
    let layout_file = documents::LAYOUT_FILE;
    let put_error = |e| output_error(&name, e);
    writer.put(&entry_bytes(&header(b"oci-layout", Kind::File, layout_file.len() as u64), layout_file)).map_err(put_error)?;
    writer.put(&entry_bytes(&header(b"blobs/", Kind::Dir, 0), b"")).map_err(put_error)?;
    writer.put(&entry_bytes(&header(b"blobs/sha256/", Kind::Dir, 0), b"")).map_err(put_error)?;
    let archive = Arc::new(Archive {
        writer: Mutex::new(writer),
        name: name.clone(),
        file: if out.is_seekable() { Some(out.file.try_clone().map_err(file_error)?) } else { None },
        spool,
        spool_name: spool_name(),
        written: Mutex::new(BTreeSet::new()),
    });
    let mut manifests = Vec::with_capacity(images.len());
    for image in images {
        // One layer at a time, on all cores.
        let compressor = super::compressor(image.options, 1);
        let series = (compressor.kind == Compression::Gzip).then(|| GzipSeries::new(compressor.level, compressor.threads));
        let packaging = ArchivePackaging {
            plan: image.plan,
            main_name: image.main_name,
            options: image.options,
            archive: &archive,
            compressor,
            series,
            pending: Mutex::new(None),
            placed: Mutex::new(Vec::new()),
            manifest: Mutex::new(None),
        };
        archive::produce(image.plan, &packaging, image.options)?;
        let manifest = packaging.manifest.lock().unwrap().take().expect("the tail writes the manifest");
        manifests.push((manifest, image.options.platform()));
    }
    if first.options.cancel.as_deref().is_some_and(|c| c.load(Ordering::Relaxed)) {
        return Err(Error::cancelled());
    }
    let reference = reference_of(first.plan, reference);
    let entry = named_entry(first.plan, &manifests, shape, reference, |bytes| {
        archive.put_blob(documents::INDEX_MEDIA_TYPE, bytes)
    })?;
    let mut entries = vec![entry];
    let mut sbom_files = crate::sbom::PreparedFiles::default();
    let subjects: Vec<_> =
        manifests.iter().zip(images).filter_map(|((d, _), image)| image.sbom.map(|job| (d.clone(), job))).collect();
    if !subjects.is_empty() {
        let artifacts = super::artifact::Artifacts::new(&subjects, reference);
        for (d, bytes) in &artifacts.blobs {
            archive.put_blob(&d.media_type, bytes)?;
        }
        entries.extend(artifacts.entries);
        for (subject, job) in &subjects {
            sbom_files.absorb(crate::sbom::PreparedFiles::write(Some(job), &subject.digest)?);
        }
    }
    let index = serde_json::to_vec(&documents::new_index(entries)).expect("JSON");
    let mut writer = archive.writer.lock().unwrap();
    writer.put(&entry_bytes(&header(b"index.json", Kind::File, index.len() as u64), &index)).map_err(put_error)?;
    writer.put(&tarfmt::END_OF_ARCHIVE).map_err(put_error)?;
    let end = writer.offset;
    let flushed = match &mut writer.sink {
        Sink::Stream(out) => out.flush(),
        Sink::File(_) => Ok(()),
    };
    flushed.map_err(put_error)?;
    drop(writer);
    drop(archive);
    if out.is_seekable() {
        // A blob not written twice may leave bytes past the end.
        out.file.set_len(end).map_err(|e| Error::output(&name, &e))?;
    }
    sbom_files.commit()?;
    out.commit()?;
    sbom_files.keep();
    Ok(())
}

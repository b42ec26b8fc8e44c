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
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Mutex;

use super::blob::{self, Compressor, Seen};
use super::documents::{self, Descriptor};
use super::{named_entry, reference_of, Image, ImageDocuments, Shape};
use crate::archive::packaging::{LayerTarget, Packaging, ProducedLayer, Schedule, Tail};
use crate::archive::{self, Plan};
use crate::error::{Error, ErrorKind, Result};
use crate::options::{Compression, ImageOptions};
use crate::output::{write_all_at, Output, OutputFile, PipeWaitCancelled, PipeWriter};
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
enum Sink<'p> {
    /// A regular file being made: everything at its offset.
    File(&'p File),
    /// A pipe, a device or a descriptor, in order (each blob spooled first).
    Stream(Box<dyn Write + Send + 'p>),
}

/// The bytes written so far, and where they go.
struct Writer<'p> {
    sink: Sink<'p>,
    /// Where the next entry goes.
    offset: u64,
    /// The output's name, for messages.
    name: PathBuf,
}

impl Writer<'_> {
    fn output_error(&self, e: io::Error) -> Error {
        if PipeWaitCancelled::is(&e) {
            Error::cancelled()
        } else {
            Error::output(&self.name, &e)
        }
    }

    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        let done = match &mut self.sink {
            Sink::File(file) => write_all_at(file, bytes, self.offset),
            Sink::Stream(out) => out.write_all(bytes),
        };
        done.map_err(|e| self.output_error(e))?;
        self.offset += bytes.len() as u64;
        Ok(())
    }

    /// Writes the first `size` bytes of `spool` after what was written.
    fn put_spooled(&mut self, spool: &File, size: u64) -> Result<()> {
        let mut buf = vec![0u8; 1 << 20];
        let mut at = 0;
        while at < size {
            let Sink::Stream(out) = &mut self.sink else { unreachable!("only a stream spools") };
            let want = buf.len().min((size - at) as usize);
            let n = spool.read_at(&mut buf[..want], at).map_err(|e| Error::output(&spool_name(), &e))?;
            if n == 0 {
                let e = io::Error::new(io::ErrorKind::UnexpectedEof, "shorter than the blob written to it");
                return Err(Error::output(&spool_name(), &e));
            }
            if let Err(e) = out.write_all(&buf[..n]) {
                return Err(self.output_error(e));
            }
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

/// The oci-archive being written, shared by the images that go into it.
struct Archive<'p> {
    writer: Mutex<Writer<'p>>,
    /// The output's name, for messages.
    name: PathBuf,
    /// The regular file being made, when it is one.
    file: Option<&'p File>,
    /// Where each blob goes first when the output is not a regular file.
    spool: Option<File>,
    /// The spool's name in messages.
    spool_name: PathBuf,
    /// The hex digests of the blobs written.
    written: Mutex<BTreeSet<String>>,
}

impl Archive<'_> {
    /// Writes the blob `data` unless it is there; returns its descriptor.
    fn put_blob(&self, media_type: &str, data: &[u8]) -> Result<Descriptor> {
        let d = Descriptor::of(media_type, data);
        if self.written.lock().unwrap().insert(d.hex().to_string()) {
            self.writer.lock().unwrap().put(&entry_bytes(&header(&blob_name(d.hex()), Kind::File, d.size), data))?;
        }
        Ok(d)
    }
}

/// The oci-archive packaging of one image.
struct ArchivePackaging<'p, 'a> {
    plan: &'p Plan,
    main_name: &'p str,
    options: &'p ImageOptions,
    archive: &'p Archive<'a>,
    compressor: Compressor,
    /// The layer being written: where its header goes, and, compressed,
    /// its stream's digest and size (uncompressed, they are the layer's).
    pending: Mutex<Option<(u64, Option<Seen>)>>,
    blobs: Mutex<Vec<Descriptor>>,
    /// The manifest's descriptor, once the tail has written it.
    manifest: Mutex<Option<Descriptor>>,
}

impl Packaging for ArchivePackaging<'_, '_> {
    /// In order: a layer starts where the last one ended.
    fn schedule(&self) -> Result<Schedule> {
        Ok(Schedule::InOrder)
    }

    fn layer_target(&self, _index: usize) -> Result<LayerTarget<'_>> {
        let archive = self.archive;
        let header_at = archive.writer.lock().unwrap().offset;
        // The blob goes after the block left for its header, or into the
        // spool, which the last blob has left.
        let (file, name, offset) = match (archive.file, &archive.spool) {
            (Some(file), _) => (file, &archive.name, header_at + tarfmt::BLOCK),
            (None, Some(spool)) => {
                spool.set_len(0).map_err(|e| Error::output(&archive.spool_name, &e))?;
                (spool, &archive.spool_name, 0)
            }
            (None, None) => unreachable!("a stream has a spool"),
        };
        if self.options.compression == Compression::None {
            // The blob is the layer: written in place by its producer, its
            // digest is the diff_id.
            *self.pending.lock().unwrap() = Some((header_at, None));
            return Ok(LayerTarget::File { file, name, offset, prefix: &[] });
        }
        let file = file.try_clone().map_err(|e| Error::output(name, &e))?;
        let (stream, seen) = blob::blob_stream(file, offset, self.compressor, name)?;
        *self.pending.lock().unwrap() = Some((header_at, Some(seen)));
        Ok(LayerTarget::Own(stream))
    }

    fn layer_done(&self, _index: usize, layer: &ProducedLayer) -> Result<()> {
        let (header_at, seen) = self.pending.lock().unwrap().take().expect("a layer's target comes first");
        let (digest, size) = match seen {
            Some(seen) => seen.get().expect("the layer's stream is finished"),
            None => (layer.diff_id, layer.len),
        };
        let hex = hex::encode(digest);
        let archive = self.archive;
        // A blob written already (by another platform's image) is not
        // written again: the next entry takes this one's place.
        if archive.written.lock().unwrap().insert(hex.clone()) {
            let name = blob_name(&hex);
            let h = tarfmt::fixed_header_block(&header(&name, Kind::File, size));
            let padding = vec![0u8; (tarfmt::padded(size) - size) as usize];
            let mut writer = archive.writer.lock().unwrap();
            debug_assert_eq!(writer.offset, header_at);
            match (archive.file, &archive.spool) {
                (Some(file), _) => {
                    // The blob is in place after the block left for its header.
                    write_all_at(file, &h, header_at).map_err(|e| writer.output_error(e))?;
                    writer.offset += tarfmt::BLOCK + size;
                }
                (None, spool) => {
                    writer.put(&h)?;
                    writer.put_spooled(spool.as_ref().expect("a stream has a spool"), size)?;
                }
            }
            writer.put(&padding)?;
        }
        let media_type = blob::layer_media_type(self.options.compression).to_string();
        self.blobs.lock().unwrap().push(Descriptor { media_type, digest: format!("sha256:{hex}"), size });
        Ok(())
    }

    fn total_len(&self) -> u64 {
        self.plan.layers.iter().map(|l| l.len).sum()
    }

    fn write_tail<'a>(&'a self, layers: &[ProducedLayer], _tail: &Tail<'_, 'a>) -> Result<()> {
        let blobs = self.blobs.lock().unwrap().clone();
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
    let (sink, spool) = if out.is_seekable() {
        (Sink::File(&out.file), None)
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
        let handle = out.file.try_clone().map_err(|e| Error::output(&name, &e))?;
        let stream: Box<dyn Write + Send> = match PipeWriter::for_pipe(handle, first.options.cancel.clone()) {
            Ok(pipe) => Box::new(pipe),
            Err(handle) => Box::new(handle),
        };
        (Sink::Stream(stream), Some(spool))
    };
    let mut writer = Writer { sink, offset: 0, name: name.clone() };
    let layout_file = documents::LAYOUT_FILE;
    writer.put(&entry_bytes(&header(b"oci-layout", Kind::File, layout_file.len() as u64), layout_file))?;
    writer.put(&entry_bytes(&header(b"blobs/", Kind::Dir, 0), b""))?;
    writer.put(&entry_bytes(&header(b"blobs/sha256/", Kind::Dir, 0), b""))?;
    let archive = Archive {
        writer: Mutex::new(writer),
        name,
        file: out.is_seekable().then_some(&out.file),
        spool,
        spool_name: spool_name(),
        written: Mutex::new(BTreeSet::new()),
    };
    let mut manifests = Vec::with_capacity(images.len());
    for image in images {
        let packaging = ArchivePackaging {
            plan: image.plan,
            main_name: image.main_name,
            options: image.options,
            archive: &archive,
            // One layer at a time, on all cores.
            compressor: super::compressor(image.options, 1),
            pending: Mutex::new(None),
            blobs: Mutex::new(Vec::new()),
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
    writer.put(&entry_bytes(&header(b"index.json", Kind::File, index.len() as u64), &index))?;
    writer.put(&tarfmt::END_OF_ARCHIVE)?;
    let end = writer.offset;
    let flushed = match &mut writer.sink {
        Sink::Stream(out) => out.flush(),
        Sink::File(_) => Ok(()),
    };
    flushed.map_err(|e| writer.output_error(e))?;
    drop(writer);
    let name = archive.name.clone();
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

//! `oci-archive:FILE[:REF]`: an OCI image layout in one tar file, as
//! `skopeo copy oci-archive:…`, `podman load` and `ctr images import` read
//! it.
//!
//! Entries: `oci-layout`, `blobs/`, `blobs/sha256/`, each layer's blob,
//! the config, the manifest, `index.json`.  A compressed blob's size (and
//! its name, the digest) is known only at its end: the block for its
//! header is left empty, the blob written after it, and the header filled
//! in.  So the layers are produced in order, each compressed on all cores,
//! and the file must be one that can be written at any offset (a regular
//! file, written as `-o FILE` is: unnamed, then named at the end); a pipe
//! or a device is refused.
//!
//! Several images (the platforms of a multi-platform image) go one after
//! the other into the one file; a blob one of them wrote already (a layer
//! the closures share) is not written again: its block is taken by the
//! next entry.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Mutex;

use super::blob::{self, Compressor, Seen};
use super::documents::{self, Descriptor};
use super::{named_entry, reference_of, Image, ImageDocuments, Shape};
use crate::archive::packaging::{LayerTarget, Packaging, ProducedLayer, Schedule, Tail};
use crate::archive::{self, Plan};
use crate::error::{Error, ErrorKind, Result};
use crate::options::ImageOptions;
use crate::output::{write_all_at, Output, OutputFile};
use crate::tarfmt::{self, Header, Kind};

/// The largest size a ustar header holds (11 octal digits): the block left
/// for a blob's header is one block, so a blob must fit it.
const USTAR_SIZE_MAX: u64 = 0o777_7777_7777;

fn header(name: &[u8], kind: Kind, size: u64) -> Vec<u8> {
    let mode = if kind == Kind::Dir { 0o755 } else { 0o644 };
    let mut out = Vec::with_capacity(512);
    tarfmt::write_header(&Header { name, kind, mode, uid: 0, gid: 0, size, link: b"" }, &mut out);
    out
}

/// Writes `header` and `data` (padded) at `offset`; returns the offset after.
fn put_entry(file: &File, name: &Path, offset: u64, header: &[u8], data: &[u8]) -> Result<u64> {
    let mut bytes = header.to_vec();
    bytes.extend_from_slice(data);
    bytes.resize(header.len() + tarfmt::padded(data.len() as u64) as usize, 0);
    write_all_at(file, &bytes, offset).map_err(|e| Error::output(name, &e))?;
    Ok(offset + bytes.len() as u64)
}

fn blob_name(hex: &str) -> Vec<u8> {
    format!("blobs/sha256/{hex}").into_bytes()
}

/// The oci-archive being written: the file, where the next entry goes, and
/// the blobs in it.
struct Archive<'f> {
    file: &'f File,
    name: PathBuf,
    offset: Mutex<u64>,
    /// The hex digests of the blobs written.
    written: Mutex<BTreeSet<String>>,
}

impl Archive<'_> {
    /// Writes the blob `data` unless it is there; returns its descriptor.
    fn put_blob(&self, media_type: &str, data: &[u8]) -> Result<Descriptor> {
        let d = Descriptor::of(media_type, data);
        if self.written.lock().unwrap().insert(d.hex().to_string()) {
            let mut offset = self.offset.lock().unwrap();
            *offset = put_entry(self.file, &self.name, *offset, &header(&blob_name(d.hex()), Kind::File, d.size), data)?;
        }
        Ok(d)
    }
}

/// The oci-archive packaging of one image.
struct ArchivePackaging<'p> {
    plan: &'p Plan,
    main_name: &'p str,
    options: &'p ImageOptions,
    archive: &'p Archive<'p>,
    compressor: Compressor,
    /// The layer being written: where its header goes, and its stream's
    /// digest and size.
    pending: Mutex<Option<(u64, Seen)>>,
    blobs: Mutex<Vec<Descriptor>>,
    /// The manifest's descriptor, once the tail has written it.
    manifest: Mutex<Option<Descriptor>>,
}

impl Packaging for ArchivePackaging<'_> {
    /// In order: a layer starts where the last one ended.
    fn schedule(&self) -> Result<Schedule> {
        Ok(Schedule::InOrder)
    }

    fn layer_target(&self, _index: usize) -> Result<LayerTarget<'_>> {
        let archive = self.archive;
        let header_at = *archive.offset.lock().unwrap();
        let file = archive.file.try_clone().map_err(|e| Error::output(&archive.name, &e))?;
        let (stream, seen) = blob::blob_stream(file, header_at + tarfmt::BLOCK, self.compressor, &archive.name)?;
        *self.pending.lock().unwrap() = Some((header_at, seen));
        Ok(LayerTarget::Own(stream))
    }

    fn layer_done(&self, _index: usize, _layer: &ProducedLayer) -> Result<()> {
        let (header_at, seen) = self.pending.lock().unwrap().take().expect("a layer's stream comes first");
        let (digest, size) = seen.get().expect("the layer's stream is finished");
        let hex = hex::encode(digest);
        let archive = self.archive;
        // A blob written already (by another platform's image) stays where
        // it is: the next entry takes this one's place.
        if archive.written.lock().unwrap().insert(hex.clone()) {
            let h = header(&blob_name(&hex), Kind::File, size);
            debug_assert_eq!(h.len() as u64, tarfmt::BLOCK, "a blob's size fits a ustar header");
            write_all_at(archive.file, &h, header_at).map_err(|e| Error::output(&archive.name, &e))?;
            let data_at = header_at + tarfmt::BLOCK;
            let padding = vec![0u8; (tarfmt::padded(size) - size) as usize];
            write_all_at(archive.file, &padding, data_at + size).map_err(|e| Error::output(&archive.name, &e))?;
            *archive.offset.lock().unwrap() = data_at + tarfmt::padded(size);
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

/// Writes `images` into the oci-archive `file` under one index entry
/// (see [`super::write_images`]).
pub fn write(images: &[Image], shape: Shape, file: &Path, reference: Option<&str>) -> Result<()> {
    let shown = format!("oci-archive:{}", file.display());
    for image in images {
        for (i, l) in image.plan.layers.iter().enumerate() {
            if blob::compressed_bound(l.len) > USTAR_SIZE_MAX {
                return Err(Error::new(
                    ErrorKind::Output,
                    format!(
                        "output '{shown}': layer {} has {} bytes; an oci-archive layer of more than 8 GiB is not written \
                         yet (use oci:DIR, or more layers with --max-layers)",
                        i + 1,
                        l.len
                    ),
                ));
            }
        }
    }
    let out = OutputFile::open(&Output::Path(file.to_path_buf()))?;
    if !out.is_seekable() {
        return Err(Error::new(
            ErrorKind::Output,
            format!(
                "output '{shown}': not a regular file; an oci-archive's blob headers are written after the blobs, \
                 which a pipe or a device cannot take (write a file, or use -o - for a docker-archive)"
            ),
        ));
    }
    let name = out.display_path();
    let mut offset = 0;
    let layout_file = documents::LAYOUT_FILE;
    offset = put_entry(&out.file, &name, offset, &header(b"oci-layout", Kind::File, layout_file.len() as u64), layout_file)?;
    offset = put_entry(&out.file, &name, offset, &header(b"blobs/", Kind::Dir, 0), b"")?;
    offset = put_entry(&out.file, &name, offset, &header(b"blobs/sha256/", Kind::Dir, 0), b"")?;
    let archive = Archive { file: &out.file, name, offset: Mutex::new(offset), written: Mutex::new(BTreeSet::new()) };
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
    let first = images[0];
    if first.options.cancel.as_deref().is_some_and(|c| c.load(Ordering::Relaxed)) {
        return Err(Error::cancelled());
    }
    let reference = reference_of(first.plan, reference);
    let entry = named_entry(first.plan, &manifests, shape, reference, |bytes| {
        archive.put_blob(documents::INDEX_MEDIA_TYPE, bytes)
    })?;
    let index = serde_json::to_vec(&documents::new_index(vec![entry])).expect("JSON");
    let mut offset = archive.offset.into_inner().unwrap();
    offset = put_entry(&out.file, &archive.name, offset, &header(b"index.json", Kind::File, index.len() as u64), &index)?;
    let end = put_entry(&out.file, &archive.name, offset, &tarfmt::END_OF_ARCHIVE, b"")?;
    // A blob not written twice may leave bytes past the end.
    out.file.set_len(end).map_err(|e| Error::output(&archive.name, &e))?;
    out.commit()
}

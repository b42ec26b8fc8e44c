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

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Mutex;

use super::blob::{self, Compressor, Seen};
use super::documents::{self, Descriptor};
use super::{reference_of, ImageDocuments};
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

/// The oci-archive packaging.
struct ArchivePackaging<'p> {
    plan: &'p Plan,
    main_name: &'p str,
    reference: &'p str,
    options: &'p ImageOptions,
    file: &'p File,
    name: PathBuf,
    compressor: Compressor,
    /// Where the next entry goes.
    offset: Mutex<u64>,
    /// The layer being written: where its header goes, and its stream's
    /// digest and size.
    pending: Mutex<Option<(u64, Seen)>>,
    blobs: Mutex<Vec<Descriptor>>,
    /// The SBOMs: artifacts in the archive, files beside it (written by the tail).
    sbom: Option<&'p crate::sbom::Job>,
    sbom_files: Mutex<Option<crate::sbom::PreparedFiles>>,
}

impl Packaging for ArchivePackaging<'_> {
    /// In order: a layer starts where the last one ended.
    fn schedule(&self) -> Result<Schedule> {
        Ok(Schedule::InOrder)
    }

    fn layer_target(&self, _index: usize) -> Result<LayerTarget<'_>> {
        let header_at = *self.offset.lock().unwrap();
        let file = self.file.try_clone().map_err(|e| Error::output(&self.name, &e))?;
        let (stream, seen) = blob::blob_stream(file, header_at + tarfmt::BLOCK, self.compressor, &self.name)?;
        *self.pending.lock().unwrap() = Some((header_at, seen));
        Ok(LayerTarget::Own(stream))
    }

    fn layer_done(&self, _index: usize, _layer: &ProducedLayer) -> Result<()> {
        let (header_at, seen) = self.pending.lock().unwrap().take().expect("a layer's stream comes first");
        let (digest, size) = seen.get().expect("the layer's stream is finished");
        let hex = hex::encode(digest);
        let h = header(&blob_name(&hex), Kind::File, size);
        debug_assert_eq!(h.len() as u64, tarfmt::BLOCK, "a blob's size fits a ustar header");
        write_all_at(self.file, &h, header_at).map_err(|e| Error::output(&self.name, &e))?;
        let data_at = header_at + tarfmt::BLOCK;
        let padding = vec![0u8; (tarfmt::padded(size) - size) as usize];
        write_all_at(self.file, &padding, data_at + size).map_err(|e| Error::output(&self.name, &e))?;
        *self.offset.lock().unwrap() = data_at + tarfmt::padded(size);
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
        let config = Descriptor::of(documents::CONFIG_MEDIA_TYPE, &docs.config);
        let manifest = Descriptor::of(documents::MANIFEST_MEDIA_TYPE, &docs.manifest);
        let mut entries = vec![docs.entry(self.plan, self.options, self.reference)];
        let mut files = vec![(blob_name(config.hex()), docs.config.clone()), (blob_name(manifest.hex()), docs.manifest.clone())];
        if let Some(job) = self.sbom {
            let artifacts = super::artifact::Artifacts::new(job, &manifest, self.reference);
            files.extend(artifacts.blobs.into_iter().map(|(d, bytes)| (blob_name(d.hex()), bytes)));
            entries.extend(artifacts.entries);
            *self.sbom_files.lock().unwrap() = Some(crate::sbom::PreparedFiles::write(Some(job), &manifest.digest)?);
        }
        let index = serde_json::to_vec(&documents::new_index(entries)).expect("JSON");
        files.push((b"index.json".to_vec(), index));
        let mut offset = *self.offset.lock().unwrap();
        for (entry_name, data) in &files {
            offset = put_entry(self.file, &self.name, offset, &header(&entry_name, Kind::File, data.len() as u64), data)?;
        }
        put_entry(self.file, &self.name, offset, &tarfmt::END_OF_ARCHIVE, b"")?;
        Ok(())
    }
}

pub fn write(
    plan: &Plan,
    main_name: &str,
    file: &Path,
    reference: Option<&str>,
    options: &ImageOptions,
    sbom: Option<&crate::sbom::Job>,
) -> Result<()> {
    let shown = format!("oci-archive:{}", file.display());
    for (i, l) in plan.layers.iter().enumerate() {
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
    let packaging = ArchivePackaging {
        plan,
        main_name,
        reference: reference_of(plan, reference),
        options,
        file: &out.file,
        name,
        // One layer at a time, on all cores.
        compressor: super::compressor(options, 1),
        offset: Mutex::new(offset),
        pending: Mutex::new(None),
        blobs: Mutex::new(Vec::new()),
        sbom,
        sbom_files: Mutex::new(None),
    };
    archive::produce(plan, &packaging, options)?;
    if options.cancel.as_deref().is_some_and(|c| c.load(Ordering::Relaxed)) {
        return Err(Error::cancelled());
    }
    let mut sbom_files = packaging.sbom_files.lock().unwrap().take().unwrap_or_default();
    drop(packaging);
    sbom_files.commit()?;
    out.commit()?;
    sbom_files.keep();
    Ok(())
}

//! `oci-archive:FILE[:REF]`: an OCI image layout in one tar file, as
//! `skopeo copy oci-archive:…`, `podman load` and `ctr images import` read
//! it.
//!
//! Entries: `oci-layout`, `blobs/`, `blobs/sha256/`, each layer's blob,
//! the config, the manifest, `index.json`.  A compressed blob's size (and
//! its name, the digest) is known only at its end: the block for its
//! header is left empty, the blob written after it, and the header filled
//! in.  So the file must be one that can be written at any offset (a
//! regular file, written as `-o FILE` is: unnamed, then named at the end);
//! a pipe or a device is refused.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::blob::{self, Compressor};
use super::documents::{self, Descriptor};
use super::{with_progress, Counters, ImageParts};
use crate::archive::{BufferPool, Shared};
use crate::error::{Error, ErrorKind, Result};
use crate::image::Output;
use crate::options::ImageOptions;
use crate::output::{write_all_at, OutputFile};
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
fn put_entry(file: &std::fs::File, name: &Path, offset: u64, header: &[u8], data: &[u8]) -> Result<u64> {
    let mut bytes = header.to_vec();
    bytes.extend_from_slice(data);
    bytes.resize(header.len() + tarfmt::padded(data.len() as u64) as usize, 0);
    write_all_at(file, &bytes, offset).map_err(|e| Error::output(name, &e))?;
    Ok(offset + bytes.len() as u64)
}

fn blob_name(hex: &str) -> Vec<u8> {
    format!("blobs/sha256/{hex}").into_bytes()
}

pub fn write(parts: &ImageParts, file: &Path, reference: Option<&str>, options: &ImageOptions) -> Result<()> {
    let shown = format!("oci-archive:{}", file.display());
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
    for (i, l) in parts.layers.iter().enumerate() {
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
    let name = out.display_path();
    let f = &out.file;
    let mut offset = 0;
    offset = put_entry(f, &name, offset, &header(b"oci-layout", Kind::File, documents::LAYOUT_FILE.len() as u64), documents::LAYOUT_FILE)?;
    offset = put_entry(f, &name, offset, &header(b"blobs/", Kind::Dir, 0), b"")?;
    offset = put_entry(f, &name, offset, &header(b"blobs/sha256/", Kind::Dir, 0), b"")?;

    let compressor = Compressor {
        kind: options.compression,
        level: options.effective_compression_level(),
        threads: options.worker_threads(),
    };
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
    let media_type = blob::layer_media_type(options.compression);
    let (offset, diff_ids, layers) = with_progress(parts, options, &counters, || {
        let mut offset = offset;
        let mut diff_ids = Vec::new();
        let mut layers = Vec::new();
        for (i, job) in parts.layers.iter().enumerate() {
            shared.check_stop()?;
            let handle = f.try_clone().map_err(|e| Error::output(&name, &e))?;
            let data_at = offset + tarfmt::BLOCK;
            let b = blob::produce_layer_blob(&shared, job, i, handle, data_at, compressor, &name)?;
            let hex = hex::encode(b.digest);
            let h = header(&blob_name(&hex), Kind::File, b.size);
            debug_assert_eq!(h.len() as u64, tarfmt::BLOCK);
            write_all_at(f, &h, offset).map_err(|e| Error::output(&name, &e))?;
            let end = data_at + b.size;
            let padding = vec![0u8; (tarfmt::padded(b.size) - b.size) as usize];
            write_all_at(f, &padding, end).map_err(|e| Error::output(&name, &e))?;
            offset = data_at + tarfmt::padded(b.size);
            diff_ids.push(b.diff_id);
            layers.push(Descriptor { media_type: media_type.into(), digest: format!("sha256:{hex}"), size: b.size });
        }
        Ok((offset, diff_ids, layers))
    })?;
    let config_bytes = (parts.config)(&diff_ids);
    let config = Descriptor::of(documents::CONFIG_MEDIA_TYPE, &config_bytes);
    let manifest_bytes = documents::manifest(&config, &layers, parts.created, parts.main_name);
    let manifest = Descriptor::of(documents::MANIFEST_MEDIA_TYPE, &manifest_bytes);
    let reference = parts.reference(reference);
    let entry = documents::index_entry(&manifest, &options.architecture, reference, &documents::full_name(&parts.tags[0]));
    let index = serde_json::to_vec(&documents::new_index(vec![entry])).expect("JSON");
    let mut offset = offset;
    for (entry_name, data) in [
        (blob_name(config.hex()), &config_bytes),
        (blob_name(manifest.hex()), &manifest_bytes),
        (b"index.json".to_vec(), &index),
    ] {
        offset = put_entry(f, &name, offset, &header(&entry_name, Kind::File, data.len() as u64), data)?;
    }
    put_entry(f, &name, offset, &tarfmt::END_OF_ARCHIVE, b"")?;
    if options.cancel.as_deref().is_some_and(|c| c.load(Ordering::Relaxed)) {
        return Err(Error::cancelled());
    }
    out.commit()
}

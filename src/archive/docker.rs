//! The docker-archive packaging: one tar file holding each layer as
//! `<id>/layer.tar`, then the config, `manifest.json` and `repositories`
//! (which need the layers' hashes), the file `docker load`, `podman load`
//! and `skopeo copy docker-archive:…` read.
//!
//! Every length is known before a byte is written, so every layer has its
//! offset: to a file, uncompressed, the layers are written in place, in
//! parallel; to a pipe, a device or through the whole-archive compressor
//! they go in order to one stream.

use std::path::PathBuf;

use sha2::{Digest, Sha256};

use super::packaging::{LayerTarget, Packaging, Place, ProducedLayer, Schedule, Stream, Tail};
use super::Plan;
use crate::compress;
use crate::config::{self, LayerInfo};
use crate::error::{Error, Result};
use crate::options::{Compression, ImageOptions};
use crate::output::{OutputFile, PieceWriter, PipeWriter};
use crate::tarfmt::{self, Header};

/// A docker-archive being written to `out`.
pub struct DockerArchive<'p> {
    plan: &'p Plan,
    options: &'p ImageOptions,
    out: &'p OutputFile,
    /// The output's name, for messages.
    name: PathBuf,
    /// `<id>/layer.tar` of each layer.
    layer_files: Vec<String>,
    /// Each layer's tar header in the archive, which precedes it.
    outer_headers: Vec<Vec<u8>>,
    /// Offset of each layer's header.
    offsets: Vec<u64>,
    /// Offset of the config, manifest and end of archive.
    tail_offset: u64,
    total: u64,
    /// The config's digest, once the tail is written.
    image_id: std::sync::Mutex<Option<String>>,
}

/// The tar header of a file in the archive itself (a layer file, the
/// config, the manifest).
fn file_header(name: &str, size: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    tarfmt::write_header(&Header::file(name.as_bytes(), size), &mut out);
    out
}

impl<'p> DockerArchive<'p> {
    /// Lays out `plan`'s layers and tail in one archive.
    pub fn new(plan: &'p Plan, options: &'p ImageOptions, out: &'p OutputFile) -> DockerArchive<'p> {
        let mut archive = DockerArchive {
            plan,
            options,
            out,
            name: out.display_path(),
            layer_files: Vec::new(),
            outer_headers: Vec::new(),
            offsets: Vec::new(),
            tail_offset: 0,
            total: 0,
            image_id: Default::default(),
        };
        let mut offset = 0u64;
        for (index, layer) in plan.layers.iter().enumerate() {
            // The layer's file name must be known before its hash: derive
            // it from what the layer holds.
            let mut id = Sha256::new();
            id.update(format!("guix-docker-native layer {index}\n"));
            for u in &layer.units {
                id.update(u.name());
                id.update(b"\n");
            }
            let file = format!("{}/layer.tar", hex::encode(id.finalize()));
            let header = file_header(&file, layer.len);
            archive.offsets.push(offset);
            offset += header.len() as u64 + layer.len;
            archive.outer_headers.push(header);
            archive.layer_files.push(file);
        }
        archive.tail_offset = offset;
        // The tail's length does not depend on the hashes' values.
        let placeholder: Vec<ProducedLayer> =
            plan.layers.iter().map(|l| ProducedLayer { diff_id: [0; 32], len: l.len }).collect();
        let tail_len: u64 = archive
            .tail(&placeholder)
            .iter()
            .map(|(name, data)| tarfmt::entry_len(&Header::file(name.as_bytes(), data.len() as u64)))
            .sum();
        archive.total = offset + tail_len + tarfmt::END_OF_ARCHIVE.len() as u64;
        archive
    }

    /// Whether the layers are written in place: to a file, uncompressed.
    fn in_place(&self) -> bool {
        self.out.is_seekable() && self.options.compression == Compression::None
    }

    /// The archive's last files: config, manifest, repositories.
    fn tail(&self, layers: &[ProducedLayer]) -> Vec<(String, Vec<u8>)> {
        let infos: Vec<LayerInfo> = layers
            .iter()
            .zip(&self.layer_files)
            .zip(&self.plan.layers)
            .map(|((produced, file), layer)| LayerInfo {
                file: file.clone(),
                diff_id: format!("sha256:{}", hex::encode(produced.diff_id)),
                comment: layer.comment.clone(),
            })
            .collect();
        let image = &self.plan.image;
        let config = self.plan.config(layers, self.options);
        let config_file = format!("{}.json", hex::encode(Sha256::digest(&config)));
        let manifest = config::manifest(&config_file, &image.tags, &infos);
        let top_id = self.layer_files.last().map(|f| f.trim_end_matches("/layer.tar").to_string()).unwrap_or_default();
        let repositories = config::repositories(&image.tags, &top_id);
        vec![(config_file, config), ("manifest.json".into(), manifest), ("repositories".into(), repositories)]
    }

    /// `sha256:<hex>` of the config written, once it is.
    pub fn image_id(&self) -> Option<String> {
        self.image_id.lock().unwrap().clone()
    }

    fn place(&self) -> Place<'_> {
        if self.in_place() {
            Place::File(&self.out.file, &self.name)
        } else {
            Place::Stream
        }
    }
}

impl Packaging for DockerArchive<'_> {
    fn schedule(&self) -> Result<Schedule> {
        if self.in_place() {
            return Ok(Schedule::Parallel);
        }
        let handle = self.out.file.try_clone().map_err(|e| Error::output(&self.name, &e))?;
        let handle: Box<dyn compress::Sink> = if self.out.is_seekable() {
            Box::new(PieceWriter(handle))
        } else {
            match PipeWriter::for_pipe(handle, self.options.cancel.clone()) {
                Ok(pipe) => Box::new(pipe),
                Err(handle) => Box::new(handle),
            }
        };
        let level = self.options.effective_compression_level();
        let threads = self.options.worker_threads();
        let sink = compress::compressor(self.options.compression, level, threads, handle)
            .map_err(|e| Error::output(&self.name, &e))?;
        Ok(Schedule::Stream(Stream { sink, name: self.name.clone() }))
    }

    fn layer_target(&self, index: usize) -> Result<LayerTarget<'_>> {
        let (offset, prefix) = (self.offsets[index], &self.outer_headers[index][..]);
        Ok(if self.in_place() {
            LayerTarget::File { file: &self.out.file, name: &self.name, offset, prefix }
        } else {
            LayerTarget::Stream { offset, prefix }
        })
    }

    fn total_len(&self) -> u64 {
        self.total
    }

    fn write_tail<'a>(&'a self, layers: &[ProducedLayer], tail: &Tail<'_, 'a>) -> Result<()> {
        let mut w = tail.writer(self.place(), self.tail_offset);
        let files = self.tail(layers);
        *self.image_id.lock().unwrap() = Some(format!("sha256:{}", hex::encode(Sha256::digest(&files[0].1))));
        for (name, data) in files {
            w.entry(name.as_bytes(), &data)?;
        }
        w.put(&tarfmt::END_OF_ARCHIVE)?;
        w.finish().map(|_| ())
    }
}

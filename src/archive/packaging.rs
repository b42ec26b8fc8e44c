//! How produced layers are packaged: the interface between the producers,
//! which make each layer once, and the formats that carry layers.
//!
//! A layer is produced once: its tar is read from the store, hashed (its
//! `diff_id`) and written, each byte once, to where its [`Packaging`] put
//! it.  The packaging decides where that is and writes everything else:
//! the docker-archive ([`super::docker::DockerArchive`]) places every
//! layer at its offset in one tar file, behind the tar header of its
//! `<id>/layer.tar`, and writes the config, `manifest.json` and
//! `repositories` after the last one.  Another packaging (an OCI layout:
//! one blob file per layer, named by its digest once that is known) gives
//! each layer a file of its own and renames it in
//! [`Packaging::layer_done`].
//!
//! The producers ask a packaging, in this order:
//! 1. [`Packaging::open_stream`], once: whether the layers go to one
//!    ordered stream (then one producer makes them in order, a writer
//!    thread feeds the stream) or each to its place in a file (then the
//!    producers make them in parallel, the largest first);
//! 2. [`Packaging::layer_target`], for each layer, on the thread that
//!    produces it, then [`Packaging::layer_done`] once it is whole;
//! 3. [`Packaging::write_tail`], once every layer is produced and none
//!    failed, with every layer's [`ProducedLayer`].

use std::fs::File;
use std::path::{Path, PathBuf};

use super::tar_writer::TarWriter;
use crate::compress::Sink;
use crate::error::Result;

/// One layer as produced: what a packaging needs to describe it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducedLayer {
    /// SHA-256 of the layer's tar: its `diff_id`.
    pub diff_id: [u8; 32],
    /// Length of the layer's tar, end-of-archive blocks included.
    pub len: u64,
}

/// Where the bytes of a layer (or of a packaging's own entries) are
/// written.
#[derive(Clone, Copy)]
pub enum Place<'a> {
    /// At their offsets in this file (named so in errors), by the thread
    /// producing them; places in files are written in parallel.
    File(&'a File, &'a Path),
    /// Into the one ordered stream [`Packaging::open_stream`] gave, at
    /// their turn.
    Stream,
}

/// Where one layer goes.
pub struct LayerTarget<'a> {
    pub place: Place<'a>,
    /// Offset of the first byte (of `prefix`) in the file or the stream.
    pub offset: u64,
    /// Bytes written just before the layer and not part of it (not hashed,
    /// not counted in its length): the docker-archive's tar header of the
    /// layer's file.
    pub prefix: &'a [u8],
}

/// The ordered stream the layers and the tail go to.
pub struct Stream {
    pub sink: Box<dyn Sink>,
    /// The output's name, for a write error's message.
    pub name: PathBuf,
}

/// A way of packaging produced layers (see the module's documentation).
///
/// It is shared by the producing threads: `layer_target` and `layer_done`
/// are called on several threads at once.
pub trait Packaging: Sync {
    /// The stream every layer goes to in order, or `None` when each layer
    /// has its [`Place::File`].  Called once, before any layer.
    fn open_stream(&self) -> Result<Option<Stream>>;

    /// Where layer `index` goes.  A layer's target is [`Place::Stream`]
    /// exactly when [`Packaging::open_stream`] gave a stream.
    fn layer_target(&self, index: usize) -> LayerTarget<'_>;

    /// A stream of layer `index`'s own, which its bytes go to instead of
    /// its [`LayerTarget`] (an OCI blob, compressed on its own), or `None`
    /// (the default) for the target.  Called on the producing thread; the
    /// stream is finished before [`Packaging::layer_done`].
    fn layer_stream(&self, index: usize) -> Result<Option<Stream>> {
        let _ = index;
        Ok(None)
    }

    /// Whether the layers must be produced one after the other, in order,
    /// even without a common stream (a packaging that knows where a layer
    /// goes only once the previous one has ended, as an oci-archive).
    fn in_order(&self) -> bool {
        false
    }

    /// Called on the producing thread once layer `index` is written whole
    /// (and its bytes have reached its place).
    fn layer_done(&self, index: usize, layer: &ProducedLayer) -> Result<()> {
        let _ = (index, layer);
        Ok(())
    }

    /// Bytes the whole build writes, layers, prefixes and tail, for the
    /// progress report.
    fn total_len(&self) -> u64;

    /// Writes what follows the layers, given all of them in order.
    /// `tail.writer(place, offset)` writes to a file or the stream the way
    /// the layers were written.
    fn write_tail<'a>(&'a self, layers: &[ProducedLayer], tail: &Tail<'_, 'a>) -> Result<()>;
}

/// What [`Packaging::write_tail`] writes through: the places the layers
/// were written to, with the build's buffers and counters.
pub struct Tail<'s, 'a> {
    pub(super) shared: &'a super::buffers::Shared<'a>,
    pub(super) stream: &'s Option<std::sync::mpsc::SyncSender<super::buffers::Chunk>>,
}

impl<'a> Tail<'_, 'a> {
    /// A tar writer whose first byte goes to `offset` at `place`, hashing
    /// nothing.
    pub fn writer(&self, place: Place<'a>, offset: u64) -> TarWriter<'a> {
        let dest = super::destination(place, self.stream);
        TarWriter::new(self.shared, dest, offset, super::tar_writer::Hashing::Off)
    }
}

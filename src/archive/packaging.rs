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
//! 1. [`Packaging::schedule`], once: side by side (the largest layers
//!    first), one after the other, or one after the other into one ordered
//!    stream that the tail follows;
//! 2. [`Packaging::layer_target`], for each layer, on the thread that
//!    produces it, then [`Packaging::layer_done`] once it is whole (one
//!    after the other, `layer_target(i)` comes after `layer_done(i - 1)`,
//!    so a layer may start where the last one ended);
//! 3. [`Packaging::write_tail`], once every layer is produced and none
//!    failed, with every layer's [`ProducedLayer`].
//!
//! A layer compressed on its own (a blob) goes to [`LayerTarget::Own`]: a
//! stream of its own, through the packaging's compressor, whose sink can
//! hash and count the compressed bytes; the packaging keeps that digest
//! and size with the layer's [`ProducedLayer`] in `layer_done`.

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

/// Where the bytes of a packaging's own entries are written.
#[derive(Clone, Copy)]
pub enum Place<'a> {
    /// At their offsets in this file (named so in errors), by the calling
    /// thread.
    File(&'a File, &'a Path),
    /// Into the stream of [`Schedule::Stream`], after the layers.
    Stream,
}

/// Where one layer goes.
pub enum LayerTarget<'a> {
    /// At `offset` in `file` (named so in errors), written by the producing
    /// thread, after `prefix`: bytes that are not part of the layer (not
    /// hashed, not counted in its length), such as the docker-archive's
    /// tar header of the layer's file.
    File { file: &'a File, name: &'a Path, offset: u64, prefix: &'a [u8] },
    /// Into the stream of [`Schedule::Stream`], after `prefix`; `offset` is
    /// where `prefix` starts in the stream.
    Stream { offset: u64, prefix: &'a [u8] },
    /// Into a stream of the layer's own, fed by a writer thread of its
    /// own and finished when the layer is.
    Own(Stream),
}

/// An ordered stream of bytes.
pub struct Stream {
    pub sink: Box<dyn Sink>,
    /// The output's name, for a write error's message.
    pub name: PathBuf,
}

/// How the layers are produced.
pub enum Schedule {
    /// Side by side, the largest first, as many at once as there are
    /// threads (with fewer layers than threads, a layer written to a file
    /// is hashed on a thread of its own).  No layer goes to
    /// [`LayerTarget::Stream`].
    Parallel,
    /// One after the other, in order, each to its own place.
    InOrder,
    /// One after the other, in order, into this stream: every layer goes
    /// to [`LayerTarget::Stream`], and the tail may follow them there.
    Stream(Stream),
}

/// A way of packaging produced layers (see the module's documentation).
///
/// It is shared by the producing threads: `layer_target` and `layer_done`
/// are called on several threads at once.
pub trait Packaging: Sync {
    /// How the layers are produced.  Called once, before any layer.
    fn schedule(&self) -> Result<Schedule>;

    /// Called first for each layer, on the thread that would produce it:
    /// `Some` when the packaging has the layer already (an OCI layout
    /// holding the blob the layer cache names), which is then not produced
    /// (no `layer_target`, no `layer_done`); the [`ProducedLayer`] returned
    /// goes to the tail as a produced one would.
    fn reuse(&self, index: usize) -> Result<Option<ProducedLayer>> {
        let _ = index;
        Ok(None)
    }

    /// Where layer `index` goes.
    fn layer_target(&self, index: usize) -> Result<LayerTarget<'_>>;

    /// Called on the producing thread once layer `index` is written whole
    /// (and its bytes have reached its place; a stream of its own is
    /// finished).
    fn layer_done(&self, index: usize, layer: &ProducedLayer) -> Result<()> {
        let _ = (index, layer);
        Ok(())
    }

    /// Bytes the producers and the tail write (layers, prefixes and
    /// tail, uncompressed), for the progress report.
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
